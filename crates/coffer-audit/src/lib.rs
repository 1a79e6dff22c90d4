//! Coffer's audit log math, free of I/O and policy.
//!
//! Layout:
//! - [`merkle`] — RFC 6962 tree hashing, inclusion and consistency proofs and their
//!   verification (RFC 9162 §2.1), and [`merkle::Tree`], an append-only tree.
//! - [`checkpoint`] — C2SP `tlog-checkpoint` bodies inside C2SP `signed-note`s, signed
//!   with Ed25519; verifier keys in the `name+hash+key` form.
//! - [`entry`] — the audited event and its canonical leaf encoding, chained to the
//!   previous leaf so the first edited entry can be named.
//! - [`verify`] — the offline verifier of an exported log against a checkpoint.

pub mod checkpoint;
pub mod entry;
pub mod merkle;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
pub use entry::{AuditEntry, ExportedEntry};
pub use merkle::{Hash, Tree};

/// Every failure of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A note, checkpoint, key or proof does not parse.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A signature does not verify, or no signature by the expected key.
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// A proof does not verify.
    #[error("proof does not verify")]
    BadProof,
    /// Indices out of range for the tree.
    #[error("out of range: {0}")]
    OutOfRange(&'static str),
}
