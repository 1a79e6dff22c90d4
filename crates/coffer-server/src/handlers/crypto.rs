//! The hot operations: wrap, unwrap, datakey, rewrap, sign, verify, encrypt, decrypt,
//! mac, verify-mac.
//! Each takes one request or `{"items": [...]}` and answers in the same form. The
//! per-item functions (`wrap_one`, …) also serve the gRPC front (`crate::grpc`). Batches
//! of wrap, unwrap and rewrap go through `crypto_batch` (one audit commit per batch);
//! the others answer item by item.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use coffer_api::crypto::{
    Batch, CiphertextResponse, DatakeyRequest, DatakeyResponse, DecryptRequest, EncryptRequest,
    ItemResult, MacRequest, MacResponse, RewrapRequest, SignRequest, SignResponse, UnwrapRequest,
    UnwrapResponse, VerifyMacRequest, VerifyRequest, VerifyResponse, WrapRequest,
};
use coffer_api::{B64, B64Secret, ErrorCode};
use coffer_core::kms::{Caller, Sealed, SignInput};
use coffer_crypto::{EncryptionAlgorithm, SignatureAlgorithm};

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

/// The failover policy's gate for secret-key operations, checked after authentication
/// and before any key is loaded (`custody.failover = "verify-only"`).
fn refused_by_failover(state: &AppState) -> Option<Response> {
    refusal_by_failover(state).map(IntoResponse::into_response)
}

/// The refusal while `custody.failover = "verify-only"` and the token is away, if it is.
pub(crate) fn refusal_by_failover(state: &AppState) -> Option<ApiError> {
    if state.custody.serves_secret_operations() {
        return None;
    }
    Some(ApiError {
        retry_after: Some(std::time::Duration::from_secs(1)),
        ..ApiError::new(
            ErrorCode::BackendUnavailable,
            "the HSM is unavailable: only verification is served until it is back",
        )
    })
}

pub(super) fn sealed(s: Sealed) -> CiphertextResponse {
    CiphertextResponse {
        ciphertext: B64(s.ciphertext),
        key_id: s.key_id.to_string(),
        key_version: s.version.get(),
    }
}

pub(crate) async fn wrap_one(
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
    Authed(caller, ..): Authed,
    input: OneOrBatch<WrapRequest>,
) -> Response {
    if let Some(refused) = refused_by_failover(&state) {
        return refused;
    }
    match input {
        OneOrBatch::Batch(requests) => super::crypto_batch::wrap(&state, &caller, requests).await,
        one => answer!(one, |r| wrap_one(&state, &caller, r).await),
    }
}

pub(crate) async fn unwrap_one(
    state: &AppState,
    caller: &Caller,
    r: UnwrapRequest,
) -> ApiResult<UnwrapResponse> {
    let ctx = context(&r.context)?;
    let attestation = r.attestation.as_ref().map(|a| a.0.as_slice());
    let opened = state
        .kms
        .unwrap_attested(caller, &r.ciphertext.0, &ctx, attestation)
        .await?;
    Ok(opened_response(opened))
}

/// The answer of one unwrap: the plaintext, or (for an attested recipient) the
/// plaintext encrypted to it and an empty `plaintext`.
pub(super) fn opened_response(opened: coffer_core::kms::Opened) -> UnwrapResponse {
    UnwrapResponse {
        plaintext: B64Secret::new(opened.plaintext.expose_secret().to_vec()),
        key_id: opened.key_id.to_string(),
        key_version: opened.version.get(),
        ciphertext_for_recipient: opened.for_recipient.map(B64),
    }
}

/// `POST /v1/kms/unwrap`
pub async fn unwrap(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    input: OneOrBatch<UnwrapRequest>,
) -> Response {
    if let Some(refused) = refused_by_failover(&state) {
        return refused;
    }
    match input {
        OneOrBatch::Batch(requests) => super::crypto_batch::unwrap(&state, &caller, requests).await,
        one => answer!(one, |r| unwrap_one(&state, &caller, r).await),
    }
}

pub(crate) async fn datakey_one(
    state: &AppState,
    caller: &Caller,
    r: DatakeyRequest,
) -> ApiResult<DatakeyResponse> {
    let ctx = context(&r.context)?;
    let bytes = usize::try_from(r.bytes.unwrap_or(32)).unwrap_or(usize::MAX);
    let attestation = r.attestation.as_ref().map(|a| a.0.as_slice());
    let (key, s, for_recipient) = state
        .kms
        .datakey_attested(
            caller,
            &r.key_id,
            bytes,
            &ctx,
            r.track_id.as_deref(),
            attestation,
        )
        .await?;
    // A data key made for a recipient never leaves in the clear.
    let plaintext = (r.include_plaintext.unwrap_or(true) && for_recipient.is_none())
        .then(|| B64Secret::new(key.expose_secret().to_vec()));
    Ok(DatakeyResponse {
        plaintext,
        ciphertext: B64(s.ciphertext),
        key_id: s.key_id.to_string(),
        key_version: s.version.get(),
        ciphertext_for_recipient: for_recipient.map(B64),
    })
}

/// `POST /v1/kms/datakey`
pub async fn datakey(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    input: OneOrBatch<DatakeyRequest>,
) -> Response {
    if let Some(refused) = refused_by_failover(&state) {
        return refused;
    }
    answer!(input, |r| datakey_one(&state, &caller, r).await)
}

