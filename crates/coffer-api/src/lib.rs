//! Wire types of Coffer's native API (`/v1/...`), shared by server and client.
//!
//! Layout:
//! - [`b64`] — base64 fields; [`B64Secret`] for plaintext and data keys (zeroized, never
//!   printed).
//! - [`keys`] — key management requests and views.
//! - [`attestation`] — keys' attestation policies (which operations need an attested
//!   caller, and which measurements may perform them).
//! - [`crypto`] — wrap, unwrap, datakey, rewrap, sign, verify, mac, and their batch form.
//! - [`admin`] — tenants, tokens, seal status and unseal.
//! - [`audit`] — the audit log's paging limit.
//! - [`error`] — the error body and the stable error codes.
//! - [`paths`] — the endpoint paths, so server and client cannot disagree.
//!
//! Serde, and schemars for each type's JSON Schema (the server's OpenAPI document is
//! made from them): no logic lives here. Requests refuse unknown fields so a typo is an
//! error, not a silently ignored option.

pub mod admin;
pub mod attestation;
pub mod audit;
pub mod b64;
pub mod crypto;
pub mod error;
pub mod keys;
pub mod paths;
pub mod rotation;

pub use b64::{B64, B64Secret};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
