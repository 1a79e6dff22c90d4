//! The three ways to unseal. Each either installs every root generation or changes
//! nothing but (for Shamir) the progress it reports.
//!
//! A call on a custody that is already unsealed returns at once and ignores its input:
//! a second operator's share after the threshold is not an error.

use std::path::Path;

use coffer_core::{CustodyError, SealStatus};
use coffer_crypto::AeadKey;

use crate::custody::{Admin, SealedCustody, UnsealMethod};
use crate::passphrase::{self, Argon2Params};
use crate::roots::Roots;
use crate::secret::Passphrase;
use crate::state::MethodState;
use crate::{key_file, shamir};

impl SealedCustody {
    /// Submits one Shamir share. Returns the progress while more are needed, and
    /// `Unsealed` once `threshold` shares recombine the unseal key.
    ///
    /// A malformed or duplicate share, or one that does not match its tag in the state
    /// file, is refused with `UnsealFailed` and changes nothing. Shares of a file
    /// without tags (made before them) that recombine a wrong key fail with
    /// `UnsealFailed` and reset the progress to 0: which share was wrong cannot be told.
    pub fn submit_share(&self, share: &str) -> Result<SealStatus, CustodyError> {
        let mut admin = self.admin();
        if self.read().roots.is_some() {
            return Ok(SealStatus::Unsealed);
        }
        let UnsealMethod::Shamir { shares, threshold } = self.method else {
            return Err(self.wrong_method("submit_share"));
        };
        let share = match &admin.state.method {
            MethodState::Shamir { share_tags, .. } => shamir::parse(share, shares, share_tags)?,
            _ => return Err(self.wrong_method("submit_share")),
        };
        admin.pending.add(share)?;
        let given = admin.pending.len();
        if given < usize::from(threshold) {
            // `given < threshold <= 255`, so it fits.
            let progress = u8::try_from(given).unwrap_or(u8::MAX);
            self.write().progress = progress;
            return Ok(SealStatus::Sealed {
                progress,
                threshold,
            });
        }
        let recombined = admin.pending.recombine(threshold);
        admin.pending.clear();
        self.write().progress = 0;
        self.install(
            &admin,
            recombined?,
            "the shares do not recombine this state file's unseal key (one is wrong or \
             damaged); progress reset, submit the threshold again",
        )?;
        Ok(SealStatus::Unsealed)
    }

    /// Unseals with the passphrase given at init. Runs Argon2id (tens of milliseconds
    /// at the default cost) without blocking wrap or unwrap.
    pub fn unseal_passphrase(&self, passphrase: &Passphrase) -> Result<(), CustodyError> {
        let admin = self.admin();
        if self.read().roots.is_some() {
            return Ok(());
        }
        let MethodState::Passphrase {
            salt,
            memory_kib,
            iterations,
            parallelism,
            ..
        } = &admin.state.method
        else {
            return Err(self.wrong_method("unseal_passphrase"));
        };
        let params = Argon2Params::new(*memory_kib, *iterations, *parallelism)?;
        let unseal_key = passphrase::derive(passphrase, salt, params)?;
        self.install(&admin, unseal_key, "wrong passphrase")
    }

    /// Unseals with the key file written at init. Refuses a key file whose mode lets
    /// group or others access it.
    pub fn unseal_key_file(&self, key_file_path: impl AsRef<Path>) -> Result<(), CustodyError> {
        let admin = self.admin();
        if self.read().roots.is_some() {
            return Ok(());
        }
        if self.method != UnsealMethod::KeyFile {
            return Err(self.wrong_method("unseal_key_file"));
        }
        let unseal_key = key_file::read(key_file_path.as_ref())?;
        self.install(
            &admin,
            unseal_key,
            "wrong key file: it does not hold this state file's unseal key",
        )
    }

    /// Verifies the unseal key and opens every root (no lock but `admin` held), then
    /// installs them in one short write.
    fn install(
        &self,
        admin: &Admin,
        unseal_key: AeadKey,
        wrong_key: &'static str,
    ) -> Result<(), CustodyError> {
        let roots = Roots::unlock(unseal_key, &admin.state, wrong_key)?;
        let mut live = self.write();
        live.roots = Some(roots);
        live.progress = 0;
        Ok(())
    }

    fn wrong_method(&self, called: &str) -> CustodyError {
        CustodyError::Config(format!(
            "{called} does not apply: state file {} is unsealed with {}",
            self.path.display(),
            self.method.describe()
        ))
    }
}
