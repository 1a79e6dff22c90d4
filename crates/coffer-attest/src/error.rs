//! Why a document was refused. Every message is static: nothing from the document is
//! echoed back.

use thiserror::Error;

/// A refused attestation document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AttestError {
    /// The document does not decode as its format says.
    #[error("malformed attestation document: {0}")]
    Malformed(&'static str),
    /// In no format Coffer reads.
    #[error("the attestation document is in no format Coffer reads")]
    UnknownFormat,
    /// The format is known but not trusted by this server (no authority key).
    #[error("attestation format not configured: {0}")]
    NotConfigured(&'static str),
    /// The certificate chain does not lead to the trusted root.
    #[error("the attestation document's certificate chain is not trusted: {0}")]
    Untrusted(&'static str),
    /// A certificate of the chain is outside its validity.
    #[error("a certificate of the attestation document's chain is expired or not yet valid")]
    CertificateExpired,
    /// The signature does not verify.
    #[error("the attestation document's signature does not verify")]
    BadSignature,
    /// Older than `attestation.max_age`.
    #[error("the attestation document is too old")]
    Stale,
    /// Timestamped ahead of Coffer's clock by more than the allowed skew.
    #[error("the attestation document is timestamped in the future")]
    FromTheFuture,
    /// No nonce, or one too short or too long.
    #[error("the attestation document needs a nonce of 8 to 512 bytes")]
    Nonce,
    /// Its nonce was presented before.
    #[error("the attestation document was already used (replayed nonce)")]
    Replayed,
    /// Too many fresh documents remembered to remember another.
    #[error("too many attestation documents in flight; retry shortly")]
    Busy,
}
