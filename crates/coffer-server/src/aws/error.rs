//! Errors as AWS KMS shapes them: HTTP 400 (a client error is never a 5xx) with
//! `{"__type": "<Exception>", "message": "…"}`; 5xx only for the server's own faults.
//! A request shed by the operating envelope (in-flight caps, a tenant's share, the
//! full heavy-signing queue) is `ThrottlingException`, as AWS KMS answers a request
//! over its rate quota: HTTP 400, which the AWS SDKs retry with back-off.

use std::time::Duration;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use coffer_api::ErrorCode;
use coffer_core::kms::KmsError;
use schemars::JsonSchema;
use serde::Serialize;

use super::sigv4::SigV4Error;

/// The body of an AWS error answer (its schema is in the OpenAPI document).
#[derive(Debug, Serialize, JsonSchema)]
pub struct AwsErrorBody {
    /// The exception, e.g. `NotFoundException`.
    #[serde(rename = "__type")]
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

/// An AWS error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    /// The `__type`, e.g. `NotFoundException`.
    pub kind: &'static str,
    /// The message.
    pub message: String,
    /// HTTP status.
    pub status: u16,
    /// The native code it stands for (labels `rejected_total` like the native API).
    pub code: ErrorCode,
    /// The `reason` label of `rejected_total` when more specific than the code
    /// (`backpressure`, `tenant_share`), as the native API labels its sheds.
    pub reason: Option<&'static str>,
    /// Sent as `Retry-After` (whole seconds) when the caller should wait.
    pub retry_after: Option<Duration>,
}

impl AwsError {
    /// A client error (HTTP 400).
    pub fn client(kind: &'static str, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: 400,
            code,
            reason: None,
            retry_after: None,
        }
    }

    /// `ThrottlingException` for a request the operating envelope shed, keeping the
    /// shed's reason (`rejected_total{reason="backpressure"|"tenant_share"}`) and its
    /// `Retry-After`.
    pub(crate) fn throttled(shed: crate::error::ApiError) -> Self {
        Self {
            reason: shed.reason,
            retry_after: shed.retry_after,
            ..Self::client("ThrottlingException", shed.code, shed.message)
        }
    }

    /// `ValidationException`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::client("ValidationException", ErrorCode::InvalidRequest, message)
    }

    /// `UnsupportedOperationException`: an operation or spec Coffer does not offer.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::client(
            "UnsupportedOperationException",
            ErrorCode::InvalidRequest,
            message,
        )
    }

    /// `NotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client("NotFoundException", ErrorCode::NotFound, message)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!(AwsErrorBody {
            kind: self.kind.to_owned(),
            message: self.message.clone(),
        })
    }
}

impl From<KmsError> for AwsError {
    fn from(error: KmsError) -> Self {
        // The heavy-signing queue is full: counted and labelled as the native API's
        // shed (`backpressure`, with its Retry-After), answered as AWS throttles.
        if matches!(error, KmsError::Saturated { .. }) {
            return Self::throttled(crate::error::ApiError::from(error));
        }
        let message = error.to_string();
        let client = |kind, code| Self::client(kind, code, message.clone());
        match &error {
            KmsError::Invalid(_) => client("ValidationException", ErrorCode::InvalidRequest),
            KmsError::InvalidCiphertext => {
                client("InvalidCiphertextException", ErrorCode::InvalidCiphertext)
            }
            KmsError::Unauthorized(_) => Self::client(
                "UnrecognizedClientException",
                ErrorCode::Unauthorized,
                "The security token included in the request is invalid.",
            ),
            KmsError::Forbidden(_) | KmsError::Exceeds(_) => {
                client("AccessDeniedException", ErrorCode::Forbidden)
            }
            // AWS KMS answers a key policy's attestation condition that does not hold
            // with AccessDeniedException.
            KmsError::AttestationRequired(_) => {
                client("AccessDeniedException", ErrorCode::AttestationRequired)
            }
            KmsError::MeasurementNotAllowed(_) => {
                client("AccessDeniedException", ErrorCode::MeasurementNotAllowed)
            }
            KmsError::NotFound(_) | KmsError::KeyDestroyed => {
                client("NotFoundException", ErrorCode::NotFound)
            }
            KmsError::KeyDisabled("disabled") => {
                client("DisabledException", ErrorCode::KeyDisabled)
            }
            KmsError::KeyDisabled(_) => client("KMSInvalidStateException", ErrorCode::KeyDisabled),
            KmsError::VersionRetired(_) => {
                client("KMSInvalidStateException", ErrorCode::VersionRetired)
            }
            KmsError::KeyExpired(_) => client("KMSInvalidStateException", ErrorCode::KeyExpired),
            KmsError::WrongPurpose { .. } => {
                client("InvalidKeyUsageException", ErrorCode::WrongKeyPurpose)
            }
            KmsError::LimitReached(_) => client("LimitExceededException", ErrorCode::Conflict),
            KmsError::VersionMismatch { .. } | KmsError::Conflict(_) => {
                client("KMSInvalidStateException", ErrorCode::Conflict)
            }
            // A rotation refused for recent untracked use of the old version.
            KmsError::UntrackedUse(_) => {
                client("KMSInvalidStateException", ErrorCode::UntrackedUse)
            }
            // AWS answers a quota (keys, aliases, grants per account) this way.
            KmsError::QuotaExceeded(_) => {
                client("LimitExceededException", ErrorCode::QuotaExceeded)
            }
            // Answered above, with its reason; the arm keeps the match exhaustive.
            KmsError::Saturated { .. } => client("ThrottlingException", ErrorCode::Unavailable),
            // The server's own state: retryable 5xx, as AWS answers a dependency failure.
            KmsError::Sealed | KmsError::Unavailable(_) => Self {
                status: 503,
                ..client("DependencyTimeoutException", ErrorCode::Unavailable)
            },
            // Custody's HSM is away: retryable, as AWS answers an unreachable key store.
            KmsError::BackendUnavailable(_) => Self {
                status: 503,
                ..client("DependencyTimeoutException", ErrorCode::BackendUnavailable)
            },
            KmsError::Internal(detail) => {
                tracing::error!(error = %detail, "AWS request failed");
                Self {
                    kind: "KMSInternalException",
                    message: "internal error".into(),
                    status: 500,
                    code: ErrorCode::Internal,
                    reason: None,
                    retry_after: None,
                }
            }
        }
    }
}

