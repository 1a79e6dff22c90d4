//! Ed25519 (RFC 8032) over aws-lc. Stored as the 32-byte seed.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

use crate::secret::SecretArray;
use crate::{CryptoError, Result};

/// An Ed25519 private key. aws-lc zeroizes its copy on drop; the seed we keep for
/// serialisation is a zeroizing array.
pub struct Ed25519Key {
    pair: Ed25519KeyPair,
    seed: SecretArray<32>,
}

impl Ed25519Key {
    pub(crate) fn generate() -> Result<Self> {
        Self::from_seed(SecretArray::random()?)
    }

    pub(crate) fn from_seed_bytes(seed: &[u8]) -> Result<Self> {
        Self::from_seed(SecretArray::from_slice(seed, "Ed25519 seed")?)
    }

    fn from_seed(seed: SecretArray<32>) -> Result<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .map_err(|_| CryptoError::KeyRejected("Ed25519 seed"))?;
        Ok(Self { pair, seed })
    }

    pub(crate) fn seed(&self) -> &[u8; 32] {
        self.seed.expose()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    pub(crate) fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }
}
