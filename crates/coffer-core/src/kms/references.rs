//! The reference tracker: which principals used each key version recently, and how many
//! operations on it are in flight now — seed 000's "find the process holding the old KEK
//! reference", and what `drain_inflight` waits on.
//!
//! One mutex over small maps, taken twice per operation (start, end) for a hash update;
//! never held across an await or a crypto call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ids::{KeyId, VersionNumber};
use crate::time::Timestamp;
use crate::token::TokenId;

/// Use of one version by one principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalUse {
    /// Last use.
    pub last_seen: Timestamp,
    /// Operations.
    pub count: u64,
}

#[derive(Default)]
struct VersionUse {
    in_flight: u64,
    principals: HashMap<TokenId, PrincipalUse>,
}

#[derive(Default)]
pub(crate) struct References {
    versions: Mutex<HashMap<(KeyId, VersionNumber), VersionUse>>,
}

/// Marks one operation in flight on a version until dropped.
pub(crate) struct InFlight {
    references: Arc<References>,
    at: (KeyId, VersionNumber),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(entry) = self.references.lock().get_mut(&self.at) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
        }
    }
}

impl References {
    fn lock(&self) -> MutexGuard<'_, HashMap<(KeyId, VersionNumber), VersionUse>> {
        // Counters only: a panic elsewhere cannot leave them inconsistent enough to matter.
        self.versions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a use by `principal` and marks it in flight.
    pub fn begin(
        self: &Arc<Self>,
        key: KeyId,
        version: VersionNumber,
        principal: TokenId,
        now: Timestamp,
    ) -> InFlight {
        let mut map = self.lock();
        let entry = map.entry((key, version)).or_default();
        entry.in_flight += 1;
        let use_ = entry.principals.entry(principal).or_insert(PrincipalUse {
            last_seen: now,
            count: 0,
        });
        use_.last_seen = now;
        use_.count += 1;
        InFlight {
            references: self.clone(),
            at: (key, version),
        }
    }

    /// Operations in flight on a version.
    pub fn in_flight(&self, key: KeyId, version: VersionNumber) -> u64 {
        self.lock().get(&(key, version)).map_or(0, |e| e.in_flight)
    }

    /// Principals that used a version, most recent first.
    pub fn principals(&self, key: KeyId, version: VersionNumber) -> Vec<(TokenId, PrincipalUse)> {
        let mut out: Vec<_> = self
            .lock()
            .get(&(key, version))
            .map(|e| e.principals.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        out.sort_by_key(|entry| std::cmp::Reverse(entry.1.last_seen));
        out
    }
}
