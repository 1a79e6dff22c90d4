//! The audit log over HTTP: checkpoints and the verifier key (public, like any
//! transparency log), proofs (any valid token whose operations include `audit:read`),
//! entries (`audit:read`) and on-demand checkpoints (`audit:checkpoint`), both for admin
//! tokens without a key scope.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coffer_api::ErrorCode;
use coffer_core::kms::Caller;
use coffer_core::token::Operation;
use coffer_core::{Clock, SystemClock};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, Authed};
use crate::state::AppState;
use coffer_audit_log::AuditLog;

fn log(state: &AppState) -> ApiResult<&Arc<AuditLog>> {
    state.audit.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "the audit log is disabled on this server",
        )
    })
}

fn require_admin(caller: &Caller, power: Operation) -> ApiResult<()> {
    match caller.grants.refuses_admin(power) {
        None => Ok(()),
        Some(why) => Err(ApiError::new(ErrorCode::Forbidden, why)),
    }
}

/// Proofs reveal hashes only, so any token may have them, unless its caveats name
/// operations without `audit:read`.
fn require_proofs(caller: &Caller) -> ApiResult<()> {
    if caller.grants.allows_op(Operation::AuditRead) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "the token's operations do not include audit:read",
        ))
    }
}

fn text(body: String) -> Response {
    ([("content-type", "text/plain; charset=utf-8")], body).into_response()
}

fn hex(h: &[u8]) -> String {
    coffer_audit::entry::hex(h)
}

/// `GET /v1/audit/checkpoint`: the newest signed checkpoint (C2SP signed note).
pub async fn latest(State(state): State<AppState>) -> ApiResult<Response> {
    let latest = log(&state)?
        .latest_checkpoint()
        .await
        .map_err(|e| ApiError::from(coffer_core::kms::KmsError::from(e)))?;
    latest
        .map(|(_, note)| text(note))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no checkpoint yet"))
}

/// `POST /v1/audit/checkpoint`: sign one now (admin).
pub async fn create(State(state): State<AppState>, Authed(caller): Authed) -> ApiResult<Response> {
    require_admin(&caller, Operation::AuditCheckpoint)?;
    let note = log(&state)?
        .checkpoint(SystemClock.now())
        .await
        .map_err(|e| {
            // The cause names anchor paths and URLs: the log has it, the body does not.
            tracing::error!(error = %e, "checkpoint");
            ApiError::new(
                ErrorCode::Unavailable,
                "the checkpoint could not be made; the server log has the cause",
            )
        })?;
    Ok((StatusCode::CREATED, text(note)).into_response())
}

/// `GET /v1/audit/key`: the checkpoint verifier key.
pub async fn key(State(state): State<AppState>) -> ApiResult<Response> {
    let key = log(&state)?
        .verifier_key()
        .ok_or_else(|| ApiError::new(ErrorCode::Sealed, "the server is sealed"))?;
    Ok(text(key + "\n"))
}

/// Query of entries.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Range {
    #[serde(default)]
    from: u64,
    #[serde(default = "default_limit")]
    limit: u64,
}

fn default_limit() -> u64 {
    coffer_api::audit::MAX_PAGE
}

/// `GET /v1/audit/entries?from=&limit=`: entries as JSON lines (admin), at most
/// [`coffer_api::audit::MAX_PAGE`] a request.
pub async fn entries(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(range): ApiQuery<Range>,
) -> ApiResult<Response> {
    require_admin(&caller, Operation::AuditRead)?;
    let lines = log(&state)?
        .export(range.from, range.limit.min(default_limit()))
        .await
        .map_err(|e| ApiError::from(coffer_core::kms::KmsError::from(e)))?;
    Ok(([("content-type", "application/x-ndjson")], lines).into_response())
}

/// Query of an inclusion proof.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    index: u64,
    size: u64,
}

/// An inclusion proof.
#[derive(Serialize, schemars::JsonSchema)]
pub struct InclusionProof {
    index: u64,
    size: u64,
    leaf_hash: String,
    root: String,
    proof: Vec<String>,
}

/// `GET /v1/audit/proof/inclusion?index=&size=`
pub async fn inclusion(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> ApiResult<Json<InclusionProof>> {
    require_proofs(&caller)?;
    let (leaf, proof, root) = log(&state)?
        .inclusion(q.index, q.size)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?;
    Ok(Json(InclusionProof {
        index: q.index,
        size: q.size,
        leaf_hash: hex(&leaf),
        root: hex(&root),
        proof: proof.iter().map(|h| hex(h)).collect(),
    }))
}

/// Query of a consistency proof.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    old: u64,
    new: u64,
}

/// A consistency proof.
#[derive(Serialize, schemars::JsonSchema)]
pub struct ConsistencyProof {
    old: u64,
    new: u64,
    old_root: String,
    new_root: String,
    proof: Vec<String>,
}

/// `GET /v1/audit/proof/consistency?old=&new=`
pub async fn consistency(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    require_proofs(&caller)?;
    let (proof, old_root, new_root) = log(&state)?
        .consistency(q.old, q.new)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e))?;
    Ok(Json(ConsistencyProof {
        old: q.old,
        new: q.new,
        old_root: hex(&old_root),
        new_root: hex(&new_root),
        proof: proof.iter().map(|h| hex(h)).collect(),
    }))
}
