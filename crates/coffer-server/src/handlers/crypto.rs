//! The hot operations: wrap, unwrap, datakey, rewrap, sign, verify, mac, verify-mac.
//! Each takes one request or `{"items": [...]}` and answers in the same form. Batches
//! of wrap, unwrap and rewrap go through `crypto_batch` (one audit commit per batch);
//! the others answer item by item.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use coffer_api::crypto::{
    Batch, CiphertextResponse, DatakeyRequest, DatakeyResponse, ItemResult, MacRequest,
    MacResponse, RewrapRequest, SignRequest, SignResponse, UnwrapRequest, UnwrapResponse,
    VerifyMacRequest, VerifyRequest, VerifyResponse, WrapRequest,
};
use coffer_api::{B64, B64Secret, ErrorCode};
use coffer_core::kms::{Caller, Sealed, SignInput};

use crate::convert::context;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, OneOrBatch};
use crate::state::AppState;

/// One request or a batch, each item with its own result or error. A macro rather than
/// a generic function: the per-item futures borrow the state and caller, which async
/// closures cannot yet promise to be `Send` for every lifetime.
macro_rules! answer {
    ($input:expr, |$r:ident| $body:expr) => {
        match $input {
            OneOrBatch::One($r) => match $body {
                Ok(response) => Json(response).into_response(),
                Err(error) => error.into_response(),
            },
            OneOrBatch::Batch(requests) => {
                let mut items = Vec::with_capacity(requests.len());
                for $r in requests {
                    items.push(match $body {
                        Ok(response) => ItemResult::Ok(response),
                        Err(error) => ItemResult::Err {
                            error: error.detail(),
                        },
                    });
                }
                Json(Batch { items }).into_response()
            }
        }
    };
}

pub(super) fn sealed(s: Sealed) -> CiphertextResponse {
    CiphertextResponse {
        ciphertext: B64(s.ciphertext),
        key_id: s.key_id.to_string(),
        key_version: s.version.get(),
    }
}

async fn wrap_one(
    state: &AppState,
    caller: &Caller,
    r: WrapRequest,
) -> ApiResult<CiphertextResponse> {
    let ctx = context(&r.context)?;
    Ok(sealed(
        state
            .kms
            .wrap(caller, &r.key_id, r.plaintext.expose_secret(), &ctx)
            .await?,
    ))
}

/// `POST /v1/kms/wrap`
pub async fn wrap(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<WrapRequest>,
) -> Response {
    match input {
        OneOrBatch::Batch(requests) => super::crypto_batch::wrap(&state, &caller, requests).await,
        one => answer!(one, |r| wrap_one(&state, &caller, r).await),
    }
}

async fn unwrap_one(
    state: &AppState,
    caller: &Caller,
    r: UnwrapRequest,
) -> ApiResult<UnwrapResponse> {
    let ctx = context(&r.context)?;
    let opened = state.kms.unwrap(caller, &r.ciphertext.0, &ctx).await?;
    Ok(UnwrapResponse {
        plaintext: B64Secret::new(opened.plaintext.expose_secret().to_vec()),
        key_id: opened.key_id.to_string(),
        key_version: opened.version.get(),
    })
}

/// `POST /v1/kms/unwrap`
pub async fn unwrap(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<UnwrapRequest>,
) -> Response {
    match input {
        OneOrBatch::Batch(requests) => super::crypto_batch::unwrap(&state, &caller, requests).await,
        one => answer!(one, |r| unwrap_one(&state, &caller, r).await),
    }
}

async fn datakey_one(
    state: &AppState,
    caller: &Caller,
    r: DatakeyRequest,
) -> ApiResult<DatakeyResponse> {
    let ctx = context(&r.context)?;
    let bytes = usize::try_from(r.bytes.unwrap_or(32)).unwrap_or(usize::MAX);
    let (key, s) = state
        .kms
        .datakey(caller, &r.key_id, bytes, &ctx, r.track_id.as_deref())
        .await?;
    let plaintext = r
        .include_plaintext
        .unwrap_or(true)
        .then(|| B64Secret::new(key.expose_secret().to_vec()));
    Ok(DatakeyResponse {
        plaintext,
        ciphertext: B64(s.ciphertext),
        key_id: s.key_id.to_string(),
        key_version: s.version.get(),
    })
}

/// `POST /v1/kms/datakey`
pub async fn datakey(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<DatakeyRequest>,
) -> Response {
    answer!(input, |r| datakey_one(&state, &caller, r).await)
}

