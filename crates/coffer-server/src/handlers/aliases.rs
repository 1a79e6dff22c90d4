//! Aliases: moving one to another key (seed 004).

use axum::Json;
use axum::extract::State;
use coffer_api::keys::{AliasView, SetAliasRequest};

use crate::error::ApiResult;
use crate::extract::{ApiJson, Authed};
use crate::state::AppState;

/// `POST /v1/kms/aliases`: moves an existing alias to another key of the tenant.
pub async fn set(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    ApiJson(r): ApiJson<SetAliasRequest>,
) -> ApiResult<Json<AliasView>> {
    let moved = state
        .kms
        .move_alias(&caller, &r.alias, &r.key_id, r.expected_key_id.as_deref())
        .await?;
    Ok(Json(AliasView {
        alias: moved.alias.to_string(),
        key_id: moved.to.to_string(),
        previous_key_id: moved.from.to_string(),
    }))
}
