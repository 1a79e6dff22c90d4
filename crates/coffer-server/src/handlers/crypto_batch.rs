//! The batch form of wrap, unwrap and rewrap: each item parsed on its own (a bad item
//! answers its own error), the valid ones run through the service's batch call, which
//! records every item's audit entry in one group (one durable commit per batch).

use axum::Json;
use axum::response::{IntoResponse, Response};
use coffer_api::crypto::{Batch, ItemResult, RewrapRequest, UnwrapRequest, WrapRequest};
use coffer_core::kms::{Caller, KmsResult, RewrapItem, UnwrapItem, WrapItem};
use coffer_crypto::EncryptionContext;

use super::crypto::sealed;
use crate::convert::context;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Puts the service's results back between the items that failed to parse, in order.
fn answer<P, T, R>(
    parsed: &[ApiResult<P>],
    results: Vec<KmsResult<T>>,
    to_wire: impl Fn(T) -> R,
) -> Response
where
    R: serde::Serialize,
{
    let mut results = results.into_iter();
    let items = parsed
        .iter()
        .map(|p| {
            let outcome = match p {
                Err(error) => Err(error.detail()),
                Ok(_) => match results.next() {
                    Some(Ok(value)) => Ok(to_wire(value)),
                    Some(Err(error)) => Err(ApiError::from(error).detail()),
                    None => Err(ApiError::from(coffer_core::kms::KmsError::Internal(
                        "a batch item got no result".into(),
                    ))
                    .detail()),
                },
            };
            match outcome {
                Ok(value) => ItemResult::Ok(value),
                Err(error) => ItemResult::Err { error },
            }
        })
        .collect();
    Json(Batch { items }).into_response()
}

/// `POST /v1/kms/wrap` with `items`.
pub async fn wrap(state: &AppState, caller: &Caller, requests: Vec<WrapRequest>) -> Response {
    let parsed: Vec<ApiResult<(WrapRequest, EncryptionContext)>> = requests
        .into_iter()
        .map(|r| {
            let c = context(&r.context)?;
            Ok((r, c))
        })
        .collect();
    let items: Vec<WrapItem<'_>> = parsed
        .iter()
        .flatten()
        .map(|(r, c)| WrapItem {
            reference: &r.key_id,
            plaintext: r.plaintext.expose_secret(),
            context: c,
            track_id: r.track_id.as_deref(),
        })
        .collect();
    let results = state.kms.wrap_batch(caller, &items).await;
    answer(&parsed, results, sealed)
}

/// `POST /v1/kms/unwrap` with `items`.
pub async fn unwrap(state: &AppState, caller: &Caller, requests: Vec<UnwrapRequest>) -> Response {
    let parsed: Vec<ApiResult<(UnwrapRequest, EncryptionContext)>> = requests
        .into_iter()
        .map(|r| {
            let c = context(&r.context)?;
            Ok((r, c))
        })
        .collect();
    let items: Vec<UnwrapItem<'_>> = parsed
        .iter()
        .flatten()
        .map(|(r, c)| UnwrapItem {
            ciphertext: &r.ciphertext.0,
            context: c,
            attestation: r.attestation.as_ref().map(|a| a.0.as_slice()),
        })
        .collect();
    let results = state.kms.unwrap_batch(caller, &items).await;
    answer(&parsed, results, super::crypto::opened_response)
}

type ParsedRewrap = (RewrapRequest, EncryptionContext, Option<EncryptionContext>);

fn parse_rewrap(r: RewrapRequest) -> ApiResult<ParsedRewrap> {
    let ctx = context(&r.context)?;
    let destination = r.destination_context.as_ref().map(context).transpose()?;
    Ok((r, ctx, destination))
}

/// `POST /v1/kms/rewrap` with `items`: caller-held ciphertexts moved to the primary
/// version (or another key) in one round trip and one audit commit.
pub async fn rewrap(state: &AppState, caller: &Caller, requests: Vec<RewrapRequest>) -> Response {
    let parsed: Vec<ApiResult<ParsedRewrap>> = requests.into_iter().map(parse_rewrap).collect();
    let items: Vec<RewrapItem<'_>> = parsed
        .iter()
        .flatten()
        .map(|(r, c, d)| RewrapItem {
            ciphertext: &r.ciphertext.0,
            context: c,
            destination: r.key_id.as_deref(),
            destination_context: d.as_ref(),
        })
        .collect();
    let results = state.kms.rewrap_batch(caller, &items).await;
    answer(&parsed, results, sealed)
}
