//! PKCS#11 custody: Coffer's root key is a non-extractable AES-256 key inside an HSM
//! token, reached through a PKCS#11 module; every wrap and unwrap is made by the token.
//!
//! # Design
//!
//! - The root never leaves the token (`CKA_SENSITIVE`, not `CKA_EXTRACTABLE`); wraps are
//!   AES-GCM calls with the generation and the caller's associated data bound in.
//! - **Generations** as in sealed custody: each root key carries the configured label and
//!   its generation as `CKA_ID`; blobs name their generation, rotation adds one, and
//!   retirement destroys the older objects.
//! - **Sessions** come from a bounded pool; calls made on an async runtime's worker hand
//!   the worker's other tasks off first, so a slow token does not stall the server.
//! - **Resilience**: a call that finds the token gone drops the connection; calls then
//!   fail fast with `CustodyError::Unavailable` while a watchdog thread reconnects with
//!   exponential backoff and jitter (`backend_reconnects_total`, `backend_up`).
//! - **HSM-resident keys** (`KeyHsm`): key pairs (ECDSA P-256, Ed25519, RSA) and AES
//!   keys generated in the same token, non-extractable; signatures and AES-GCM seals
//!   are made by the token through the same pool and reconnects.
//! - The PIN is read from a 0600 file or given directly, zeroed on drop, never printed.
//!
//! # Layout
//!
//! - [`custody`] — [`Pkcs11Custody`]: connecting, reconnecting, the `Custody` impl.
//! - [`config`] — [`Pkcs11Config`], [`TokenSelector`], [`Pin`].
//! - `connection` — one attachment to the token: slot, root handles, session pool.
//! - `module` — the process's PKCS#11 contexts, one per module path.
//! - `pool` — the bounded session pool.
//! - `roots` — root generations in the token and the wrapped format.
//! - `link` — up or down, and the backoff.
//! - `keys` — HSM-resident keys (`KeyHsm`): generated, used and destroyed in the token.
//! - `error` — the crate's error type.

pub mod config;
mod connection;
pub mod custody;
mod error;
mod keys;
mod link;
mod module;
mod pool;
mod roots;

pub use config::{Pin, Pkcs11Config, TokenSelector};
pub use custody::{CustodyHealth, Pkcs11Custody};
pub use error::Pkcs11Error;
pub use pool::PoolStats;
