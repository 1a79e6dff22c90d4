//! Extractors: JSON bodies with Coffer's error body on rejection, the authenticated
//! caller, and the one-or-batch form of the hot operations.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use coffer_api::ErrorCode;
use coffer_api::crypto::{Batch, MAX_BATCH_ITEMS};
use coffer_core::kms::{Caller, KmsError, Unauthenticated};
use serde::de::DeserializeOwned;

use crate::admission::{self, Class, Slot};
use crate::error::ApiError;
use crate::state::AppState;
use crate::transport::ClientAddr;
use crate::transport::peer::Peer;

/// A JSON body; malformed JSON, unknown fields and bad base64 answer 400 with the
/// parser's reason, an oversized body 413.
pub struct ApiJson<T>(pub T);

async fn body_bytes(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    // A body trickled or never finished holds a connection and a task: bounded.
    let timeout = state.transport.body_timeout;
    tokio::time::timeout(timeout, Bytes::from_request(request, state))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the body did not arrive within {}s", timeout.as_secs()),
            )
        })?
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {} bytes", state.max_body_bytes),
                )
            } else {
                ApiError::new(ErrorCode::InvalidRequest, "the body could not be read")
            }
        })
}

/// A request body: one JSON object of type `T`. serde would also read a struct from a
/// JSON array of its fields in order (`[null, null]` as an unseal request with neither
/// field); every body of the API is an object, so anything else is refused here.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "invalid JSON body: expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("invalid JSON body: {e}")))
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        parse(&bytes).map(Self)
    }
}

/// One request or `{"items": [...]}`.
pub enum OneOrBatch<T> {
    /// A single request.
    One(T),
    /// A batch.
    Batch(Vec<T>),
}

impl<T: DeserializeOwned> FromRequest<AppState> for OneOrBatch<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = body_bytes(request, state).await?;
        // A body whose first member is `items` is a batch and is parsed once, as one;
        // anything else is tried as the single form first. A batch written with
        // another member before `items` fails that (unknown field) and is parsed
        // second, as before. If both fail, the single form's error is the helpful one.
        if starts_with_items(&bytes) {
            return Self::batch(&bytes);
        }
        match parse::<T>(&bytes) {
            Ok(one) => Ok(Self::One(one)),
            Err(single_error) => Self::batch(&bytes).map_err(|_| single_error),
        }
    }
}

impl<T: DeserializeOwned> OneOrBatch<T> {
    fn batch(bytes: &[u8]) -> Result<Self, ApiError> {
        let batch = parse::<Batch<T>>(bytes)?;
        if batch.items.len() > MAX_BATCH_ITEMS {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("a batch takes at most {MAX_BATCH_ITEMS} items"),
            ));
        }
        Ok(Self::Batch(batch.items))
    }
}

/// Whether a JSON body's first member is named `items` (written plainly, without
/// escapes): `{`, whitespace, `"items"`, whitespace, `:`. No single request has such a
/// member, so the body can only be a batch.
fn starts_with_items(bytes: &[u8]) -> bool {
    let rest = skip_whitespace(bytes);
    let Some(rest) = rest.strip_prefix(b"{") else {
        return false;
    };
    let Some(rest) = skip_whitespace(rest).strip_prefix(b"\"items\"") else {
        return false;
    };
    skip_whitespace(rest).starts_with(b":")
}

fn skip_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// The authenticated caller (`Authorization: Bearer …`). Memory only: no store.
///
/// It also holds the request's in-flight slot of its route's class (`admission`),
/// taken right after authentication, before the body is read: a shed request does no
/// work. The slot is freed when the handler returns (its arguments are dropped then).
pub struct Authed(
    pub Caller,
    #[expect(dead_code, reason = "held for its Drop, which frees the slot")] pub Slot,
);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let class = parts
            .extensions
            .get::<MatchedPath>()
            .map_or(Class::Admin, |path| class_of(path.as_str()));
        let (caller, slot) = authenticate(&parts.headers, &parts.extensions, state, class).await?;
        Ok(Authed(caller, slot))
    }
}

/// The caller of a request with these `headers` (`Authorization: Bearer …`, or the gRPC
/// metadata of that name), checked against the client certificate's principal when
/// there is one, and its in-flight slot of `class`. Memory only. Both the native API
/// ([`Authed`]) and the gRPC front (`crate::grpc`) admit their callers here.
pub(crate) async fn authenticate(
    headers: &HeaderMap,
    extensions: &Extensions,
    state: &AppState,
    class: Class,
) -> Result<(Caller, Slot), ApiError> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let bearer = header.and_then(|h| h.strip_prefix("Bearer "));
    let authenticated = match (header, bearer) {
        (None, _) => Err(KmsError::Unauthorized(
            "missing Authorization: Bearer token",
        )),
        (Some(_), None) => Err(KmsError::Unauthorized(
            "expected Authorization: Bearer <token>",
        )),
        (_, Some(token)) => state.kms.authenticate(token),
    };
    let mut caller = match authenticated {
        Ok(caller) => caller,
        // A 401 is a refusal like any other: audited under the refusal limit, keyed
        // as `Kms::record_unauthenticated` explains, without waiting for a commit.
        Err(KmsError::Unauthorized(reason)) => {
            let refused = Unauthenticated {
                bearer,
                peer: extensions.get::<ClientAddr>().map(|addr| addr.0),
                reason,
                request_id: &crate::context::request_id(),
            };
            state.kms.record_unauthenticated(refused).await?;
            return Err(KmsError::Unauthorized(reason).into());
        }
        Err(other) => return Err(other.into()),
    };
    // Over a connection with a client certificate, only tokens of the principal it
    // names (`transport::peer`).
    if let Some(peer) = extensions.get::<Peer>()
        && !peer.admits(&caller)
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this token is not the principal the client certificate names",
        ));
    }
    caller.request_id = crate::context::request_id();
    crate::context::set_tenant(caller.grants.tenant());
    let slot = state
        .admission
        .admit(class, caller.grants.tenant())
        .map_err(|shed| admission::refusal(class, shed))?;
    Ok((caller, slot))
}

/// The class of a native API route: the hot operations by what they do, the rest
/// (key management, tenants, tokens, rotations, audit) `admin`.
pub(crate) fn class_of(route: &str) -> Class {
    use coffer_api::paths;
    match route {
        paths::SIGN | paths::MAC => Class::Sign,
        paths::VERIFY | paths::VERIFY_MAC => Class::Verify,
        paths::WRAP
        | paths::UNWRAP
        | paths::DATAKEY
        | paths::REWRAP
        | paths::ENCRYPT
        | paths::DECRYPT => Class::Wrap,
        _ => Class::Admin,
    }
}

/// A query string; a malformed one answers 400 with Coffer's error body.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|rejection| ApiError::new(ErrorCode::InvalidRequest, rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::starts_with_items;

    #[test]
    fn a_body_opening_with_items_is_a_batch_and_nothing_else_is() {
        for batch in [
            &br#"{"items":[]}"#[..],
            br#"  { "items" : [{"key_id":"k"}] }"#,
            b"{\n\t\"items\"\r\n:[]}",
        ] {
            assert!(
                starts_with_items(batch),
                "{}",
                String::from_utf8_lossy(batch)
            );
        }
        for other in [
            &br#"{"key_id":"k","plaintext":"aGk="}"#[..],
            br#"{"itemsx":[]}"#,
            br#"{"items_":[]}"#,
            br#"{"items"}"#,
            br#"["items"]"#,
            br#"{"key_id":"k","items":[]}"#,
            b"",
            b"{",
            b"{\"items",
        ] {
            assert!(
                !starts_with_items(other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
