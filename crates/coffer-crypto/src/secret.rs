//! Secret byte buffers.
//!
//! [`SecretBytes`] is how secret material leaves and enters this crate (data keys,
//! decrypted plaintext, stored key material before custody wraps it). It follows the
//! house rule for secrets: no `Clone`, `PartialEq`, `Serialize`; `Debug` says it is
//! elided; the bytes are zeroized on drop and read through `expose_secret`.
//! `SecretArray` (raw keys inside this crate) lives in locked pages (`locked`).

use std::fmt;

use zeroize::Zeroizing;

mod locked;

pub use locked::{LockedMemory, locked_memory};

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

/// A fixed-size secret array (raw 32-byte keys and seeds), held in a slot of the locked
/// secret pages ([`locked`]) and wiped when dropped.
pub(crate) struct SecretArray<const N: usize> {
    slot: locked::Slot,
}

impl<const N: usize> SecretArray<N> {
    const FITS_A_SLOT: () = assert!(N <= locked::SLOT, "a secret array must fit one slot");

    /// N zero bytes in a fresh slot.
    fn zeroed() -> crate::Result<Self> {
        let () = Self::FITS_A_SLOT;
        locked::Slot::take()
            .map(|slot| Self { slot })
            .ok_or(crate::CryptoError::Backend("mapping memory for secrets"))
    }

    pub(crate) fn from_slice(bytes: &[u8], what: &'static str) -> crate::Result<Self> {
        if bytes.len() != N {
            return Err(crate::CryptoError::malformed(what, "wrong length"));
        }
        let mut array = Self::zeroed()?;
        array.slot.bytes_mut()[..N].copy_from_slice(bytes);
        Ok(array)
    }

    pub(crate) fn random() -> crate::Result<Self> {
        let mut array = Self::zeroed()?;
        crate::rng::fill(&mut array.slot.bytes_mut()[..N])?;
        Ok(array)
    }

    pub(crate) fn expose(&self) -> &[u8; N] {
        let bytes: &[u8; locked::SLOT] = self.slot.bytes();
        // N <= SLOT (checked at compile time), so the first N bytes are an [u8; N].
        bytes
            .first_chunk::<N>()
            .unwrap_or_else(|| unreachable!("N fits a slot"))
    }
}

impl<const N: usize> fmt::Debug for SecretArray<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretArray([{N} bytes elided])")
    }
}
