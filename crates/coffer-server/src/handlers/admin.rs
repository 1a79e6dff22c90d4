//! Tenants and tokens (admin tokens only).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use coffer_api::ErrorCode;
use coffer_api::admin::{
    CreateTenantRequest, ListTenantsResponse, MintTokenRequest, MintTokenResponse,
    RevokeTokenRequest, SetPqPolicyRequest, SettingView, ShredTenantRequest, TenantSettingsView,
    TenantView,
};
use coffer_core::kms::MintToken;
use coffer_core::pq::{Change, HybridSigning, PqChange, RolloutPercent};
use coffer_core::token::{Operation, TokenId};

use crate::convert::{parse_duration, tenant_view};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Authed};
use crate::state::AppState;

/// `POST /v1/admin/tenants`
pub async fn create_tenant(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
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
    Authed(caller, ..): Authed,
) -> ApiResult<Json<ListTenantsResponse>> {
    let tenants = state.kms.list_tenants(&caller).await?;
    Ok(Json(ListTenantsResponse {
        tenants: tenants.iter().map(tenant_view).collect(),
    }))
}

/// `POST /v1/admin/tokens`
pub async fn mint_token(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
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
    Authed(caller, ..): Authed,
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
    Authed(caller, ..): Authed,
    ApiJson(r): ApiJson<RevokeTokenRequest>,
) -> ApiResult<StatusCode> {
    let id: TokenId = r
        .token_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "token_id must be 32 hex digits"))?;
    state.kms.revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant and the settings its requests run under: its PQ policy (the tenant's
/// override or the server's default), the in-flight caps and its floor in each class
/// (the server's configuration).
fn settings_view(
    state: &AppState,
    tenant: &coffer_core::Tenant,
    pq: coffer_core::kms::PqPolicy,
) -> TenantSettingsView {
    let mut settings = vec![
        SettingView {
            name: "pq_verify_mode".into(),
            value: pq.verify_mode.value.as_str().into(),
            source: pq.verify_mode.source.as_str().into(),
        },
        SettingView {
            name: "pq_produce_hybrid".into(),
            value: pq.signing.value.as_str().into(),
            source: pq.signing.source.as_str().into(),
        },
        SettingView {
            name: "pq_rollout_percent".into(),
            value: pq.rollout.value.to_string(),
            source: pq.rollout.source.as_str().into(),
        },
    ];
    for class in crate::admission::Class::ALL {
        let name = class.as_str();
        settings.push(SettingView {
            name: format!("max_inflight_{name}"),
            value: state.admission.cap(class).to_string(),
            source: "server".into(),
        });
        settings.push(SettingView {
            name: format!("tenant_floor_{name}"),
            value: state.admission.floor(class).to_string(),
            source: "server".into(),
        });
    }
    TenantSettingsView {
        tenant: tenant_view(tenant),
        settings,
    }
}

/// `GET /v1/admin/tenants/{tenant}`
pub async fn show_tenant(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    Path(reference): Path<String>,
) -> ApiResult<Json<TenantSettingsView>> {
    let (tenant, pq) = state.kms.show_tenant(&caller, &reference).await?;
    Ok(Json(settings_view(&state, &tenant, pq)))
}

/// The request's settings as a change: absent keeps, `null` clears, a value sets.
fn pq_change(r: &SetPqPolicyRequest) -> ApiResult<PqChange> {
    fn change<W: Clone, T>(
        field: &Option<Option<W>>,
        parse: impl Fn(W) -> Option<T>,
        refusal: &'static str,
    ) -> ApiResult<Change<T>> {
        Ok(match field {
            None => Change::Keep,
            Some(None) => Change::Clear,
            Some(Some(given)) => Change::Set(
                parse(given.clone())
                    .ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, refusal))?,
            ),
        })
    }
    Ok(PqChange {
        verify_mode: change(
            &r.pq_verify_mode,
            |text: String| text.parse::<coffer_crypto::PqVerifyMode>().ok(),
            "pq_verify_mode must be and, or, pq_only or null",
        )?,
        signing: change(
            &r.pq_produce_hybrid,
            |produce| Some(HybridSigning::from_produce_hybrid(produce)),
            "pq_produce_hybrid must be true, false or null",
        )?,
        rollout: change(
            &r.pq_rollout_percent,
            |percent: i64| {
                u8::try_from(percent)
                    .ok()
                    .and_then(|p| RolloutPercent::new(p).ok())
            },
            "pq_rollout_percent must be between 0 and 100, or null",
        )?,
    })
}

/// `POST /v1/admin/tenants/pq-policy`
pub async fn set_pq_policy(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    ApiJson(r): ApiJson<SetPqPolicyRequest>,
) -> ApiResult<Json<TenantSettingsView>> {
    let change = pq_change(&r)?;
    state
        .kms
        .change_tenant_pq_policy(&caller, &r.tenant, change)
        .await?;
    let (tenant, pq) = state.kms.show_tenant(&caller, &r.tenant).await?;
    Ok(Json(settings_view(&state, &tenant, pq)))
}

/// `POST /v1/admin/backup`: a bundle of the whole store (`application/octet-stream`),
/// for an admin token allowed `admin:backup`. Its SHA-256 is in
/// `X-Coffer-Backup-Sha256`.
pub async fn backup(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
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
