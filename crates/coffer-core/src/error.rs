//! Errors of the domain layer.

use thiserror::Error;

use crate::custody::CustodyError;
use crate::lifecycle::IllegalTransition;
use crate::store::StoreError;

/// A value that does not parse into a domain type. Names the field, never echoes the
/// value (it may be a secret pasted in the wrong place).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("invalid {field}: {reason}")]
pub struct InvalidInput {
    /// The field or type being parsed.
    pub field: &'static str,
    /// Why it was rejected.
    pub reason: &'static str,
}

impl InvalidInput {
    /// A rejection of `field` for `reason`.
    pub const fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

/// Everything the domain services report.
#[derive(Debug, Error)]
pub enum CoreError {
    /// Bad input from the caller.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// A lifecycle change the transition table forbids.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The object does not exist in the caller's tenant (or belongs to another).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Custody failed or is sealed.
    #[error(transparent)]
    Custody(#[from] CustodyError),
    /// Cryptographic failure (bad ciphertext, wrong key type, ...).
    #[error(transparent)]
    Crypto(#[from] coffer_crypto::CryptoError),
    /// The object's state does not allow the operation (key disabled, primary version
    /// must stay active, waiting period not over, ...).
    #[error("state conflict: {0}")]
    Conflict(&'static str),
    /// A limit on how often something may be done is reached (a key's on-demand
    /// rotations).
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// An HSM-resident key operation failed (or no HSM is configured).
    #[error(transparent)]
    Hsm(#[from] crate::hsm::HsmError),
    /// A destructive act was not confirmed as required.
    #[error("not confirmed: {0}")]
    NotConfirmed(&'static str),
    /// A stored row does not match the MAC that binds it (`crate::state_seal`); the
    /// text names the row by ids only. Already logged and counted where found.
    #[error("integrity failure: {0}")]
    Integrity(String),
}

/// Shorthand for domain results.
pub type CoreResult<T> = Result<T, CoreError>;
