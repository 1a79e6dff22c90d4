//! HMAC for `mac` keys: SHA-224, SHA-256, SHA-384 and SHA-512 (AWS KMS's HMAC_224–512).
//! A key is as long as its tag (28, 32, 48 or 64 bytes), as AWS KMS makes them.

use std::fmt;

use aws_lc_rs::hmac;

use crate::secret::SecretBytes;
use crate::spec::KeySpec;
use crate::{CryptoError, Result};

/// Length of an HMAC-SHA256 key and tag.
pub const MAC_LEN: usize = 32;

/// The aws-lc algorithm and key length of an HMAC spec.
fn params(spec: KeySpec) -> Result<(hmac::Algorithm, usize)> {
    Ok(match spec {
        KeySpec::HmacSha224 => (hmac::HMAC_SHA224, 28),
        KeySpec::HmacSha256 => (hmac::HMAC_SHA256, 32),
        KeySpec::HmacSha384 => (hmac::HMAC_SHA384, 48),
        KeySpec::HmacSha512 => (hmac::HMAC_SHA512, 64),
        _ => {
            return Err(CryptoError::WrongKeyType {
                operation: "HMAC",
                spec: spec.as_str(),
            });
        }
    })
}

/// An HMAC key of one of the HMAC specs.
pub struct MacKey {
    spec: KeySpec,
    key: hmac::Key,
    raw: SecretBytes,
}

impl MacKey {
    /// A fresh random HMAC-SHA256 key.
    pub fn generate() -> Result<Self> {
        Self::generate_for(KeySpec::HmacSha256)
    }

    /// A fresh random key of an HMAC spec (as long as its tag).
    pub fn generate_for(spec: KeySpec) -> Result<Self> {
        let (_, len) = params(spec)?;
        Self::with_key(spec, SecretBytes::random(len)?)
    }

    /// An HMAC-SHA256 key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_spec_bytes(KeySpec::HmacSha256, bytes)
    }

    /// A key of `spec` from its raw bytes (exactly the spec's key length).
    pub fn from_spec_bytes(spec: KeySpec, bytes: &[u8]) -> Result<Self> {
        let (_, len) = params(spec)?;
        if bytes.len() != len {
            return Err(CryptoError::malformed(
                "HMAC key",
                "wrong length for its spec",
            ));
        }
        Self::with_key(spec, SecretBytes::copy_from(bytes))
    }

    /// Any key length: for published test vectors only (stored keys are checked above).
    fn with_key(spec: KeySpec, raw: SecretBytes) -> Result<Self> {
        let (algorithm, _) = params(spec)?;
        Ok(Self {
            spec,
            key: hmac::Key::new(algorithm, raw.expose_secret()),
            raw,
        })
    }

    /// The key's spec.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The raw key, for stored material.
    pub fn expose_secret(&self) -> &[u8] {
        self.raw.expose_secret()
    }

    /// The full-length tag of `message` (28, 32, 48 or 64 bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        hmac::sign(&self.key, message).as_ref().to_vec()
    }

    /// Checks a full-length tag in constant time.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> Result<()> {
        hmac::verify(&self.key, message, tag).map_err(|_| CryptoError::InvalidSignature)
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacKey({}, [secret elided])", self.spec.as_str())
    }
}

#[cfg(test)]
#[path = "mac_rfc4231.rs"]
mod rfc4231;
