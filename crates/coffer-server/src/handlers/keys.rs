//! Key management handlers.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use coffer_api::ErrorCode;
use coffer_api::keys::{
    ActivateRequest, CreateKeyRequest, EventView, HistoryResponse, KeyView, ListKeysQuery,
    ListKeysResponse, ReactivateRequest, RegisterRequest, RotateResponse, ScheduleDeletionRequest,
};
use coffer_core::kms::KeyFilter;
use coffer_core::{KeyPurpose, KeyState, NewKey, Protection, RotationPolicy};
use coffer_crypto::KeySpec;

use crate::convert::{key_view, parse_duration};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Authed};
use crate::state::AppState;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

fn new_key(request: CreateKeyRequest) -> ApiResult<NewKey> {
    let spec: KeySpec = request
        .spec
        .parse()
        .map_err(|_| bad(format!("unknown spec `{}`", request.spec)))?;
    let mut new = NewKey::of(spec);
    if let Some(purpose) = request.purpose {
        new.purpose = purpose
            .parse::<KeyPurpose>()
            .map_err(|e| bad(e.to_string()))?;
    }
    if let Some(alias) = request.alias {
        new.aliases = vec![
            alias
                .parse()
                .map_err(|e: coffer_core::InvalidInput| bad(e.to_string()))?,
        ];
    }
    new.labels = request.labels;
    new.registered_purposes = request.registered_purposes;
    if let Some(rotation) = request.rotation {
        new.rotation = RotationPolicy {
            period: parse_duration("rotation.period", &rotation.period)?,
            before_expiry: parse_duration("rotation.before_expiry", &rotation.before_expiry)?,
            overlap: parse_duration("rotation.overlap", &rotation.overlap)?,
        };
    }
    new.validity = parse_duration("validity", &request.validity)?;
    if let Some(protection) = request.protection {
        new.protection = protection
            .parse::<Protection>()
            .map_err(|e| bad(e.to_string()))?;
    }
    new.hsm_slot = request.hsm_slot;
    Ok(new)
}

/// `POST /v1/kms/keys`
pub async fn create(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    ApiJson(request): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let details = state.kms.create_key(&caller, new_key(request)?).await?;
    Ok((StatusCode::CREATED, Json(key_view(&details))))
}

/// `GET /v1/kms/keys`
pub async fn list(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    query: Result<Query<ListKeysQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ListKeysResponse>> {
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    let filter = KeyFilter {
        purpose: query
            .purpose
            .map(|p| p.parse())
            .transpose()
            .map_err(|e: coffer_core::InvalidInput| bad(e.to_string()))?,
        spec: query
            .spec
            .map(|s| s.parse())
            .transpose()
            .map_err(|_| bad("unknown spec"))?,
        state: query
            .state
            .map(|s| s.parse())
            .transpose()
            .map_err(|e: coffer_core::InvalidInput| bad(e.to_string()))?,
    };
    let keys = state.kms.list_keys(&caller, &filter).await?;
    Ok(Json(ListKeysResponse {
        keys: keys.iter().map(key_view).collect(),
    }))
}

/// `GET /v1/kms/keys/{key}`
pub async fn show(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(key_view(&state.kms.show_key(&caller, &key).await?)))
}

