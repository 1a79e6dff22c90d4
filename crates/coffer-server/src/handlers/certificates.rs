//! Certificate chains of signing keys (seed 004): import, issue, read, verify.

use axum::Json;
use axum::extract::{Path, Query, State};
use coffer_api::ErrorCode;
use coffer_api::keys::{
    ChainLinkView, ChainQuery, ChainReportView, ChainView, ImportChainRequest,
    IssueCertificateRequest,
};
use coffer_core::kms::{
    Caller, CertificateChain, ChainLink, ChainReport, IssueCertificate, SignatureCheck,
};

use crate::convert::{parse_duration, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Authed};
use crate::state::AppState;

type ChainQueryResult = Result<Query<ChainQuery>, axum::extract::rejection::QueryRejection>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn link_view(link: &ChainLink) -> ChainLinkView {
    ChainLinkView {
        subject: link.subject.clone(),
        issuer: link.issuer.clone(),
        not_before: rfc3339(link.not_before),
        not_after: rfc3339(link.not_after),
        valid_now: link.valid_now,
        signature_ok: link.signature.ok(),
        signature: match link.signature {
            SignatureCheck::Valid => "ok".to_owned(),
            SignatureCheck::Invalid => "invalid".to_owned(),
            SignatureCheck::Unverified(why) => format!("unverified: {why}"),
        },
    }
}

fn chain_view(chain: &CertificateChain) -> ChainView {
    ChainView {
        key_id: chain.key_id.to_string(),
        version: chain.version.get(),
        chain_pem: chain.pem.clone(),
        links: chain.links.iter().map(link_view).collect(),
    }
}

fn report_view(report: &ChainReport) -> ChainReportView {
    ChainReportView {
        key_id: report.key_id.to_string(),
        version: report.version.get(),
        links: report.links.iter().map(link_view).collect(),
        first_expired: report.first_expired,
        ok: report.ok,
    }
}

/// `POST /v1/kms/keys/{key}/certificate`
pub async fn import(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(key): Path<String>,
    ApiJson(request): ApiJson<ImportChainRequest>,
) -> ApiResult<Json<ChainView>> {
    let chain = state
        .kms
        .import_chain(&caller, &key, request.version, &request.chain_pem)
        .await?;
    Ok(Json(chain_view(&chain)))
}

/// `POST /v1/kms/keys/alias/{name}/certificate`
pub async fn import_alias(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
    request: ApiJson<ImportChainRequest>,
) -> ApiResult<Json<ChainView>> {
    import(state, caller, Path(format!("alias/{name}")), request).await
}

/// `POST /v1/kms/keys/{key}/issue-certificate` (dispatched by `keys::action`).
pub async fn issue(
    state: &AppState,
    caller: &Caller,
    key: &str,
    body: &[u8],
) -> ApiResult<Json<ChainView>> {
    let request: IssueCertificateRequest = crate::extract::parse(body)?;
    let validity = parse_duration("validity", &Some(request.validity))?
        .ok_or_else(|| bad("validity is required"))?;
    let issue = IssueCertificate {
        ca_key: request.ca_key,
        subject_cn: request.subject,
        validity: validity.get(),
    };
    // Issuing signs with the CA key: a secret-key operation for the failover policy.
    if let Some(refused) = super::crypto::refusal_by_failover(state) {
        return Err(refused);
    }
    let chain = state.kms.issue_certificate(caller, key, &issue).await?;
    Ok(Json(chain_view(&chain)))
}

/// `GET /v1/kms/keys/{key}/certificate?version=N`
pub async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(key): Path<String>,
    query: ChainQueryResult,
) -> ApiResult<Json<ChainView>> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let chain = state
        .kms
        .certificate_chain(&caller, &key, query.version)
        .await?;
    Ok(Json(chain_view(&chain)))
}

/// `GET /v1/kms/keys/alias/{name}/certificate`
pub async fn show_alias(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
    query: ChainQueryResult,
) -> ApiResult<Json<ChainView>> {
    show(state, caller, Path(format!("alias/{name}")), query).await
}

/// `GET /v1/kms/keys/{key}/verify-chain?version=N`
pub async fn verify(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(key): Path<String>,
    query: ChainQueryResult,
) -> ApiResult<Json<ChainReportView>> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let report = state.kms.verify_chain(&caller, &key, query.version).await?;
    Ok(Json(report_view(&report)))
}

/// `GET /v1/kms/keys/alias/{name}/verify-chain`
pub async fn verify_alias(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
    query: ChainQueryResult,
) -> ApiResult<Json<ChainReportView>> {
    verify(state, caller, Path(format!("alias/{name}")), query).await
}
