//! Attestation policies of keys: read (with their history) and change.

use axum::Json;
use axum::extract::{Path, State};
use coffer_api::ErrorCode;
use coffer_api::attestation::{
    AttestationPoliciesResponse, AttestationPolicyView, SetAttestationPolicyRequest,
};
use coffer_core::attestation::AttestationPolicy;
use coffer_core::kms::PolicyChange;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Authed};
use crate::state::AppState;

fn view(p: &AttestationPolicy) -> AttestationPolicyView {
    AttestationPolicyView {
        key_id: p.key.to_string(),
        version: p.version,
        operations: p.operations.iter().map(|o| o.as_str().to_owned()).collect(),
        measurements: p.measurements.iter().map(ToString::to_string).collect(),
        created_at: p.created_at.millis(),
    }
}

fn change(r: SetAttestationPolicyRequest) -> ApiResult<PolicyChange> {
    let invalid = |e: String| ApiError::new(ErrorCode::InvalidRequest, e);
    Ok(PolicyChange {
        operations: r
            .operations
            .iter()
            .map(|o| {
                o.parse()
                    .map_err(|e: coffer_core::InvalidInput| invalid(e.to_string()))
            })
            .collect::<ApiResult<_>>()?,
        measurements: r
            .measurements
            .iter()
            .map(|m| {
                m.parse()
                    .map_err(|e: coffer_core::attestation::AttestError| invalid(e.to_string()))
            })
            .collect::<ApiResult<_>>()?,
        expect_version: r.expect_version,
    })
}

/// `GET /v1/kms/keys/{key}/attestation-policy`
pub async fn show(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(key): Path<String>,
) -> ApiResult<Json<AttestationPoliciesResponse>> {
    let (id, versions) = state.kms.attestation_policies(&caller, &key).await?;
    Ok(Json(AttestationPoliciesResponse {
        key_id: id.to_string(),
        current: versions.last().map(view),
        versions: versions.iter().map(view).collect(),
    }))
}

/// `POST /v1/kms/keys/{key}/attestation-policy`: stores the next version.
pub async fn set(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(key): Path<String>,
    ApiJson(r): ApiJson<SetAttestationPolicyRequest>,
) -> ApiResult<Json<AttestationPolicyView>> {
    let policy = state
        .kms
        .set_attestation_policy(&caller, &key, change(r)?)
        .await?;
    Ok(Json(view(&policy)))
}

/// `GET /v1/kms/keys/alias/{name}/attestation-policy`
pub async fn show_alias(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<AttestationPoliciesResponse>> {
    show(state, caller, Path(format!("alias/{name}"))).await
}

/// `POST /v1/kms/keys/alias/{name}/attestation-policy`
pub async fn set_alias(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
    body: ApiJson<SetAttestationPolicyRequest>,
) -> ApiResult<Json<AttestationPolicyView>> {
    set(state, caller, Path(format!("alias/{name}")), body).await
}
