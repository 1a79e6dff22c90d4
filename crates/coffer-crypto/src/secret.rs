//! Secret byte buffers.
//!
//! [`SecretBytes`] is how secret material leaves and enters this crate (data keys,
//! decrypted plaintext, stored key material before custody wraps it). It follows the
//! house rule for secrets: no `Clone`, `PartialEq`, `Serialize`; `Debug` says it is
//! elided; the bytes are zeroized on drop and read through `expose_secret`.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// A heap buffer of secret bytes, zeroized on drop.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the vector's buffer is zeroized when this drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies `bytes` into a new secret buffer. The caller remains responsible for the
    /// source.
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// `len` bytes from the operating system's random generator.
    pub fn random(len: usize) -> crate::Result<Self> {
        let mut bytes = vec![0u8; len];
        crate::rng::fill(&mut bytes)?;
        Ok(Self::new(bytes))
    }

    /// The secret bytes. Named so that every read is visible in review.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn expose_secret_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        // Truncating a Vec keeps the capacity; Zeroizing<Vec> wipes the whole
        // capacity on drop, so the cut bytes are zeroized then.
        self.0.truncate(len);
    }

    /// An explicit copy; secrets are never cloned implicitly.
    pub fn duplicate(&self) -> Self {
        Self::copy_from(&self.0)
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality, for tests and for comparing derived secrets.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        constant_time_eq(&self.0, other)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([{} bytes elided])", self.0.len())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

/// Equality that takes the same time wherever the inputs differ (for tags and MACs).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A fixed-size secret array, zeroized on drop. Used for raw 32-byte keys and seeds.
pub(crate) struct SecretArray<const N: usize>([u8; N]);

impl<const N: usize> SecretArray<N> {
    pub(crate) fn from_slice(bytes: &[u8], what: &'static str) -> crate::Result<Self> {
        let array: [u8; N] = bytes
            .try_into()
            .map_err(|_| crate::CryptoError::malformed(what, "wrong length"))?;
        Ok(Self(array))
    }

    pub(crate) fn random() -> crate::Result<Self> {
        let mut array = [0u8; N];
        crate::rng::fill(&mut array)?;
        Ok(Self(array))
    }

    pub(crate) fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> Drop for SecretArray<N> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<const N: usize> fmt::Debug for SecretArray<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretArray([{N} bytes elided])")
    }
}
