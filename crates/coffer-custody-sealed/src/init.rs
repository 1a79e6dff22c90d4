//! Creating a state file: a fresh unseal key, held by one of the three methods, and
//! root generation 1 sealed under it.
//!
//! Every `init_*` returns the custody sealed, as after a restart, so unsealing is the
//! same path every time and init never leaves keys in memory by accident.

use std::fs;
use std::path::Path;

use coffer_core::CustodyError;
use coffer_crypto::AeadKey;

use crate::custody::SealedCustody;
use crate::error::Error;
use crate::passphrase::{Argon2Params, SALT_LEN};
use crate::secret::{Passphrase, UnsealShare};
use crate::state::{FORMAT_VERSION, Kdf, MethodState, StateFile, WriteMode};
use crate::{key_file, passphrase, roots, shamir};

/// The first root generation of a new state file.
const FIRST_GENERATION: u32 = 1;

impl SealedCustody {
    /// Creates a state file whose unseal key is split into `shares` Shamir shares, any
    /// `threshold` of which unseal. Returns the custody, sealed, and the shares: hand
    /// each to its holder; they are not stored anywhere.
    ///
    /// Requires `1 <= threshold <= shares` (so `shares >= 1`); refuses to replace an
    /// existing state file.
    pub fn init_shamir(
        path: impl AsRef<Path>,
        shares: u8,
        threshold: u8,
    ) -> Result<(Self, Vec<UnsealShare>), CustodyError> {
        shamir::check_params(shares, threshold)?;
        let unseal_key = fresh_unseal_key()?;
        let (dealt, share_tags) = shamir::split(&unseal_key, shares, threshold);
        let custody = Self::create(
            path.as_ref(),
            MethodState::Shamir {
                shares,
                threshold,
                share_tags,
            },
            &unseal_key,
        )?;
        Ok((custody, dealt))
    }

    /// Creates a state file whose unseal key is derived from `passphrase` with Argon2id
    /// at OWASP's minimum cost ([`Argon2Params::OWASP`]).
    pub fn init_passphrase(
        path: impl AsRef<Path>,
        passphrase: &Passphrase,
    ) -> Result<Self, CustodyError> {
        Self::init_passphrase_with(path, passphrase, Argon2Params::default())
    }

    /// As [`SealedCustody::init_passphrase`], with explicit Argon2id costs (stored in
    /// the state file, so unsealing uses the same).
    pub fn init_passphrase_with(
        path: impl AsRef<Path>,
        passphrase: &Passphrase,
        params: Argon2Params,
    ) -> Result<Self, CustodyError> {
        if passphrase.expose_secret().is_empty() {
            return Err(CustodyError::Config("the passphrase is empty".into()));
        }
        let mut salt = vec![0u8; SALT_LEN];
        coffer_crypto::rng::fill(&mut salt)
            .map_err(|_| CustodyError::Backend("random generator"))?;
        let unseal_key = passphrase::derive(passphrase, &salt, params)?;
        let method = MethodState::Passphrase {
            kdf: Kdf::Argon2id,
            salt,
            memory_kib: params.memory_kib(),
            iterations: params.iterations(),
            parallelism: params.parallelism(),
        };
        Self::create(path.as_ref(), method, &unseal_key)
    }

    /// Creates a state file and a key file (32 random bytes, mode 0600) holding its
    /// unseal key. For development: the key sits on disk beside the state it unlocks.
    ///
    /// Refuses to replace either file.
    pub fn init_key_file(
        state_path: impl AsRef<Path>,
        key_file_path: impl AsRef<Path>,
    ) -> Result<Self, CustodyError> {
        let (state_path, key_file_path) = (state_path.as_ref(), key_file_path.as_ref());
        // Checked first so a taken state path leaves no stray key file; the no-clobber
        // rename below still guards against a race.
        if state_path.exists() {
            return Err(Error::AlreadyExists {
                path: state_path.to_owned(),
            }
            .into());
        }
        let unseal_key = key_file::create(key_file_path)?;
        Self::create(state_path, MethodState::KeyFile, &unseal_key).inspect_err(|_| {
            // Best effort: a key file for a state that was never written unlocks
            // nothing, and leaving it would block a retry.
            let _ = fs::remove_file(key_file_path);
        })
    }

    fn create(
        path: &Path,
        method: MethodState,
        unseal_key: &AeadKey,
    ) -> Result<Self, CustodyError> {
        // The root key itself drops (zeroized) here: the custody starts sealed.
        let (_root, entry) = roots::new_root(unseal_key, FIRST_GENERATION)?;
        let state = StateFile {
            format: FORMAT_VERSION,
            method,
            verification: roots::verification_blob(unseal_key)?,
            current: FIRST_GENERATION,
            roots: vec![entry],
        };
        state.store(path, WriteMode::CreateNew)?;
        Ok(Self::from_state(path.to_owned(), state))
    }
}

fn fresh_unseal_key() -> Result<AeadKey, CustodyError> {
    AeadKey::generate().map_err(|_| CustodyError::Backend("generating the unseal key"))
}
