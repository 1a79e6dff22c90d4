//! Encryption context: caller-chosen key/value pairs bound into a ciphertext.
//!
//! Canonical encoding (the bytes authenticated as associated data):
//! `count (u32 BE) ‖ for each pair in byte order of keys: len(key) (u32 BE) ‖ key ‖
//! len(value) (u32 BE) ‖ value`. Sorting makes the encoding independent of the order
//! the caller sent; length prefixes make it injective (no two contexts share bytes).

use std::collections::BTreeMap;

use crate::{CryptoError, Result};

/// Upper bound on the canonical encoding, matching the 8 KiB the AWS KMS API allows.
pub const MAX_CONTEXT_BYTES: usize = 8 * 1024;

/// An encryption context. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a context, refusing one whose encoding exceeds [`MAX_CONTEXT_BYTES`].
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let context = Self(map);
        let len = context.encoded_len();
        if len > MAX_CONTEXT_BYTES {
            return Err(CryptoError::TooLong {
                what: "encryption context",
                len,
                max: MAX_CONTEXT_BYTES,
            });
        }
        Ok(context)
    }

    /// The pairs, sorted by key.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// True when no pairs are set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn encoded_len(&self) -> usize {
        4 + self
            .0
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum::<usize>()
    }

    /// Appends the canonical encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Lengths fit in u32: from_pairs bounds the total at 8 KiB.
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (key, value) in &self.0 {
            out.extend_from_slice(&(key.len() as u32).to_be_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// The canonical encoding.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}
