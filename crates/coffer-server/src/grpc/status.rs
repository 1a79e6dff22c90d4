//! Errors become gRPC statuses in this one place: each of Coffer's error codes has one
//! gRPC code (as each has one HTTP status), the message is the native API's (no
//! internals for a 5xx), and the metadata carries the stable code (`coffer-error-code`)
//! and, when the caller should retry, `retry-after` in seconds. `x-request-id` is set
//! on every answer by `context::observe`.

use axum::response::Response;
use coffer_api::ErrorCode;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::error::ApiError;

/// The metadata key of Coffer's stable error code.
pub const ERROR_CODE: &str = "coffer-error-code";

/// The gRPC code of each of Coffer's codes, following the HTTP status it shares
/// (gRPC's own HTTP mapping: 400 `INVALID_ARGUMENT`, 401 `UNAUTHENTICATED`, 403
/// `PERMISSION_DENIED`, 404 `NOT_FOUND`, 429 `RESOURCE_EXHAUSTED`, 503 `UNAVAILABLE`).
pub fn code_of(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::InvalidCiphertext => Code::InvalidArgument,
        ErrorCode::Unauthorized => Code::Unauthenticated,
        ErrorCode::Forbidden
        | ErrorCode::AttestationRequired
        | ErrorCode::MeasurementNotAllowed => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::MethodNotAllowed => Code::Unimplemented,
        // A key's or version's state refuses the operation: retrying the same call
        // does not help until the state changes.
        ErrorCode::KeyDisabled
        | ErrorCode::VersionRetired
        | ErrorCode::KeyExpired
        | ErrorCode::WrongKeyPurpose
        | ErrorCode::VersionMismatch
        | ErrorCode::UntrackedUse => Code::FailedPrecondition,
        ErrorCode::Conflict => Code::Aborted,
        ErrorCode::RequestTimeout => Code::DeadlineExceeded,
        ErrorCode::PayloadTooLarge | ErrorCode::TooManyRequests | ErrorCode::QuotaExceeded => {
            Code::ResourceExhausted
        }
        ErrorCode::Sealed | ErrorCode::Unavailable | ErrorCode::BackendUnavailable => {
            Code::Unavailable
        }
        ErrorCode::Internal => Code::Internal,
    }
}

/// The status of `error`; the request's metrics are labelled with its code and reason.
pub fn status(error: ApiError) -> Status {
    crate::context::note_error(error.code, error.reason);
    let mut status = Status::new(code_of(error.code), error.message);
    let metadata = status.metadata_mut();
    metadata.insert(ERROR_CODE, MetadataValue::from_static(error.code.as_str()));
    if let Some(wait) = error.retry_after {
        // Whole seconds, never 0, as the native API's `Retry-After`.
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        metadata.insert("retry-after", MetadataValue::from(seconds));
    }
    status
}

/// `error` as a whole gRPC answer (a trailers-only response), for refusals made before
/// tonic has the call.
pub fn response(error: ApiError) -> Response {
    status(error).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_follows_its_http_status() {
        let codes = [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidCiphertext,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::KeyDisabled,
            ErrorCode::VersionRetired,
            ErrorCode::KeyExpired,
            ErrorCode::WrongKeyPurpose,
            ErrorCode::VersionMismatch,
            ErrorCode::AttestationRequired,
            ErrorCode::MeasurementNotAllowed,
            ErrorCode::UntrackedUse,
            ErrorCode::Conflict,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::TooManyRequests,
            ErrorCode::QuotaExceeded,
            ErrorCode::Sealed,
            ErrorCode::Unavailable,
            ErrorCode::BackendUnavailable,
            ErrorCode::Internal,
        ];
        for code in codes {
            let expected = match code.status() {
                400 => &[Code::InvalidArgument][..],
                401 => &[Code::Unauthenticated],
                403 => &[Code::PermissionDenied],
                404 => &[Code::NotFound],
                405 => &[Code::Unimplemented],
                408 => &[Code::DeadlineExceeded],
                409 => &[Code::FailedPrecondition, Code::Aborted],
                413 | 429 => &[Code::ResourceExhausted],
                500 => &[Code::Internal],
                503 => &[Code::Unavailable],
                other => panic!("{code:?}: no gRPC code for HTTP {other}"),
            };
            assert!(expected.contains(&code_of(code)), "{code:?}");
        }
    }

    #[test]
    fn a_status_carries_the_code_and_retry_after_but_no_internals() {
        let error = ApiError::from(coffer_core::kms::KmsError::Internal(
            "disk /dev/sda1 on fire".into(),
        ));
        let status = status(error);
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("sda1"), "{}", status.message());
        assert_eq!(status.metadata().get(ERROR_CODE).unwrap(), "internal");
        let shed = crate::admission::refusal(
            crate::admission::Class::Sign,
            crate::admission::Shed::TenantShare,
        );
        let status = super::status(shed);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.metadata().get(ERROR_CODE).unwrap(),
            "too_many_requests"
        );
        assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    }
}