impl From<SigV4Error> for AwsError {
    fn from(error: SigV4Error) -> Self {
        let kind = match error {
            SigV4Error::Missing => "MissingAuthenticationTokenException",
            SigV4Error::Incomplete(_) => "IncompleteSignatureException",
            SigV4Error::Invalid(_) => "InvalidSignatureException",
        };
        Self::client(kind, ErrorCode::Unauthorized, error.to_string())
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, super::json_body(&self.body())).into_response();
        if let Ok(value) = HeaderValue::from_str(self.kind) {
            response.headers_mut().insert("x-amzn-errortype", value);
        }
        if let Some(wait) = self.retry_after {
            // Whole seconds, never 0, as the native API sends it.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response.extensions_mut().insert(self.code);
        if let Some(reason) = self.reason {
            response
                .extensions_mut()
                .insert(crate::error::RejectReason(reason));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_400_with_the_aws_type() {
        let cases: Vec<(KmsError, &str)> = vec![
            (KmsError::NotFound("key"), "NotFoundException"),
            (KmsError::KeyDestroyed, "NotFoundException"),
            (KmsError::KeyDisabled("disabled"), "DisabledException"),
            (
                KmsError::KeyDisabled("pending deletion"),
                "KMSInvalidStateException",
            ),
            (KmsError::InvalidCiphertext, "InvalidCiphertextException"),
            (KmsError::Invalid("x".into()), "ValidationException"),
            (KmsError::Forbidden("no"), "AccessDeniedException"),
            (KmsError::Unauthorized("no"), "UnrecognizedClientException"),
            (
                KmsError::WrongPurpose {
                    purpose: "sign",
                    operation: "encrypt",
                },
                "InvalidKeyUsageException",
            ),
            (
                KmsError::Saturated {
                    retry_after: std::time::Duration::from_secs(1),
                },
                "ThrottlingException",
            ),
            (
                KmsError::QuotaExceeded(coffer_core::quota::QuotaExceeded {
                    quota: coffer_core::quota::Quota::AliasesPerTenant,
                    limit: 2,
                }),
                "LimitExceededException",
            ),
        ];
        for (error, kind) in cases {
            let aws = AwsError::from(error);
            assert_eq!((aws.kind, aws.status), (kind, 400));
            assert_eq!(aws.body()["__type"], kind);
            assert!(aws.body()["message"].is_string());
        }
        let quota = AwsError::from(KmsError::QuotaExceeded(coffer_core::quota::QuotaExceeded {
            quota: coffer_core::quota::Quota::KeysPerTenant,
            limit: 7,
        }));
        assert_eq!(quota.code, ErrorCode::QuotaExceeded);
        assert!(
            quota.message.contains("keys_per_tenant") && quota.message.contains('7'),
            "{}",
            quota.message
        );
    }

    /// A shed AWS request is `ThrottlingException` (400, as AWS KMS throttles) with
    /// `Retry-After`, labelled for `rejected_total` as the native API's sheds are.
    #[test]
    fn sheds_are_throttling_with_their_reason_and_retry_after() {
        use crate::admission::{Class, Shed, refusal};
        let sheds = [
            (
                AwsError::throttled(refusal(Class::Wrap, Shed::Backpressure)),
                "backpressure",
            ),
            (
                AwsError::throttled(refusal(Class::Sign, Shed::TenantShare)),
                "tenant_share",
            ),
            (
                AwsError::from(KmsError::Saturated {
                    retry_after: std::time::Duration::from_millis(1500),
                }),
                "backpressure",
            ),
        ];
        for (error, reason) in sheds {
            assert_eq!((error.kind, error.status), ("ThrottlingException", 400));
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            assert_eq!(
                response.headers()["x-amzn-errortype"],
                "ThrottlingException"
            );
            let wait = response.headers()[RETRY_AFTER].to_str().unwrap();
            assert!(wait == "1" || wait == "2", "{wait}");
            let label = response.extensions().get::<crate::error::RejectReason>();
            assert_eq!(label.map(|r| r.0), Some(reason));
        }
    }

    #[test]
    fn only_the_servers_own_faults_are_5xx_and_hide_details() {
        let internal = AwsError::from(KmsError::Internal("disk on fire".into()));
        assert_eq!(
            (internal.kind, internal.status),
            ("KMSInternalException", 500)
        );
        assert!(!internal.message.contains("disk"));
        assert_eq!(AwsError::from(KmsError::Sealed).status, 503);
        for sig in [
            SigV4Error::Missing,
            SigV4Error::Incomplete("x"),
            SigV4Error::Invalid("y"),
        ] {
            assert_eq!(AwsError::from(sig).status, 400);
        }
    }
}
