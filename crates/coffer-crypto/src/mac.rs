//! HMAC-SHA256 for `mac` keys.

use std::fmt;

use aws_lc_rs::hmac;

use crate::secret::SecretArray;
use crate::{CryptoError, Result};

/// Length of an HMAC-SHA256 key and tag.
pub const MAC_LEN: usize = 32;

/// An HMAC-SHA256 key.
pub struct MacKey {
    key: hmac::Key,
    raw: SecretArray<MAC_LEN>,
}

impl MacKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        Self::from_array(SecretArray::random()?)
    }

    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_array(SecretArray::from_slice(bytes, "HMAC-SHA256 key")?)
    }

    fn from_array(raw: SecretArray<MAC_LEN>) -> Result<Self> {
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, raw.expose()),
            raw,
        })
    }

    /// The raw key, for stored material.
    pub fn expose_secret(&self) -> &[u8; MAC_LEN] {
        self.raw.expose()
    }

    /// The 32-byte tag of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(hmac::sign(&self.key, message).as_ref());
        out
    }

    /// Checks a full-length tag in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> Result<()> {
        hmac::verify(&self.key, message, tag).map_err(|_| CryptoError::InvalidSignature)
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacKey([secret elided])")
    }
}