pub(crate) async fn rewrap_one(
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
    Authed(caller, ..): Authed,
    input: OneOrBatch<RewrapRequest>,
) -> Response {
    if let Some(refused) = refused_by_failover(&state) {
        return refused;
    }
    match input {
        OneOrBatch::Batch(requests) => super::crypto_batch::rewrap(&state, &caller, requests).await,
        one => answer!(one, |r| rewrap_one(&state, &caller, r).await),
    }
}

/// Exactly one of `message`, `digest` and `mu`; the key's algorithm checks the length.
fn sign_input<'a>(
    message: &'a Option<B64>,
    digest: &'a Option<B64>,
    mu: &'a Option<B64>,
) -> ApiResult<SignInput<'a>> {
    match (message, digest, mu) {
        (Some(m), None, None) => Ok(SignInput::Message(&m.0)),
        (None, Some(d), None) => Ok(SignInput::Digest(&d.0)),
        (None, None, Some(mu)) => Ok(SignInput::MlDsaMu(&mu.0)),
        _ => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "give exactly one of message, digest and mu",
        )),
    }
}

fn parse<T: std::str::FromStr>(name: Option<&str>) -> ApiResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    name.map(|name| {
        name.parse::<T>()
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))
    })
    .transpose()
}

pub(crate) async fn sign_one(
    state: &AppState,
    caller: &Caller,
    r: SignRequest,
) -> ApiResult<SignResponse> {
    let input = sign_input(&r.message, &r.digest, &r.mu)?;
    let algorithm = parse::<SignatureAlgorithm>(r.algorithm.as_deref())?;
    // ML-DSA, hybrid and RSA signing run on the bounded pool `startup` gives the service
    // (`crate::offload`); a full queue answers 503 with `Retry-After`.
    let s = state
        .kms
        .sign_attested(
            caller,
            &r.key_id,
            algorithm,
            input,
            r.attestation.as_ref().map(|a| a.0.as_slice()),
        )
        .await?;
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
    Authed(caller, ..): Authed,
    input: OneOrBatch<SignRequest>,
) -> Response {
    if let Some(refused) = refused_by_failover(&state) {
        return refused;
    }
    answer!(input, |r| sign_one(&state, &caller, r).await)
}

pub(crate) async fn verify_one(
    state: &AppState,
    caller: &Caller,
    r: VerifyRequest,
) -> ApiResult<VerifyResponse> {
    let input = sign_input(&r.message, &r.digest, &r.mu)?;
    let algorithm = parse::<SignatureAlgorithm>(r.algorithm.as_deref())?;
    let v = state
        .kms
        .verify_with(
            caller,
            &r.key_id,
            r.key_version,
            algorithm,
            input,
            &r.signature.0,
        )
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
    Authed(caller, ..): Authed,
    input: OneOrBatch<VerifyRequest>,
) -> Response {
    answer!(input, |r| verify_one(&state, &caller, r).await)
}

async fn encrypt_one(
    state: &AppState,
    caller: &Caller,
    r: EncryptRequest,
) -> ApiResult<CiphertextResponse> {
    let algorithm = parse::<EncryptionAlgorithm>(Some(&r.algorithm))?.ok_or(ApiError::new(
        ErrorCode::InvalidRequest,
        "algorithm is required",
    ))?;
    Ok(sealed(
        state
            .kms
            .encrypt_asymmetric(
                caller,
                &r.key_id,
                r.key_version,
                algorithm,
                r.plaintext.expose_secret(),
            )
            .await?,
    ))
}

/// `POST /v1/kms/encrypt`
pub async fn encrypt(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    input: OneOrBatch<EncryptRequest>,
) -> Response {
    answer!(input, |r| encrypt_one(&state, &caller, r).await)
}

async fn decrypt_one(
    state: &AppState,
    caller: &Caller,
    r: DecryptRequest,
) -> ApiResult<UnwrapResponse> {
    let algorithm = parse::<EncryptionAlgorithm>(Some(&r.algorithm))?.ok_or(ApiError::new(
        ErrorCode::InvalidRequest,
        "algorithm is required",
    ))?;
    let opened = state
        .kms
        .decrypt_asymmetric(caller, &r.key_id, r.key_version, algorithm, &r.ciphertext.0)
        .await?;
    Ok(opened_response(opened))
}

/// `POST /v1/kms/decrypt`
pub async fn decrypt(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    input: OneOrBatch<DecryptRequest>,
) -> Response {
    answer!(input, |r| decrypt_one(&state, &caller, r).await)
}

pub(crate) async fn mac_one(
    state: &AppState,
    caller: &Caller,
    r: MacRequest,
) -> ApiResult<MacResponse> {
    let attestation = r.attestation.as_ref().map(|a| a.0.as_slice());
    let (tag, who) = state
        .kms
        .mac_attested(caller, &r.key_id, &r.message.0, attestation)
        .await?;
    Ok(MacResponse {
        mac: B64(tag),
        key_id: who.key_id.to_string(),
        key_version: who.version.get(),
    })
}

/// `POST /v1/kms/mac`
pub async fn mac(
    State(state): State<AppState>,
    Authed(caller, ..): Authed,
    input: OneOrBatch<MacRequest>,
) -> Response {
    if let Some(refused) = refused_by_failover(&state) {
        return refused;
    }
    answer!(input, |r| mac_one(&state, &caller, r).await)
}

pub(crate) async fn verify_mac_one(
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
    Authed(caller, ..): Authed,
    input: OneOrBatch<VerifyMacRequest>,
) -> Response {
    if let Some(refused) = refused_by_failover(&state) {
        return refused;
    }
    answer!(input, |r| verify_mac_one(&state, &caller, r).await)
}
