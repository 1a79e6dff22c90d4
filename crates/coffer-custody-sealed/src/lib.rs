//! Sealed custody: Coffer's root keys kept in a state file, sealed under an unseal key.
//!
//! # Design
//!
//! Two levels of keys:
//!
//! - The **unseal key U** (32 random bytes) is never on disk in the clear. It is held one
//!   of three ways: split into Shamir shares ([`SealedCustody::init_shamir`]), derived
//!   from a passphrase with Argon2id ([`SealedCustody::init_passphrase`]), or read from a
//!   mode-0600 key file for development ([`SealedCustody::init_key_file`]).
//! - The **root keys** wrap tenant keys ([`coffer_core::Custody`]). The state file
//!   stores each one sealed under U.
//!
//! Why U is separate from the root: rotating the root is then a state-file update made
//! by an unsealed node. Share holders are not called in and no new shares are handed
//! out, so the root can rotate as often as policy wants. Only a compromise of the
//! shares themselves needs a new U.
//!
//! Why **root generations**: every wrapped blob starts with the 4-byte generation of the
//! root that made it, and the generation is bound into the AEAD's associated data too,
//! so editing the prefix cannot steer a blob to another root. After
//! [`Custody::rotate_root`](coffer_core::Custody::rotate_root) old blobs keep unwrapping
//! under their own generation, `needs_rewrap` tells callers which to rewrap, and
//! `retire_old_roots` drops old generations only once nothing needs them.
//!
//! The state file holds no secret in the clear: the method's public parameters, a
//! verification blob (a fixed constant sealed under U, so a wrong U is told apart from a
//! damaged file), and the sealed roots. One process owns a state file at a time.
//!
//! # Layout
//!
//! - [`custody`] — [`SealedCustody`]: opening, status, sealing and the `Custody` impl.
//! - `init` and `unseal` — creating a state file, and the three ways to unseal.
//! - `roots` — root generations, the verification blob and the wrapped format.
//! - `state` — the state file format and its atomic writes.
//! - `shamir`, `passphrase`, `key_file` — each unseal method's own mechanics;
//!   `kdf_memory` — Argon2id's memory, mapped per derivation and returned after.
//! - [`secret`] — [`Passphrase`] and [`UnsealShare`], the secret types callers hold.
//! - `error` — the crate's error type, converted to `CustodyError` at the API.
//!
//! Unix only: file modes are part of the contract.

pub mod custody;
mod error;
mod init;
mod kdf_memory;
mod key_file;
pub mod passphrase;
mod roots;
pub mod secret;
mod shamir;
mod state;
mod unseal;

pub use custody::{SealedCustody, UnsealMethod};
pub use passphrase::Argon2Params;
pub use secret::{Passphrase, UnsealShare};
pub use shamir::SHARE_PREFIX;

/// The share parser and combiner for the fuzz targets in `fuzz/` (feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    pub use crate::shamir::ceremony;
}
