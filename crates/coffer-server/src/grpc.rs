//! The gRPC front (`grpc.addr`, off by default): `coffer.v1.Kms`
//! (`proto/coffer/v1/kms.proto`), the native API's hot operations on the same `Kms`.
//!
//! A call passes what a native request passes, in the same order: a request id and the
//! request's metrics and log line (`context::observe`), the bearer token from the
//! `authorization` metadata, the client certificate's principal, the in-flight slot of
//! the operation's class (`admission`), then its body under `max_body_bytes` and
//! `transport.body_timeout`; only then does tonic decode the message. The method then
//! calls the native handler's own per-item function (`handlers::crypto::wrap_one`, …),
//! so authorisation, audit entries and answers are the native route's.
//!
//! - this file — the router (one route per method, so metrics name the operation) and
//!   the gate every call passes;
//! - [`proto`] — the generated messages, server and client;
//! - `service` — the methods; `convert` — proto ↔ the native API's wire types;
//! - `status` — errors to gRPC statuses, in one place; [`codec`] — prost's, with a
//!   message that does not decode answered as the caller's error.

pub mod codec;
mod convert;
pub mod proto;
mod service;
mod status;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use coffer_api::ErrorCode;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::admission::Class;
use crate::error::ApiError;
use crate::state::AppState;

/// The service's path prefix (`/<package>.<service>/`).
pub(crate) const PREFIX: &str = "/coffer.v1.Kms/";

/// Each method: its path, the native route's operation label and admission class.
const METHODS: [(&str, &str, Class); 8] = [
    ("/coffer.v1.Kms/Wrap", "wrap", Class::Wrap),
    ("/coffer.v1.Kms/Unwrap", "unwrap", Class::Wrap),
    ("/coffer.v1.Kms/Datakey", "datakey", Class::Wrap),
    ("/coffer.v1.Kms/Rewrap", "rewrap", Class::Wrap),
    ("/coffer.v1.Kms/Sign", "sign", Class::Sign),
    ("/coffer.v1.Kms/Verify", "verify", Class::Verify),
    ("/coffer.v1.Kms/Mac", "mac", Class::Sign),
    ("/coffer.v1.Kms/VerifyMac", "verify_mac", Class::Verify),
];

fn method(path: &str) -> Option<(&'static str, Class)> {
    METHODS
        .iter()
        .find(|(p, ..)| *p == path)
        .map(|(_, op, class)| (*op, *class))
}

/// The `op` label of a gRPC method's path: the native route's (`wrap`, `sign`, …).
pub(crate) fn operation(path: &str) -> &'static str {
    method(path).map_or("other", |(op, _)| op)
}

/// The gRPC router: each method of `coffer.v1.Kms` behind the gate, anything else
/// `UNIMPLEMENTED`.
pub fn router(state: AppState) -> Router {
    let server = proto::kms_server::KmsServer::new(service::Front::new(state.clone()))
        .max_decoding_message_size(state.max_body_bytes);
    let mut router = Router::new();
    for (path, ..) in METHODS {
        router = router.route_service(path, server.clone());
    }
    router
        .layer(axum::middleware::from_fn_with_state(state, gate))
        .layer(axum::middleware::from_fn(crate::context::observe))
        .fallback(async || {
            status::response(ApiError::new(
                ErrorCode::MethodNotAllowed,
                "no such method: coffer.v1.Kms has Wrap, Unwrap, Datakey, Rewrap, Sign, \
                 Verify, Mac and VerifyMac",
            ))
        })
}

/// What every call passes before tonic reads it: the token, the client certificate's
/// principal and an in-flight slot (held until the answer is built), then the body,
/// bounded in size and time.
async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let class = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| method(path.as_str()))
        .map_or(Class::Admin, |(_, class)| class);
    let (mut parts, body) = request.into_parts();
    let (caller, slot) = match crate::extract::authenticate(
        &parts.headers,
        &parts.extensions,
        &state,
        class,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(error) => return status::response(error),
    };
    let body = match read_body(body, &state).await {
        Ok(bytes) => bytes,
        Err(error) => return status::response(error),
    };
    parts.extensions.insert(caller);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    drop(slot);
    response
}

/// The framing gRPC puts before a message: a compression flag and a 4-byte length.
const FRAME_HEADER: usize = 5;

/// A call's body: one message of at most `max_body_bytes`, arriving within
/// `transport.body_timeout`, as for the native API's bodies (`extract`).
async fn read_body(body: Body, state: &AppState) -> Result<Bytes, ApiError> {
    let timeout = state.transport.body_timeout;
    let limited = Limited::new(body, state.max_body_bytes + FRAME_HEADER);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the body did not arrive within {}s", timeout.as_secs()),
        )),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the message is larger than {} bytes", state.max_body_bytes),
        )),
        Ok(Err(_)) => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the body could not be read",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_has_the_native_routes_label_and_class() {
        use coffer_api::paths;
        let native = [
            (paths::WRAP, "wrap"),
            (paths::UNWRAP, "unwrap"),
            (paths::DATAKEY, "datakey"),
            (paths::REWRAP, "rewrap"),
            (paths::SIGN, "sign"),
            (paths::VERIFY, "verify"),
            (paths::MAC, "mac"),
            (paths::VERIFY_MAC, "verify_mac"),
        ];
        for ((path, op, class), (native_path, native_op)) in METHODS.iter().zip(native) {
            assert!(path.starts_with(PREFIX), "{path}");
            assert_eq!(*op, native_op);
            assert_eq!(*class, crate::extract::class_of(native_path), "{path}");
            assert_eq!(operation(path), *op);
        }
        assert_eq!(operation("/coffer.v1.Kms/Encrypt"), "other");
    }
}