/// `GET /v1/kms/keys/alias/{name}`
pub async fn show_alias(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<KeyView>> {
    show(state, caller, Path(format!("alias/{name}"))).await
}

/// `POST /v1/kms/keys/{key}/{action}`: rotate, enable, disable, schedule-deletion,
/// cancel-deletion, add-spare, activate, reactivate, register, publish, issue-certificate.
/// (Importing a chain, `POST .../certificate`, has its own route beside its `GET`.)
pub async fn action(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path((key, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    // An action that takes no body refuses one it would otherwise ignore.
    let takes_none = [
        "rotate",
        "enable",
        "disable",
        "cancel-deletion",
        "add-spare",
        "publish",
    ];
    if takes_none.contains(&action.as_str()) && !body.is_empty() {
        crate::extract::parse::<coffer_api::keys::EmptyRequest>(&body)?;
    }
    let to = match action.as_str() {
        "rotate" => {
            let version = state.kms.rotate_key(&caller, &key).await?;
            let answer = RotateResponse {
                key_id: version.key.to_string(),
                version: version.number.get(),
            };
            return Ok(Json(answer).into_response());
        }
        "add-spare" => {
            let details = state.kms.add_spare(&caller, &key).await?;
            return Ok(Json(key_view(&details)).into_response());
        }
        "activate" => {
            let request: ActivateRequest = crate::extract::parse(&body)?;
            let details = state.kms.activate(&caller, &key, request.version).await?;
            return Ok(Json(key_view(&details)).into_response());
        }
        "reactivate" => {
            let request: ReactivateRequest = crate::extract::parse(&body)?;
            let details = state.kms.reactivate(&caller, &key, request.version).await?;
            return Ok(Json(key_view(&details)).into_response());
        }
        "register" => {
            let request: RegisterRequest = crate::extract::parse(&body)?;
            let details = state
                .kms
                .register_purpose(&caller, &key, &request.purpose)
                .await?;
            return Ok(Json(key_view(&details)).into_response());
        }
        "policy" => {
            let request: coffer_api::keys::SetPolicyRequest = crate::extract::parse(&body)?;
            let rotation = request.rotation.unwrap_or_default();
            let policy = RotationPolicy {
                period: parse_duration("rotation.period", &rotation.period)?,
                before_expiry: parse_duration("rotation.before_expiry", &rotation.before_expiry)?,
                overlap: parse_duration("rotation.overlap", &rotation.overlap)?,
            };
            let validity = parse_duration("validity", &request.validity)?;
            let details = state
                .kms
                .set_policy(&caller, &key, policy, validity)
                .await?;
            return Ok(Json(key_view(&details)).into_response());
        }
        "publish" => {
            let details = state
                .kms
                .register_purpose(&caller, &key, coffer_core::kms::PUBLISHED)
                .await?;
            return Ok(Json(key_view(&details)).into_response());
        }
        "issue-certificate" => {
            let chain = super::certificates::issue(&state, &caller, &key, &body).await?;
            return Ok(chain.into_response());
        }
        "enable" => KeyState::Enabled,
        "disable" => KeyState::Disabled,
        "cancel-deletion" => {
            let details = state.kms.cancel_deletion(&caller, &key).await?;
            return Ok(Json(key_view(&details)).into_response());
        }
        "schedule-deletion" => KeyState::PendingDeletion,
        _ => {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no key action `{action}`"),
            ));
        }
    };
    let waiting = if action == "schedule-deletion" && !body.is_empty() {
        let request: ScheduleDeletionRequest = crate::extract::parse(&body)?;
        request
            .pending_window_days
            .map(|days| Duration::from_secs(u64::from(days) * 86_400))
    } else {
        None
    };
    let details = state.kms.set_key_state(&caller, &key, to, waiting).await?;
    Ok(Json(key_view(&details)).into_response())
}

/// `POST /v1/kms/keys/alias/{name}/{action}`
pub async fn alias_action(
    state: State<AppState>,
    caller: Authed,
    Path((name, verb)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<axum::response::Response> {
    action(state, caller, Path((format!("alias/{name}"), verb)), body).await
}

/// `GET /v1/kms/keys/{key}/history`
pub async fn history(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(key): Path<String>,
) -> ApiResult<Json<HistoryResponse>> {
    let events = state.kms.key_history(&caller, &key).await?;
    Ok(Json(HistoryResponse {
        events: events
            .into_iter()
            .map(|e| EventView {
                at: crate::convert::rfc3339(e.at),
                kind: e.kind,
                version: e.version.map(|v| v.get()),
                detail: e.detail,
            })
            .collect(),
    }))
}

/// `GET /v1/kms/keys/alias/{name}/history`
pub async fn alias_history(
    state: State<AppState>,
    caller: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<HistoryResponse>> {
    history(state, caller, Path(format!("alias/{name}"))).await
}

/// A JSON Web Key Set (RFC 7517).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Jwks {
    /// The keys, each with `kid` `KEY_ID:VERSION`.
    pub keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `GET /v1/jwks/{tenant}`: the tenant's published public keys (no token).
pub async fn jwks(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Jwks>> {
    let keys = state.kms.published_keys(&tenant).await?;
    let keys = keys
        .into_iter()
        .filter_map(|(key, version, der)| {
            let public = coffer_crypto::PublicKey::from_spki_der(&der).ok()?;
            match serde_json::to_value(public.to_jwk(Some(&format!("{key}:{version}")))) {
                Ok(serde_json::Value::Object(jwk)) => Some(jwk),
                _ => None,
            }
        })
        .collect();
    Ok(Json(Jwks { keys }))
}
