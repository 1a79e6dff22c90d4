//! The error body every endpoint answers with, and the stable codes in it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// One error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code.
    pub code: ErrorCode,
    /// One human sentence. Never secret bytes, never internals of a 5xx.
    pub message: String,
    /// The request id, also in the `x-request-id` header and the server's logs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

/// Stable error codes; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed (JSON, base64, unknown field, bad value).
    InvalidRequest,
    /// 400: the ciphertext is not Coffer's, was modified, or its context does not match.
    InvalidCiphertext,
    /// 401: no token, or a token that is malformed, forged, expired or revoked.
    Unauthorized,
    /// 403: the token does not allow this operation.
    Forbidden,
    /// 404: no such object in the caller's tenant (absent or another tenant's).
    NotFound,
    /// 405: the path exists but not with this method (`Allow` names those it has).
    MethodNotAllowed,
    /// 409: the key is disabled or pending deletion.
    KeyDisabled,
    /// 409: the ciphertext's or signature's key version is retired or destroyed.
    VersionRetired,
    /// 409: the signing key version has expired.
    KeyExpired,
    /// 409: the key's purpose does not allow this operation.
    WrongKeyPurpose,
    /// 409: the key's primary version is not the one the request names
    /// (`expect_version` of a rotation start).
    VersionMismatch,
    /// 403: the key's attestation policy asks for an attestation document for this
    /// operation, and the request has none, or one that does not verify.
    AttestationRequired,
    /// 403: the attestation verified, but its measurement is not on the key's
    /// allow-list.
    MeasurementNotAllowed,
    /// 409: a rotation would retire a version recently used for untracked material
    /// (start it with `retire_untracked` to accept that).
    UntrackedUse,
    /// 409: another state conflict (alias taken, concurrent change, illegal transition).
    Conflict,
    /// 408: the request body did not arrive within `transport.body_timeout`.
    RequestTimeout,
    /// 413: the body is larger than the server accepts.
    PayloadTooLarge,
    /// 429: the caller is over its share; retry after `Retry-After`.
    TooManyRequests,
    /// 503: the server is sealed.
    Sealed,
    /// 503: the server cannot serve now (store down, saturated).
    Unavailable,
    /// 503: custody's backend (an HSM) is unreachable; signing and unwrapping resume
    /// when it is back.
    BackendUnavailable,
    /// 500: an internal failure; details are in the server log under the request id.
    Internal,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub const fn status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::InvalidCiphertext => 400,
            Self::Unauthorized => 401,
            Self::Forbidden | Self::AttestationRequired | Self::MeasurementNotAllowed => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::KeyDisabled
            | Self::VersionRetired
            | Self::KeyExpired
            | Self::WrongKeyPurpose
            | Self::VersionMismatch
            | Self::UntrackedUse
            | Self::Conflict => 409,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::TooManyRequests => 429,
            Self::Sealed | Self::Unavailable | Self::BackendUnavailable => 503,
            Self::Internal => 500,
        }
    }

    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidCiphertext => "invalid_ciphertext",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::AttestationRequired => "attestation_required",
            Self::MeasurementNotAllowed => "measurement_not_allowed",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::KeyDisabled => "key_disabled",
            Self::VersionRetired => "version_retired",
            Self::KeyExpired => "key_expired",
            Self::WrongKeyPurpose => "wrong_key_purpose",
            Self::VersionMismatch => "version_mismatch",
            Self::UntrackedUse => "untracked_use",
            Self::Conflict => "conflict",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::TooManyRequests => "too_many_requests",
            Self::Sealed => "sealed",
            Self::Unavailable => "unavailable",
            Self::BackendUnavailable => "backend_unavailable",
            Self::Internal => "internal",
        }
    }
}
