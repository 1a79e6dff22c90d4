//! Tenants and tokens (admin tokens only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coffer_api::ErrorCode;
use coffer_api::admin::{
    CreateTenantRequest, ListTenantsResponse, MintTokenRequest, MintTokenResponse,
    RevokeTokenRequest, ShredTenantRequest, TenantView,
};
use coffer_core::kms::MintToken;
use coffer_core::token::{Operation, TokenId};

use crate::convert::{parse_duration, tenant_view};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Authed};
use crate::state::AppState;

/// `POST /v1/admin/tenants`
pub async fn create_tenant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(r): ApiJson<CreateTenantRequest>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let tenant = state
        .kms
        .create_tenant_with_account(&caller, &r.name, r.aws_account_id.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(tenant_view(&tenant))))
}

/// `GET /v1/admin/tenants`
pub async fn list_tenants(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<ListTenantsResponse>> {
    let tenants = state.kms.list_tenants(&caller).await?;
    Ok(Json(ListTenantsResponse {
        tenants: tenants.iter().map(tenant_view).collect(),
    }))
}

/// `POST /v1/admin/tokens`
pub async fn mint_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(r): ApiJson<MintTokenRequest>,
) -> ApiResult<(StatusCode, Json<MintTokenResponse>)> {
    let operations = r
        .operations
        .iter()
        .map(|op| {
            op.parse::<Operation>().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("unknown operation `{op}`"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let request = MintToken {
        tenant: r.tenant,
        admin: r.admin,
        operations,
        keys: r.keys,
        ttl: parse_duration("ttl", &r.ttl)?,
        description: r.description.unwrap_or_default(),
    };
    let (token, id) = state.kms.mint_token(&caller, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(MintTokenResponse {
            token,
            token_id: id.to_string(),
        }),
    ))
}

/// `POST /v1/admin/tenants/shred`
pub async fn shred_tenant(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(r): ApiJson<ShredTenantRequest>,
) -> ApiResult<StatusCode> {
    state
        .kms
        .shred_tenant(&caller, &r.tenant, &r.confirm)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/tokens/revoke`
pub async fn revoke_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(r): ApiJson<RevokeTokenRequest>,
) -> ApiResult<StatusCode> {
    let id: TokenId = r
        .token_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "token_id must be 32 hex digits"))?;
    state.kms.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/backup`: a bundle of the whole store (`application/octet-stream`),
/// for an admin token allowed `admin:backup`. Its SHA-256 is in
/// `X-Coffer-Backup-Sha256`.
pub async fn backup(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<impl axum::response::IntoResponse> {
    let made = state.kms.backup(&caller).await?;
    let hash = coffer_core::backup::bundle::file_hash(&made.bundle);
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (
                axum::http::header::HeaderName::from_static("x-coffer-backup-sha256"),
                hash,
            ),
        ],
        made.bundle,
    ))
}
