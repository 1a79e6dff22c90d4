//! Errors become HTTP in this one place: status, stable code, a message with no
//! internals for 5xx, and the request id.

use std::time::Duration;

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coffer_api::{ErrorBody, ErrorCode, ErrorDetail};
use coffer_core::kms::KmsError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// The message shown to the caller.
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, rounded up) when the caller should retry.
    pub retry_after: Option<Duration>,
    /// The `reason` label of `rejected_total` when it is more specific than the code
    /// (`backpressure`, `tenant_share`, `pq_policy`).
    pub reason: Option<&'static str>,
}

/// A response extension: the `reason` label `rejected_total` takes instead of the code.
#[derive(Debug, Clone, Copy)]
pub struct RejectReason(pub &'static str);

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            reason: None,
        }
    }

    /// The wire body, with the current request's id.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code,
            message: self.message.clone(),
            request_id: crate::context::request_id().to_string(),
        }
    }
}

impl From<KmsError> for ApiError {
    fn from(error: KmsError) -> Self {
        let code = match &error {
            KmsError::Invalid(_) => ErrorCode::InvalidRequest,
            KmsError::InvalidCiphertext => ErrorCode::InvalidCiphertext,
            KmsError::Unauthorized(_) => ErrorCode::Unauthorized,
            KmsError::Forbidden(_) | KmsError::Exceeds(_) => ErrorCode::Forbidden,
            KmsError::NotFound(_) | KmsError::KeyDestroyed => ErrorCode::NotFound,
            KmsError::KeyDisabled(_) => ErrorCode::KeyDisabled,
            KmsError::VersionRetired(_) => ErrorCode::VersionRetired,
            KmsError::KeyExpired(_) => ErrorCode::KeyExpired,
            KmsError::WrongPurpose { .. } => ErrorCode::WrongKeyPurpose,
            KmsError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            KmsError::AttestationRequired(_) => ErrorCode::AttestationRequired,
            KmsError::MeasurementNotAllowed(_) => ErrorCode::MeasurementNotAllowed,
            KmsError::Conflict(_) | KmsError::LimitReached(_) => ErrorCode::Conflict,
            KmsError::UntrackedUse(_) => ErrorCode::UntrackedUse,
            KmsError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            KmsError::Sealed => ErrorCode::Sealed,
            KmsError::Unavailable(_) | KmsError::Saturated { .. } => ErrorCode::Unavailable,
            KmsError::BackendUnavailable(_) => ErrorCode::BackendUnavailable,
            KmsError::Internal(_) => ErrorCode::Internal,
        };
        let retry_after = match &error {
            KmsError::Saturated { retry_after } => Some(*retry_after),
            // Nothing was done (no change without its audit entry, no answer without
            // it either): the caller may simply try again once the store recovers.
            KmsError::Unavailable(_) | KmsError::BackendUnavailable(_) => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        };
        // 5xx details go to the log (under the request id), never to the caller.
        if let KmsError::Internal(detail)
        | KmsError::Unavailable(detail)
        | KmsError::BackendUnavailable(detail) = &error
        {
            tracing::error!(error = %detail, "request failed");
        }
        // A full heavy-signing queue is backpressure too (seed 002's reason).
        let reason = matches!(error, KmsError::Saturated { .. }).then(|| {
            coffer_core::kms::count_reject("backpressure");
            "backpressure"
        });
        Self {
            retry_after,
            reason,
            ..Self::new(code, error.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds (RFC 9110), never 0: "retry at once" would invite a stampede.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        // The observing middleware reads the code (and reason) to label metrics.
        response.extensions_mut().insert(self.code);
        if let Some(reason) = self.reason {
            response.extensions_mut().insert(RejectReason(reason));
        }
        response
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Gives every error answer Coffer's JSON body. Axum's own refusals (a method the path
/// lacks, a path that is not UTF-8 or not percent-decodable, a body over the limit) are
/// plain text; clients parse one error shape, so those are rewritten here. Answers that
/// already carry a code, and JSON answers (the AWS front's own shape), pass untouched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 || response.extensions().get::<ErrorCode>().is_some() {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "this path does not take that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "request body is too large"),
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such endpoint"),
        StatusCode::REQUEST_TIMEOUT => (ErrorCode::RequestTimeout, "request timed out"),
        s if s.is_server_error() => (ErrorCode::Internal, "internal error"),
        _ => (
            ErrorCode::InvalidRequest,
            "the request's path, headers or body could not be read",
        ),
    };
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut rewritten = ApiError::new(code, message).into_response();
    if let Some(allow) = allow {
        rewritten
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    rewritten
}
