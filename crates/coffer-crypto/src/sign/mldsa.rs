//! ML-DSA-65 (FIPS 204). Stored as the 32-byte seed ξ, from which FIPS 204's
//! ML-DSA.KeyGen_internal derives the full key, so stored material stays small.

use crate::Result;
use crate::secret::SecretArray;
use crate::sign::mldsa_ffi::{MlDsaHandle, SEED_LEN};

/// An ML-DSA-65 private key.
pub struct MlDsa65Key {
    handle: MlDsaHandle,
    seed: SecretArray<SEED_LEN>,
    public: Vec<u8>,
}

impl MlDsa65Key {
    pub(crate) fn generate() -> Result<Self> {
        Self::from_seed(SecretArray::random()?)
    }

    pub(crate) fn from_seed_bytes(seed: &[u8]) -> Result<Self> {
        Self::from_seed(SecretArray::from_slice(seed, "ML-DSA-65 seed")?)
    }

    fn from_seed(seed: SecretArray<SEED_LEN>) -> Result<Self> {
        let handle = MlDsaHandle::from_seed(seed.expose())?;
        let public = handle.public_key()?;
        Ok(Self {
            handle,
            seed,
            public,
        })
    }

    pub(crate) fn seed(&self) -> &[u8; SEED_LEN] {
        self.seed.expose()
    }

    /// Hedged signature under a FIPS 204 context string (empty for plain ML-DSA).
    pub(crate) fn sign(&self, context: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        self.handle.sign(context, message)
    }

    pub(crate) fn public_key(&self) -> &[u8] {
        &self.public
    }
}

impl super::SigningKey {
    /// Signs with ML-DSA-65 under a FIPS 204 context string (at most 255 bytes).
    pub fn sign_ml_dsa_with_context(&self, context: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::MlDsa65(key) => key.sign(context, message),
            other => Err(crate::CryptoError::WrongKeyType {
                operation: "sign with an ML-DSA context",
                spec: other.spec().as_str(),
            }),
        }
    }
}
