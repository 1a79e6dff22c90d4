//! Attestation policies: a key may require, for chosen operations, that the caller
//! present an attestation document whose measurement is on the key's allow-list.
//!
//! A policy is versioned: every change stores a new version (1, 2, …) beside the old
//! ones, by compare-and-set on the current version, with its audit entry and history
//! event; the newest version is in force. A version with no operations requires
//! nothing (that is how a policy is lifted). The documents themselves are verified by
//! `coffer-attest`; this module holds the rules and their storage.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;

pub use coffer_attest::{AttestError, Attested, Format, Measurement};

use crate::ids::{KeyId, TenantId};
use crate::store::{Record, StoreResult};
use crate::time::Timestamp;

/// Most measurements one allow-list holds.
pub const MAX_MEASUREMENTS: usize = 64;

/// An operation a policy can put behind attestation: the four that hand out a secret
/// or act with the key on the caller's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttestedOp {
    /// Opening an envelope (the plaintext leaves).
    Unwrap,
    /// A data key (in the clear, unless to a recipient).
    Datakey,
    /// Signing.
    Sign,
    /// Computing a MAC.
    Mac,
}

impl AttestedOp {
    /// Every one, in order.
    pub const ALL: [Self; 4] = [Self::Unwrap, Self::Datakey, Self::Sign, Self::Mac];

    /// The API and CLI spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unwrap => "unwrap",
            Self::Datakey => "datakey",
            Self::Sign => "sign",
            Self::Mac => "mac",
        }
    }
}

impl fmt::Display for AttestedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AttestedOp {
    type Err = crate::InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or(crate::InvalidInput::new(
                "operation",
                "attested operations are unwrap, datakey, sign and mac",
            ))
    }
}

/// One version of a key's attestation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPolicy {
    /// The tenant.
    pub tenant: TenantId,
    /// The key.
    pub key: KeyId,
    /// 1 for the first policy, one more for each change.
    pub version: u32,
    /// The operations that need an attestation.
    pub operations: BTreeSet<AttestedOp>,
    /// The measurements allowed to perform them.
    pub measurements: BTreeSet<Measurement>,
    /// When this version was stored.
    pub created_at: Timestamp,
}

impl AttestationPolicy {
    /// True when `op` needs an attestation under this version.
    pub fn requires(&self, op: AttestedOp) -> bool {
        self.operations.contains(&op)
    }

    /// `operations=unwrap,sign measurements=ab…,cd…`, for events and audit details.
    pub fn summary(&self) -> String {
        let ops: Vec<&str> = self.operations.iter().map(|o| o.as_str()).collect();
        let ms: Vec<&str> = self.measurements.iter().map(Measurement::as_str).collect();
        format!(
            "v{}: operations={} measurements={}",
            self.version,
            if ops.is_empty() {
                "-".to_owned()
            } else {
                ops.join(",")
            },
            if ms.is_empty() {
                "-".to_owned()
            } else {
                ms.join(",")
            },
        )
    }
}

/// Where attestation policies live: their own table, apart from the key's row (and
/// from AWS key policies and grants).
#[async_trait]
pub trait AttestationStore: Send + Sync {
    /// Stores `policy` as the key's new version, in one transaction with `record`, only
    /// if the key's current version is `policy.version - 1` (0: none yet); otherwise
    /// `Conflict` and nothing is written. `NotFound` if the key is absent in the tenant.
    async fn put_attestation_policy(
        &self,
        policy: &AttestationPolicy,
        record: &Record,
    ) -> StoreResult<()>;

    /// Every version of the key's policy, oldest first (empty: never set).
    async fn attestation_policies(
        &self,
        tenant: TenantId,
        key: KeyId,
    ) -> StoreResult<Vec<AttestationPolicy>>;

    /// The version in force, if any.
    async fn attestation_policy(
        &self,
        tenant: TenantId,
        key: KeyId,
    ) -> StoreResult<Option<AttestationPolicy>>;
}
