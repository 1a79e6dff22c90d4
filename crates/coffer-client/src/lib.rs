//! A typed async client of Coffer's native API (`/v1/...`, port 9446) and of its
//! operations port (`/healthz`, `/readyz`, `/metrics`, port 9909).
//!
//! Layout:
//! - [`Client`] (`client.rs`) — base URL, bearer token, and the one request path every
//!   call goes through (send, map errors, decode).
//! - `keys.rs`, `certificates.rs`, `crypto.rs`, `admin.rs`, `ops.rs` — one method per
//!   endpoint, grouped as in [`coffer_api`]; the request and answer types are `coffer_api`'s, so the client
//!   and the server cannot disagree on a field.
//! - `rotation.rs` — the rotation saga and the reference tracker, and
//!   [`request_paths`]: the paths those calls use, for tools that print a plan first.
//! - `reference.rs` — key references (`UUID` or `alias/NAME`) checked and turned into
//!   paths.
//! - [`ClientError`] (`error.rs`) — the one error type, including the server's error
//!   body parsed into [`ClientError::Api`].
//!
//! Secrets: the token never appears in `Debug` or an error, and plaintext travels only
//! inside [`coffer_api::B64Secret`], whose `Debug` is elided.

mod admin;
mod attestation;
mod audit;
mod certificates;
mod client;
mod crypto;
mod error;
mod keys;
mod lifecycle;
mod ops;
mod reference;
mod rotation;
mod tls;

pub use client::Client;
pub use error::ClientError;
pub use ops::Probe;
pub use rotation::{Waited, request_paths, settled};
pub use tls::{ClientTls, install_tls_provider};
