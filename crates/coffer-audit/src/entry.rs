//! The audited event and its leaf encoding.
//!
//! A leaf is the canonical JSON of an [`ExportedEntry`]: its index, the hash of the
//! previous leaf, and the event. Canonical: fields in declaration order, no spaces, as
//! `serde_json` writes them. The previous-leaf hash chains the entries so that an
//! exported log that was edited names its first bad entry; the Merkle root over all
//! leaves is what a signed checkpoint commits to.

use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, leaf_hash};

/// One audited operation. Never plaintext, never secret material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at: i64,
    /// Tenant id, or `-` for administration without one.
    pub tenant: String,
    /// Token id of the caller (`-` when unauthenticated).
    pub principal: String,
    /// Operation, e.g. `wrap`, `keys.rotate`, `tenant.create`.
    pub op: String,
    /// Key id, when the operation names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Key version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// `ok` or the error code.
    pub outcome: String,
    /// The request id.
    pub request_id: String,
    /// What was acted on beyond the key (the token minted or revoked, the tenant
    /// created, a rewrap's source key, a certificate's CA key, a state change). Never
    /// secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An entry as stored and exported: position, chain link and event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedEntry {
    /// Position in the log, from 0.
    pub index: u64,
    /// Hex of the previous leaf's hash (64 zeros for the first).
    pub prev: String,
    /// The event.
    pub entry: AuditEntry,
}

impl ExportedEntry {
    /// Builds the entry at `index` after a leaf with hash `prev`.
    pub fn new(index: u64, prev: &Hash, entry: AuditEntry) -> Self {
        Self {
            index,
            prev: hex(prev),
            entry,
        }
    }

    /// The canonical leaf bytes.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        leaf_bytes(self.index, &self.prev, &self.entry)
    }

    /// `SHA-256(0x00 ‖ leaf bytes)`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.leaf_bytes())
    }
}

/// The canonical leaf bytes of `entry` at `index` after the leaf whose hash is `prev`
/// (lower-case hex): what [`ExportedEntry::leaf_bytes`] writes, without building one
/// (the audit writer serialises each entry once, from the request's own copy).
pub fn leaf_bytes(index: u64, prev: &str, entry: &AuditEntry) -> Vec<u8> {
    /// [`ExportedEntry`]'s fields, in its order, borrowed.
    #[derive(Serialize)]
    struct Leaf<'a> {
        index: u64,
        prev: &'a str,
        entry: &'a AuditEntry,
    }
    // Serialising plain strings and integers cannot fail.
    serde_json::to_vec(&Leaf { index, prev, entry }).unwrap_or_default()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry(key: Option<String>, version: Option<u32>, detail: Option<String>) -> AuditEntry {
        AuditEntry {
            at: 1_700_000_000_000,
            tenant: "t-1".into(),
            principal: "tok".into(),
            op: "wrap".into(),
            key,
            version,
            outcome: "ok".into(),
            request_id: "req \"quoted\" é".into(),
            detail,
        }
    }

    proptest! {
        /// The borrowed serialisation is byte for byte the canonical leaf, so the
        /// hashes of the stored log do not change.
        #[test]
        fn borrowed_leaf_bytes_are_the_canonical_leaf(
            index in any::<u64>(),
            prev in any::<[u8; 32]>(),
            key in proptest::option::of(".*"),
            version in proptest::option::of(any::<u32>()),
            detail in proptest::option::of(".*"),
        ) {
            let entry = entry(key, version, detail);
            let exported = ExportedEntry::new(index, &prev, entry.clone());
            let canonical = serde_json::to_vec(&exported).unwrap();
            prop_assert_eq!(leaf_bytes(index, &hex(&prev), &entry), canonical);
        }

        #[test]
        fn hex_is_two_lower_case_digits_per_byte(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(hex(&bytes), expected);
        }
    }
}
