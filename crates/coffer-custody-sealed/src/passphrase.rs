//! The passphrase method: the unseal key derived with Argon2id.

use argon2::{Algorithm, Argon2, Params, Version};
use coffer_core::CustodyError;
use coffer_crypto::AeadKey;
use zeroize::Zeroizing;

use crate::kdf_memory::KdfMemory;
use crate::secret::Passphrase;

/// Length of the random salt stored in the state file.
pub(crate) const SALT_LEN: usize = 16;

/// Argon2id cost parameters. The default is OWASP's minimum recommendation
/// (19 MiB, 2 passes, 1 lane); tests may pass cheaper ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl Argon2Params {
    /// OWASP's minimum for Argon2id: m = 19456 KiB, t = 2, p = 1.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// Parameters checked against Argon2's limits (for example memory of at least
    /// 8 KiB per lane).
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, CustodyError> {
        let params = Self {
            memory_kib,
            iterations,
            parallelism,
        };
        params.to_argon2()?;
        Ok(params)
    }

    /// Memory cost in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Number of passes.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Degree of parallelism (lanes).
    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    fn to_argon2(self) -> Result<Params, CustodyError> {
        Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(coffer_crypto::xaes::KEY_LEN),
        )
        .map_err(|e| CustodyError::Config(format!("argon2id parameters: {e}")))
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Derives the unseal key. Slow by design; callers hold no `RwLock` while it runs.
pub(crate) fn derive(
    passphrase: &Passphrase,
    salt: &[u8],
    params: Argon2Params,
) -> Result<AeadKey, CustodyError> {
    let argon2_params = params.to_argon2()?;
    let memory = KdfMemory::map(argon2_params.block_count())?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params);
    let mut out = Zeroizing::new([0u8; coffer_crypto::xaes::KEY_LEN]);
    // The error names a parameter or length, never the password.
    argon2
        .hash_password_into_with_memory(
            passphrase.expose_secret().as_bytes(),
            salt,
            &mut out[..],
            memory,
        )
        .map_err(|e| CustodyError::Config(format!("argon2id: {e}")))?;
    AeadKey::from_bytes(&out[..]).map_err(|_| CustodyError::Backend("unseal key"))
}
