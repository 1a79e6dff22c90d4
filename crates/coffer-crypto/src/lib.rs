//! Coffer's cryptographic core.
//!
//! Layout:
//! - [`xaes`] — XAES-256-GCM, the AEAD under every ciphertext (why: see the module).
//! - [`envelope`] and [`context`] — ciphertext envelope v1 and the canonical encryption
//!   context it authenticates.
//! - [`sign`] — Ed25519, ECDSA (P-256, P-384, P-521, secp256k1), RSA (PSS, PKCS #1 v1.5
//!   and OAEP decryption), ML-DSA-44/65/87 and composite ML-DSA-65 + Ed25519, with the
//!   hybrid verification modes; `sign::mldsa_ffi` is the crate's only `unsafe`.
//! - [`mac`] — HMAC-SHA256.
//! - [`legacy`] — AES-GCM and AES Key Wrap (RFC 3394) as a legacy key provider wrote
//!   them, for `coffer migrate`.
//! - [`material`] — one key version's secret, generated and (de)serialised for custody.
//! - [`public`] — public keys as SPKI DER, PEM and JWK.
//! - [`secret`] — [`SecretBytes`], how secret bytes cross this crate's boundary.
//! - [`selftest`] — fixed known-answer vectors a server checks before it is ready.
//! - [`error`] — [`CryptoError`], the crate's one error type.
//!
//! The backend is aws-lc (through aws-lc-rs); nothing outside this crate names it, so it
//! can change behind these types. No I/O, no async, no serde of secrets.

pub mod context;
pub mod envelope;
pub mod error;
pub mod hash;
pub mod legacy;
pub mod mac;
pub mod material;
pub mod public;
pub mod rng;
pub mod secret;
pub mod selftest;
pub mod sign;
pub mod spec;
pub mod xaes;

pub use context::EncryptionContext;
pub use error::{CryptoError, Result};
pub use mac::MacKey;
pub use material::KeyMaterial;
pub use public::{Jwk, PublicKey};
pub use secret::SecretBytes;
pub use sign::{
    DigestAlgorithm, EncryptionAlgorithm, PqVerifyMode, SignatureAlgorithm, SigningKey,
    VerifyingKey,
};
pub use spec::KeySpec;
pub use xaes::AeadKey;
