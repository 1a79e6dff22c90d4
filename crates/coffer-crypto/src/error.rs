//! The one error type of `coffer-crypto`.
//!
//! Variants split untrusted-input failures (malformed bytes, a tag that does not verify)
//! from misuse of the API (a key of the wrong kind). No variant carries secret bytes:
//! every payload is a static description, a length, a tag byte or a spec name.

use thiserror::Error;

/// Every failure `coffer-crypto` reports.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// Input bytes do not have the shape the named format requires.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The format being decoded (for example "ciphertext envelope").
        what: &'static str,
        /// Why it was rejected, never including the input bytes.
        reason: &'static str,
    },
    /// The envelope's format byte names a version this build does not know.
    #[error("unsupported ciphertext format {0:#04x}")]
    UnsupportedFormat(u8),
    /// Authenticated decryption failed: wrong key, version, tenant or context, or a
    /// modified ciphertext. Deliberately says no more than that.
    #[error("decryption failed: the ciphertext, its key or its encryption context do not match")]
    DecryptFailed,
    /// A signature or MAC did not verify.
    #[error("signature does not verify")]
    InvalidSignature,
    /// Key material was rejected by the backend (wrong length, not on the curve, ...).
    #[error("key rejected: {0}")]
    KeyRejected(&'static str),
    /// The operation does not apply to this kind of key (for example signing with an
    /// encryption key).
    #[error("operation {operation} is not supported by a {spec} key")]
    WrongKeyType {
        /// The operation attempted.
        operation: &'static str,
        /// The key's spec name.
        spec: &'static str,
    },
    /// An input exceeds a limit of the format or algorithm.
    #[error("{what} is too long: {len} bytes, at most {max}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The operating system's random generator or the crypto backend failed. Not
    /// caused by input; retrying may succeed.
    #[error("cryptographic backend failure in {0}")]
    Backend(&'static str),
}

impl CryptoError {
    pub(crate) const fn malformed(what: &'static str, reason: &'static str) -> Self {
        Self::Malformed { what, reason }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
