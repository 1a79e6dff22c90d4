//! [`SealedCustody`]: the state, its locks, and the [`Custody`] implementation.
//!
//! Two locks, always taken in this order:
//! - `admin` (a `Mutex`) serialises everything that changes the state file or the
//!   unseal progress: init is done, so that is unseal, seal, rotate and retire. It may be
//!   held across file I/O and Argon2, which only other admin operations wait for.
//! - `live` (a `RwLock`) holds the unsealed keys. Wrap and unwrap, the hot path, take
//!   it for reading; it is written only for a moment, to install or drop keys, never
//!   across I/O or key derivation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use coffer_core::{Custody, CustodyError, SealStatus};
use coffer_crypto::SecretBytes;

use crate::roots::{self, Roots};
use crate::shamir::Pending;
use crate::state::{MethodState, StateFile, WriteMode};

/// How a state file's unseal key is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsealMethod {
    /// Shamir shares: any `threshold` of `shares` recombine it.
    Shamir {
        /// Shares dealt.
        shares: u8,
        /// Shares needed.
        threshold: u8,
    },
    /// Derived from a passphrase with Argon2id.
    Passphrase,
    /// Read from a key file (development).
    KeyFile,
}

impl UnsealMethod {
    fn of(state: &MethodState) -> Self {
        match state {
            MethodState::Shamir {
                shares, threshold, ..
            } => Self::Shamir {
                shares: *shares,
                threshold: *threshold,
            },
            MethodState::Passphrase { .. } => Self::Passphrase,
            MethodState::KeyFile => Self::KeyFile,
        }
    }

    /// Inputs needed to unseal: the Shamir threshold, or 1.
    pub fn threshold(self) -> u8 {
        match self {
            Self::Shamir { threshold, .. } => threshold,
            Self::Passphrase | Self::KeyFile => 1,
        }
    }

    /// What an operator gives to unseal, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Shamir { .. } => "shamir shares",
            Self::Passphrase => "a passphrase",
            Self::KeyFile => "a key file",
        }
    }
}

/// Root keys in a sealed state file; see the crate docs for the design.
///
/// Created sealed by `init_*` or [`SealedCustody::open`]; unsealed by
/// [`submit_share`](SealedCustody::submit_share),
/// [`unseal_passphrase`](SealedCustody::unseal_passphrase) or
/// [`unseal_key_file`](SealedCustody::unseal_key_file).
pub struct SealedCustody {
    pub(crate) path: PathBuf,
    pub(crate) method: UnsealMethod,
    admin: Mutex<Admin>,
    live: RwLock<Live>,
}

/// What only admin operations touch.
pub(crate) struct Admin {
    /// The state file's contents as last written; rewritten whole on each change.
    pub(crate) state: StateFile,
    pub(crate) pending: Pending,
}

/// What the hot path reads.
pub(crate) struct Live {
    /// Known while sealed too, so `needs_rewrap` needs no keys.
    pub(crate) current: u32,
    pub(crate) progress: u8,
    pub(crate) roots: Option<Roots>,
}

impl SealedCustody {
    /// Loads an existing state file. The custody starts sealed; the method comes from
    /// the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CustodyError> {
        let path = path.as_ref();
        let state = StateFile::load(path)?;
        Ok(Self::from_state(path.to_owned(), state))
    }

    pub(crate) fn from_state(path: PathBuf, state: StateFile) -> Self {
        Self {
            path,
            method: UnsealMethod::of(&state.method),
            live: RwLock::new(Live {
                current: state.current,
                progress: 0,
                roots: None,
            }),
            admin: Mutex::new(Admin {
                state,
                pending: Pending::default(),
            }),
        }
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How this custody is unsealed.
    pub fn method(&self) -> UnsealMethod {
        self.method
    }

    /// Drops the unsealed keys (zeroizing them) and any shares submitted so far.
    pub fn seal(&self) {
        let mut admin = self.admin();
        admin.pending.clear();
        let mut live = self.write();
        live.roots = None;
        live.progress = 0;
    }

    // Poisoning is ignored: every update under these locks is a single assignment or
    // map insert, so a panic elsewhere cannot leave them half-changed, and refusing all
    // later calls would turn one panic into an outage.
    pub(crate) fn admin(&self) -> MutexGuard<'_, Admin> {
        self.admin.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Live> {
        self.live.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn sealed_error(&self) -> CustodyError {
        CustodyError::Sealed(format!("unseal it with {}", self.method.describe()))
    }

    /// Runs `f` on the unsealed keys under the read lock.
    fn with_roots<T>(
        &self,
        f: impl FnOnce(&Roots) -> Result<T, CustodyError>,
    ) -> Result<T, CustodyError> {
        let live = self.read();
        let roots = live.roots.as_ref().ok_or_else(|| self.sealed_error())?;
        f(roots)
    }
}

impl Custody for SealedCustody {
    fn kind(&self) -> &'static str {
        "sealed"
    }

    fn status(&self) -> SealStatus {
        let live = self.read();
        if live.roots.is_some() {
            SealStatus::Unsealed
        } else {
            SealStatus::Sealed {
                progress: live.progress,
                threshold: self.method.threshold(),
            }
        }
    }

    fn wrap(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.with_roots(|roots| roots.wrap(aad, secret))
    }

    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes, CustodyError> {
        self.with_roots(|roots| roots.unwrap(aad, wrapped))
    }

    fn needs_rewrap(&self, wrapped: &[u8]) -> bool {
        roots::generation_of(wrapped).is_some_and(|generation| generation != self.read().current)
    }

    fn rotate_root(&self) -> Result<u32, CustodyError> {
        let mut admin = self.admin();
        let generation = admin
            .state
            .roots
            .iter()
            .map(|r| r.generation)
            .max()
            .and_then(|g| g.checked_add(1))
            .ok_or_else(|| CustodyError::Config("root generations exhausted".into()))?;
        let (key, entry) =
            self.with_roots(|roots| roots::new_root(roots.unseal_key(), generation))?;
        let mut next = admin.state.clone();
        next.roots.push(entry);
        next.current = generation;
        // Persisted before it becomes current: nothing is ever wrapped under a root
        // that a restart would not find. Wraps go on under the old root meanwhile.
        next.store(&self.path, WriteMode::Replace)?;
        admin.state = next;
        let mut live = self.write();
        live.current = generation;
        // `seal` takes the admin lock first, so the keys cannot have gone since
        // `with_roots` above; the file is the truth either way.
        if let Some(roots) = live.roots.as_mut() {
            roots.install(generation, key);
        }
        Ok(generation)
    }

    fn retire_old_roots(&self) -> Result<(), CustodyError> {
        let mut admin = self.admin();
        if self.read().roots.is_none() {
            return Err(self.sealed_error());
        }
        let mut next = admin.state.clone();
        let current = next.current;
        next.roots.retain(|r| r.generation == current);
        next.store(&self.path, WriteMode::Replace)?;
        admin.state = next;
        if let Some(roots) = self.write().roots.as_mut() {
            roots.retain_current();
        }
        Ok(())
    }
}

impl fmt::Debug for SealedCustody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedCustody")
            .field("path", &self.path)
            .field("method", &self.method)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}
