//! The `Custody` trait: the root key that wraps every tenant key at rest.
//!
//! Custody performs wrap and unwrap; it never hands the root key out (STYLE rule 3), so
//! an HSM fits behind the same trait. Calls are synchronous: the sealed implementation
//! is a few microseconds of AES and an HSM call blocks anyway; async callers wrap them
//! in `spawn_blocking` where it matters (it rarely does: tenant keys are cached).

use coffer_crypto::SecretBytes;
use thiserror::Error;

/// Failures of custody.
#[derive(Debug, Error)]
pub enum CustodyError {
    /// The root key is not available until custody is unsealed.
    #[error("custody is sealed: {0}")]
    Sealed(String),
    /// An unseal attempt failed (wrong share, wrong passphrase, wrong key file).
    /// Nothing changed.
    #[error("unseal failed: {0}")]
    UnsealFailed(&'static str),
    /// Wrapped bytes did not unwrap: tampered, moved to another row, or from a root
    /// generation this custody does not hold.
    #[error("wrapped material does not unwrap under the root key: {0}")]
    Unwrap(&'static str),
    /// Reading or writing custody's own state failed.
    #[error("custody storage: {0}")]
    Io(String),
    /// Misconfiguration (mode mismatch, bad parameters).
    #[error("custody misconfigured: {0}")]
    Config(String),
    /// The backend failed.
    #[error("custody backend failure: {0}")]
    Backend(&'static str),
    /// The backend (an HSM) is unreachable for now; nothing was done and the call may
    /// be retried once it is back.
    #[error("custody backend unavailable: {0}")]
    Unavailable(String),
}

/// Whether custody can work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealStatus {
    /// Ready.
    Unsealed,
    /// Waiting for unseal input; `progress` of `threshold` shares given so far.
    Sealed {
        /// Shares accepted so far (Shamir mode; 0 otherwise).
        progress: u8,
        /// Shares needed (1 for passphrase and key file).
        threshold: u8,
    },
}

/// A root key held by custody.
pub trait Custody: Send + Sync + 'static {
    /// Short name for health output, e.g. `sealed` or `pkcs11`.
    fn kind(&self) -> &'static str;

    /// Current seal status.
    fn status(&self) -> SealStatus;

    /// False while custody's backend (an HSM) is unreachable: readiness reports it, and
    /// wraps and unwraps fail with [`CustodyError::Unavailable`] until it is back.
    fn available(&self) -> bool {
        true
    }

    /// Wraps `secret` under the current root key, binding `aad`.
    fn wrap(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, CustodyError>;

    /// Unwraps bytes made by `wrap` under any root generation custody still holds.
    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes, CustodyError>;

    /// True when `wrapped` was made under an older root generation and should be
    /// rewrapped.
    fn needs_rewrap(&self, wrapped: &[u8]) -> bool;

    /// Makes a new root key current. Older generations keep unwrapping until
    /// [`Custody::retire_old_roots`], so readers see no downtime while callers rewrap.
    fn rotate_root(&self) -> Result<u32, CustodyError>;

    /// Forgets every root generation but the current one. Call only after everything
    /// wrapped under them was rewrapped.
    fn retire_old_roots(&self) -> Result<(), CustodyError>;
}
