//! The crate's error type, converted to `CustodyError` at the `Custody` API.

use coffer_core::CustodyError;
use thiserror::Error;

/// Failures of PKCS#11 custody. No variant carries the PIN or key material.
#[derive(Debug, Error)]
pub enum Pkcs11Error {
    /// The module could not be loaded or initialised.
    #[error("cannot load the PKCS#11 module {path}: {reason}")]
    Module {
        /// The module's path.
        path: String,
        /// Why.
        reason: String,
    },
    /// No slot holds the configured token.
    #[error("no token found for {0}")]
    TokenNotFound(String),
    /// The token refused the PIN, or the PIN file could not be used.
    #[error("login to the token failed: {0}")]
    Login(String),
    /// The token holds no root key under the configured label.
    #[error("the token holds no root key labelled {0:?} (run `coffer init --custody pkcs11`)")]
    NoRootKey(String),
    /// `init` found a root key already in the token.
    #[error("the token already holds a root key labelled {0:?}")]
    RootKeyExists(String),
    /// The token is unreachable; calls fail fast until a reconnect succeeds.
    #[error("the HSM is unavailable: {0}")]
    Unavailable(String),
    /// Every pooled session stayed busy for the whole acquire timeout.
    #[error("no PKCS#11 session became free in time")]
    PoolExhausted,
    /// Wrapped bytes did not unwrap.
    #[error("wrapped material does not unwrap under the root key: {0}")]
    Unwrap(&'static str),
    /// A token call failed for a reason other than the token's absence.
    #[error("token call failed: {0}")]
    Call(String),
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
}

impl From<Pkcs11Error> for CustodyError {
    fn from(error: Pkcs11Error) -> Self {
        match error {
            Pkcs11Error::Unwrap(why) => CustodyError::Unwrap(why),
            Pkcs11Error::Config(why) => CustodyError::Config(why),
            Pkcs11Error::Unavailable(_) | Pkcs11Error::PoolExhausted => {
                CustodyError::Unavailable(error.to_string())
            }
            other => CustodyError::Io(other.to_string()),
        }
    }
}
