//! The client's one error type, and the parsing of the server's error body.

use coffer_api::{ErrorBody, ErrorCode};
use thiserror::Error;

/// Everything a call can fail with.
///
/// No variant carries the token or plaintext: API messages are the server's (which
/// never echoes secrets), transport and decode messages are built without request or
/// response bodies.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{}: {message} (request {})", code.as_str(), shown_request_id(request_id))]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable code from the body (`Internal` when the body was not an error body).
        code: ErrorCode,
        /// The server's sentence.
        message: String,
        /// The request id, for finding the call in the server's logs.
        request_id: String,
    },
    /// The request did not complete (connection refused, timeout, ...).
    #[error("transport: {0}")]
    Transport(String),
    /// The answer was not the JSON expected.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A key reference that is neither a key id nor `alias/NAME`, or that would
    /// address another path (`?`, `#`, `..`, `%`, whitespace, an extra `/`).
    #[error("invalid key reference: use a key id or alias/NAME")]
    InvalidReference,
    /// The base URL is not an absolute `http://` or `https://` URL.
    #[error("invalid base URL: {0}")]
    InvalidBaseUrl(String),
    /// The token cannot be sent as an HTTP header (control characters or non-ASCII).
    /// The token itself is not shown.
    #[error("invalid token: it must be printable ASCII")]
    InvalidToken,
}

fn shown_request_id(id: &str) -> &str {
    if id.is_empty() { "unknown" } else { id }
}

/// Builds [`ClientError::Api`] from a non-success answer. `header_request_id` is the
/// `x-request-id` header, used when the body carries none (a proxy's error page, say).
pub(crate) fn api_error(status: u16, body: &[u8], header_request_id: Option<&str>) -> ClientError {
    let header_id = header_request_id.unwrap_or_default().to_owned();
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ClientError::Api {
            status,
            code: error.code,
            message: error.message,
            request_id: if error.request_id.is_empty() {
                header_id
            } else {
                error.request_id
            },
        },
        // The body is not shown: it may be anything, including a proxy echoing the
        // request.
        Err(_) => ClientError::Api {
            status,
            code: ErrorCode::Internal,
            message: format!("the server answered HTTP {status} without an error body"),
            request_id: header_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(err: &ClientError) -> (u16, ErrorCode, &str, &str) {
        match err {
            ClientError::Api {
                status,
                code,
                message,
                request_id,
            } => (*status, *code, message, request_id),
            other => panic!("expected Api, got {other:?}"),
        }
    }

    #[test]
    fn an_error_body_is_parsed() {
        let body =
            br#"{"error":{"code":"key_disabled","message":"key is disabled","request_id":"r-1"}}"#;
        let err = api_error(409, body, Some("r-header"));
        assert_eq!(
            parts(&err),
            (409, ErrorCode::KeyDisabled, "key is disabled", "r-1")
        );
        assert_eq!(
            err.to_string(),
            "key_disabled: key is disabled (request r-1)"
        );
    }

    #[test]
    fn the_header_request_id_fills_a_missing_one() {
        let body = br#"{"error":{"code":"not_found","message":"no such key"}}"#;
        let err = api_error(404, body, Some("r-header"));
        assert_eq!(
            parts(&err),
            (404, ErrorCode::NotFound, "no such key", "r-header")
        );
    }

    #[test]
    fn a_body_that_is_not_an_error_body_becomes_internal() {
        for body in [&b"<html>bad gateway</html>"[..], b"", br#"{"error":"x"}"#] {
            let err = api_error(502, body, None);
            let (status, code, message, id) = parts(&err);
            assert_eq!((status, code, id), (502, ErrorCode::Internal, ""));
            assert!(message.contains("502"), "{message}");
            assert!(
                !message.contains("html"),
                "the body is not echoed: {message}"
            );
            assert_eq!(
                err.to_string(),
                "internal: the server answered HTTP 502 without an error body (request unknown)"
            );
        }
    }

    #[test]
    fn an_unknown_code_is_not_an_error_body() {
        let body = br#"{"error":{"code":"brand_new","message":"m","request_id":"r"}}"#;
        assert_eq!(parts(&api_error(418, body, None)).1, ErrorCode::Internal);
    }
}
