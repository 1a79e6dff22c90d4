//! The reference tracker: which principals used each key version recently, and how many
//! operations on it are in flight now — seed 000's "find the process holding the old KEK
//! reference", and what `drain_inflight` waits on.
//!
//! One mutex over small maps, taken twice per operation (start, end) for a hash update;
//! never held across an await or a crypto call.
//!
//! The drain waits on a `Notify` signalled when a version's in-flight count reaches
//! zero, not on a polling loop: it ends as soon as the last operation does, and holds no
//! thread while it waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

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
    /// Signalled when some version's in-flight count drops to zero. One for every
    /// version: drains are rare, so a waiter woken for another version just re-checks.
    idle: Notify,
}

/// Marks one operation in flight on a version until dropped.
pub(crate) struct InFlight {
    references: Arc<References>,
    at: (KeyId, VersionNumber),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now_idle = match self.references.lock().get_mut(&self.at) {
            Some(entry) => {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                entry.in_flight == 0
            }
            None => false,
        };
        // Outside the lock; only on reaching zero, the one change a drain waits for.
        if now_idle {
            self.references.idle.notify_waiters();
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

    /// Waits until no operation is in flight on a version, for at most `timeout`.
    /// `Err` carries how many operations were still in flight when it gave up.
    pub async fn drained(
        &self,
        key: KeyId,
        version: VersionNumber,
        timeout: Duration,
    ) -> Result<(), u64> {
        let wait = async {
            loop {
                // Registered before the count is read: an operation that ends between
                // the read and the await still wakes this waiter.
                let mut idle = std::pin::pin!(self.idle.notified());
                idle.as_mut().enable();
                if self.in_flight(key, version) == 0 {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_ok() {
            return Ok(());
        }
        match self.in_flight(key, version) {
            0 => Ok(()),
            busy => Err(busy),
        }
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn at() -> (KeyId, VersionNumber) {
        (KeyId::generate(), VersionNumber::new(1).unwrap())
    }

    fn principal() -> TokenId {
        TokenId::generate()
    }

    #[tokio::test]
    async fn a_drain_ends_when_the_last_operation_does() {
        let references = Arc::new(References::default());
        let (key, version) = at();
        let first = references.begin(key, version, principal(), Timestamp::from_millis(0));
        let second = references.begin(key, version, principal(), Timestamp::from_millis(0));
        let ending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(first);
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(second);
        });
        let started = Instant::now();
        references
            .drained(key, version, Duration::from_secs(10))
            .await
            .unwrap();
        let waited = started.elapsed();
        // Not before the second operation ended, and long before the timeout.
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert_eq!(references.in_flight(key, version), 0);
        ending.await.unwrap();
    }

    #[tokio::test]
    async fn a_drain_times_out_while_an_operation_stays_in_flight() {
        let references = Arc::new(References::default());
        let (key, version) = at();
        let _held = references.begin(key, version, principal(), Timestamp::from_millis(0));
        // Another version's operation ending wakes the waiter, which must wait on.
        let other = references.begin(
            key,
            VersionNumber::new(2).unwrap(),
            principal(),
            Timestamp::from_millis(0),
        );
        drop(other);
        let started = Instant::now();
        let busy = references
            .drained(key, version, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(busy, 1);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn an_idle_version_drains_at_once() {
        let references = References::default();
        let (key, version) = at();
        references
            .drained(key, version, Duration::from_millis(1))
            .await
            .unwrap();
    }
}
