//! The reference tracker: which principals used each key version, how and when — seed
//! 000's "find the process holding the old KEK reference" — and how many operations on
//! it are in flight now, which `drain_inflight` waits on.
//!
//! Use is persisted (the store's `UsageStore`), so every replica and every restart gives
//! one answer; in-flight counts stay here, as they are per process by nature. The hot
//! path takes this process's one mutex once per operation, at its start, for two hash
//! updates (the use delta, and the version's in-flight counter, an atomic shared with
//! the operation's guard), and never holds it across an await or a crypto call; the
//! operation's end only decrements that atomic. A background task ([`References::flush`], about once a second, and once more
//! at shutdown) moves the deltas to the store; a failed flush keeps them for the next.
//!
//! A reader gets stored use plus the deltas not yet flushed. The flush gate, an async
//! mutex a flush holds from taking the deltas until they are stored or put back, and a
//! reader from reading the store until reading the deltas, keeps a reader from counting
//! a delta twice or not at all.
//!
//! The drain waits on a `Notify` signalled when a version's in-flight count reaches
//! zero, not on a polling loop: it ends as soon as the last operation does, and holds no
//! thread while it waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::store::{StoreResult, UsageStore};
use crate::time::Timestamp;
use crate::usage::{UseCount, UseOf, VersionUse};

#[derive(Default)]
struct Counters {
    /// Operations in flight per version; each guard holds its version's counter, so
    /// an operation's end needs no lock. Counters stay once made (one per version used).
    in_flight: HashMap<(KeyId, VersionNumber), Arc<AtomicU64>>,
    /// Use since the last flush took the deltas.
    pending: HashMap<UseOf, UseCount>,
}

#[derive(Default)]
pub(crate) struct References {
    counters: Mutex<Counters>,
    /// Signalled when some version's in-flight count drops to zero. One for every
    /// version: drains are rare, so a waiter woken for another version just re-checks.
    idle: Notify,
    /// See the module docs: one flush or one reader at a time.
    flush_gate: tokio::sync::Mutex<()>,
}

/// Marks one operation in flight on a version until dropped.
pub(crate) struct InFlight {
    references: Arc<References>,
    count: Arc<AtomicU64>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Only on reaching zero, the one change a drain waits for. A drain registers
        // before it reads the count, so it sees either this decrement or the wake-up.
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.references.idle.notify_waiters();
        }
    }
}

impl References {
    fn lock(&self) -> MutexGuard<'_, Counters> {
        // Counters only: a panic elsewhere cannot leave them inconsistent enough to matter.
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a use and marks it in flight.
    pub fn begin(self: &Arc<Self>, of: UseOf, now: Timestamp) -> InFlight {
        let mut counters = self.lock();
        let count = counters
            .in_flight
            .entry((of.key, of.version))
            .or_default()
            .clone();
        count.fetch_add(1, Ordering::AcqRel);
        counters
            .pending
            .entry(of)
            .and_modify(|count| count.add(UseCount::once(now)))
            .or_insert(UseCount::once(now));
        drop(counters);
        InFlight {
            references: self.clone(),
            count,
        }
    }

    /// Operations in flight on a version.
    pub fn in_flight(&self, key: KeyId, version: VersionNumber) -> u64 {
        self.lock()
            .in_flight
            .get(&(key, version))
            .map_or(0, |count| count.load(Ordering::Acquire))
    }

    /// Moves the deltas accumulated since the last flush to `store`, in one
    /// transaction. On failure they stay here (merged with newer use) for the next try.
    /// Returns how many rows were written.
    pub async fn flush(&self, store: &dyn UsageStore) -> StoreResult<usize> {
        let _gate = self.flush_gate.lock().await;
        let taken = std::mem::take(&mut self.lock().pending);
        if taken.is_empty() {
            return Ok(0);
        }
        let rows: Vec<VersionUse> = taken
            .iter()
            .map(|(of, count)| VersionUse {
                of: *of,
                count: *count,
            })
            .collect();
        match store.add_use(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err(error) => {
                let mut counters = self.lock();
                for (of, count) in taken {
                    counters
                        .pending
                        .entry(of)
                        .and_modify(|newer| newer.add(count))
                        .or_insert(count);
                }
                Err(error)
            }
        }
    }

    /// The use of every version of `key`: what the store holds (every replica's
    /// flushed use) plus this process's deltas not yet flushed.
    pub async fn key_use(
        &self,
        store: &dyn UsageStore,
        tenant: TenantId,
        key: KeyId,
    ) -> StoreResult<Vec<VersionUse>> {
        let _gate = self.flush_gate.lock().await;
        let mut merged: HashMap<UseOf, UseCount> = store
            .key_use(tenant, key)
            .await?
            .into_iter()
            .map(|row| (row.of, row.count))
            .collect();
        for (of, count) in self.lock().pending.iter() {
            if of.tenant == tenant && of.key == key {
                merged
                    .entry(*of)
                    .and_modify(|stored| stored.add(*count))
                    .or_insert(*count);
            }
        }
        let mut out: Vec<VersionUse> = merged
            .into_iter()
            .map(|(of, count)| VersionUse { of, count })
            .collect();
        // Per version, most recent use first.
        out.sort_by(|a, b| {
            (
                a.of.version,
                std::cmp::Reverse(a.count.last_seen),
                a.of.principal,
                a.of.kind,
            )
                .cmp(&(
                    b.of.version,
                    std::cmp::Reverse(b.count.last_seen),
                    b.of.principal,
                    b.of.kind,
                ))
        });
        Ok(out)
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
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::token::TokenId;

    fn at() -> (KeyId, VersionNumber) {
        (KeyId::generate(), VersionNumber::new(1).unwrap())
    }

    /// A use of `version` by a fresh principal.
    fn by_someone(key: KeyId, version: VersionNumber) -> UseOf {
        UseOf {
            tenant: TenantId::generate(),
            key,
            version,
            principal: TokenId::generate(),
            kind: crate::usage::UseKind::Decrypt,
        }
    }

    #[tokio::test]
    async fn a_drain_ends_when_the_last_operation_does() {
        let references = Arc::new(References::default());
        let (key, version) = at();
        let first = references.begin(by_someone(key, version), Timestamp::from_millis(0));
        let second = references.begin(by_someone(key, version), Timestamp::from_millis(0));
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
        let _held = references.begin(by_someone(key, version), Timestamp::from_millis(0));
        // Another version's operation ending wakes the waiter, which must wait on.
        let other = references.begin(
            by_someone(key, VersionNumber::new(2).unwrap()),
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
