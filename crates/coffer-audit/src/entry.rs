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
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `SHA-256(0x00 ‖ leaf bytes)`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.leaf_bytes())
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