async fn rewrap_one(
    state: &AppState,
    caller: &Caller,
    r: RewrapRequest,
) -> ApiResult<CiphertextResponse> {
    let ctx = context(&r.context)?;
    let destination_ctx = r.destination_context.as_ref().map(context).transpose()?;
    let s = state
        .kms
        .rewrap(
            caller,
            &r.ciphertext.0,
            &ctx,
            r.key_id.as_deref(),
            destination_ctx.as_ref(),
        )
        .await?;
    Ok(sealed(s))
}

/// `POST /v1/kms/rewrap`
pub async fn rewrap(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<RewrapRequest>,
) -> Response {
    match input {
        OneOrBatch::Batch(requests) => super::crypto_batch::rewrap(&state, &caller, requests).await,
        one => answer!(one, |r| rewrap_one(&state, &caller, r).await),
    }
}

/// Exactly one of `message` and `digest`; a digest must be 32 bytes.
fn sign_input<'a>(
    message: &'a Option<B64>,
    digest: &'a Option<B64>,
    digest_buf: &'a mut [u8; 32],
) -> ApiResult<SignInput<'a>> {
    match (message, digest) {
        (Some(m), None) => Ok(SignInput::Message(&m.0)),
        (None, Some(d)) => {
            *digest_buf = d.0.as_slice().try_into().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    "digest must be a 32-byte SHA-256 digest",
                )
            })?;
            Ok(SignInput::Sha256Digest(digest_buf))
        }
        _ => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "give exactly one of message and digest",
        )),
    }
}

async fn sign_one(state: &AppState, caller: &Caller, r: SignRequest) -> ApiResult<SignResponse> {
    let mut buf = [0u8; 32];
    let input = sign_input(&r.message, &r.digest, &mut buf)?;
    // ML-DSA and hybrid signing run on the bounded pool `startup` gives the service
    // (`crate::offload`); a full queue answers 503 with `Retry-After`.
    let s = state.kms.sign(caller, &r.key_id, input).await?;
    Ok(SignResponse {
        signature: B64(s.signature),
        key_id: s.key_id.to_string(),
        key_version: s.version.get(),
        algorithm: s.algorithm.as_str().to_owned(),
    })
}

/// `POST /v1/kms/sign`
pub async fn sign(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<SignRequest>,
) -> Response {
    answer!(input, |r| sign_one(&state, &caller, r).await)
}

async fn verify_one(
    state: &AppState,
    caller: &Caller,
    r: VerifyRequest,
) -> ApiResult<VerifyResponse> {
    let mut buf = [0u8; 32];
    let input = sign_input(&r.message, &r.digest, &mut buf)?;
    let v = state
        .kms
        .verify(caller, &r.key_id, r.key_version, input, &r.signature.0)
        .await?;
    Ok(VerifyResponse {
        valid: v.valid,
        key_id: v.key_id.to_string(),
        key_version: v.version.get(),
    })
}

/// `POST /v1/kms/verify`
pub async fn verify(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<VerifyRequest>,
) -> Response {
    answer!(input, |r| verify_one(&state, &caller, r).await)
}

async fn mac_one(state: &AppState, caller: &Caller, r: MacRequest) -> ApiResult<MacResponse> {
    let (tag, who) = state.kms.mac(caller, &r.key_id, &r.message.0).await?;
    Ok(MacResponse {
        mac: B64(tag),
        key_id: who.key_id.to_string(),
        key_version: who.version.get(),
    })
}

/// `POST /v1/kms/mac`
pub async fn mac(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<MacRequest>,
) -> Response {
    answer!(input, |r| mac_one(&state, &caller, r).await)
}

async fn verify_mac_one(
    state: &AppState,
    caller: &Caller,
    r: VerifyMacRequest,
) -> ApiResult<VerifyResponse> {
    let v = state
        .kms
        .verify_mac(caller, &r.key_id, r.key_version, &r.message.0, &r.mac.0)
        .await?;
    Ok(VerifyResponse {
        valid: v.valid,
        key_id: v.key_id.to_string(),
        key_version: v.version.get(),
    })
}

/// `POST /v1/kms/verify-mac`
pub async fn verify_mac(
    State(state): State<AppState>,
    Authed(caller): Authed,
    input: OneOrBatch<VerifyMacRequest>,
) -> Response {
    answer!(input, |r| verify_mac_one(&state, &caller, r).await)
}
