//! The service's errors: one variant per answer a caller can get, so the HTTP layer
//! maps them in one `match`.

use thiserror::Error;

use crate::custody::CustodyError;
use crate::error::CoreError;
use crate::store::StoreError;

/// Every failure of a `Kms` operation.
#[derive(Debug, Error)]
pub enum KmsError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The ciphertext is not Coffer's, was modified, or its context/tenant differ.
    #[error(
        "the ciphertext cannot be decrypted: it was modified, or its key, tenant or encryption context differ"
    )]
    InvalidCiphertext,
    /// Missing, malformed, forged, expired or revoked token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token does not allow the operation.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request asks for more than the token has (a token minted wider or longer
    /// than its minter); the message names what is beyond it.
    #[error("{0}")]
    Exceeds(String),
    /// Absent in the caller's tenant (or another tenant's: the two look the same).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The key is disabled or pending deletion.
    #[error("the key is {0}")]
    KeyDisabled(&'static str),
    /// The key was destroyed after its scheduled deletion: its material is gone, so
    /// every cryptographic operation answers as for an absent key (404), while
    /// management views still show the destroyed key.
    #[error("the key was destroyed: its material no longer exists")]
    KeyDestroyed,
    /// The version is retired or destroyed.
    #[error("key version {0} is retired and no longer decrypts or verifies")]
    VersionRetired(u32),
    /// The signing version has expired (or is not yet valid).
    #[error("signing key has expired: version {0} is outside its validity")]
    KeyExpired(u32),
    /// The key's purpose does not allow this operation.
    #[error("a {purpose} key cannot {operation}")]
    WrongPurpose {
        /// The key's purpose.
        purpose: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// A rotation was started on the condition that the key's primary version is
    /// `expected` (`--expect-version`), and it is `primary`.
    #[error("the key's primary version is {primary}, not {expected} as the request expects")]
    VersionMismatch {
        /// The version the caller named.
        expected: u32,
        /// The key's primary version.
        primary: u32,
    },
    /// The key's attestation policy asks for an attestation document for this
    /// operation, and the request carries none, or one that does not verify (the
    /// message says why: forged, expired, replayed, …).
    #[error("attestation required: {0}")]
    AttestationRequired(String),
    /// The attestation verified, but its measurement is not on the key's allow-list.
    #[error("the measurement {0} is not on the key's allow-list")]
    MeasurementNotAllowed(String),
    /// A state conflict.
    #[error("{0}")]
    Conflict(String),
    /// A limit on how often something may be done is reached (AWS's 10 on-demand
    /// rotations per key); the API answers it as a conflict.
    #[error("{0}")]
    LimitReached(String),
    /// The change would take the tenant over a quota; nothing was changed.
    #[error("{0}")]
    QuotaExceeded(crate::quota::QuotaExceeded),
    /// A rotation would retire a version recently used for material Coffer does not
    /// track (the message names the principals, counts and last use).
    #[error("{0}")]
    UntrackedUse(String),
    /// Custody is sealed.
    #[error("the server is sealed")]
    Sealed,
    /// The store is unreachable.
    #[error("storage unavailable")]
    Unavailable(String),
    /// Custody's backend (an HSM) is unreachable: signing and unwrapping wait until it
    /// is back; nothing was done.
    #[error("the key backend is unavailable; retry shortly")]
    BackendUnavailable(String),
    /// The heavy-work pool is full; the caller should retry after `retry_after`.
    #[error("the server is busy; retry shortly")]
    Saturated {
        /// When a retry has a fair chance (the HTTP layer's `Retry-After`).
        retry_after: std::time::Duration,
    },
    /// An internal failure (details logged, not returned).
    #[error("internal error")]
    Internal(String),
}

impl KmsError {
    /// The stable code of this error (the API's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::InvalidCiphertext => "invalid_ciphertext",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) | Self::Exceeds(_) => "forbidden",
            Self::NotFound(_) | Self::KeyDestroyed => "not_found",
            Self::KeyDisabled(_) => "key_disabled",
            Self::VersionRetired(_) => "version_retired",
            Self::KeyExpired(_) => "key_expired",
            Self::WrongPurpose { .. } => "wrong_key_purpose",
            Self::VersionMismatch { .. } => "version_mismatch",
            Self::AttestationRequired(_) => "attestation_required",
            Self::MeasurementNotAllowed(_) => "measurement_not_allowed",
            Self::Conflict(_) | Self::LimitReached(_) => "conflict",
            Self::UntrackedUse(_) => "untracked_use",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::Sealed => "sealed",
            Self::Unavailable(_) | Self::Saturated { .. } => "unavailable",
            Self::BackendUnavailable(_) => "backend_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for KmsError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(why) => Self::Conflict(why.to_owned()),
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Unavailable(why) => Self::Unavailable(why),
            StoreError::Corrupt(why) => Self::Internal(format!("corrupt stored data: {why}")),
            // Every quota refusal starts in the store, so it is counted once, here.
            StoreError::QuotaExceeded(exceeded) => {
                crate::reject::count(crate::reject::RejectReason::Quota);
                Self::QuotaExceeded(exceeded)
            }
        }
    }
}

impl From<crate::hsm::HsmError> for KmsError {
    fn from(error: crate::hsm::HsmError) -> Self {
        use crate::hsm::HsmError as H;
        match error {
            H::NotConfigured | H::Unsupported(_) => Self::Invalid(error.to_string()),
            H::Unavailable(why) => Self::BackendUnavailable(why),
            H::OpenFailed => Self::InvalidCiphertext,
            H::Missing | H::Call(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<CustodyError> for KmsError {
    fn from(error: CustodyError) -> Self {
        match error {
            CustodyError::Sealed(_) => Self::Sealed,
            CustodyError::Unavailable(why) => Self::BackendUnavailable(why),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<coffer_crypto::CryptoError> for KmsError {
    fn from(error: coffer_crypto::CryptoError) -> Self {
        use coffer_crypto::CryptoError as C;
        match error {
            C::DecryptFailed | C::UnsupportedFormat(_) => Self::InvalidCiphertext,
            C::Malformed {
                what: "ciphertext envelope",
                ..
            } => Self::InvalidCiphertext,
            C::Backend(what) => Self::Internal(format!("crypto backend: {what}")),
            other => Self::Invalid(other.to_string()),
        }
    }
}

impl From<crate::offload::OffloadError> for KmsError {
    fn from(error: crate::offload::OffloadError) -> Self {
        use crate::offload::OffloadError as O;
        match error {
            O::Saturated { retry_after } => Self::Saturated { retry_after },
            O::Failed(what) => Self::Internal(format!("heavy-work pool: {what}")),
            O::Crypto(e) => e.into(),
        }
    }
}

impl From<CoreError> for KmsError {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::Invalid(e) => Self::Invalid(e.to_string()),
            CoreError::IllegalTransition(e) => Self::Conflict(e.to_string()),
            CoreError::NotFound(what) => Self::NotFound(what),
            CoreError::Store(e) => e.into(),
            CoreError::Custody(e) => e.into(),
            CoreError::Hsm(e) => e.into(),
            CoreError::Crypto(e) => e.into(),
            CoreError::Conflict(why) => Self::Conflict(why.to_owned()),
            CoreError::NotConfirmed(why) => Self::Invalid(why.to_owned()),
            CoreError::LimitReached(why) => Self::LimitReached(why.to_owned()),
            CoreError::Integrity(subject) => {
                Self::Internal(format!("integrity failure (key_state): {subject}"))
            }
        }
    }
}

/// Shorthand.
pub type KmsResult<T> = Result<T, KmsError>;
