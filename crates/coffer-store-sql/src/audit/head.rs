//! What allocates audit indices ([`AuditHead`]), and on SQLite the entries the journal
//! holds that the database does not hold yet.
//!
//! - PostgreSQL (any number of replicas): the `audit_head` row. Updating it first takes
//!   its row lock until the transaction ends, so replicas append one after another,
//!   never interleaved, and a rolled-back append leaves no gap.
//! - SQLite (one process, one writer connection): the head is kept in memory, read from
//!   the stored log at start. Transactions on the single writer connection run one at a
//!   time, so the head a transaction staged is published only when it commits. Another
//!   process appending to the same file would collide on an index (the primary key
//!   refuses it: fail closed, never a gap).
//!
//! With the journal (SQLite in a file, `journaled`), hot-path batches take their
//! indices here too and are durable once in the journal; their rows wait here
//! (`pending`) until a transaction writes them into the database. Every writing
//! transaction that appends entries of its own first writes everything pending, so the
//! database's log never has a gap. Taking indices is ordered by one lock (`order`):
//! a journal append holds it until its sync returned, a transaction from its first
//! append until it ends, so the two never take the same indices and a transaction
//! never commits entries after ones still being synced.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use coffer_audit::merkle::{Hash, leaf_hash};
use coffer_core::StoreResult;
use sqlx::{AnyPool, Row};
use tokio::sync::OwnedMutexGuard;

use crate::errors::{corrupt, unavailable};

/// Where the next entry goes: its index and the previous leaf's hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    pub(crate) next: u64,
    pub(crate) prev: Hash,
}

/// What allocates audit indices (see the module docs).
#[derive(Debug)]
pub enum AuditHead {
    /// The `audit_head` row, locked by each appending transaction (PostgreSQL).
    Row,
    /// In memory (SQLite).
    Memory(MemoryHead),
}

/// The in-memory head (SQLite).
#[derive(Debug, Default)]
pub struct MemoryHead {
    slots: Mutex<Slots>,
    order: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct Slots {
    /// The head as committed (to the database or the journal).
    committed: Option<Head>,
    /// What the running transaction staged.
    staged: Option<Head>,
    /// Entries durable in the journal and not yet in the database, in index order.
    pending: VecDeque<(u64, String)>,
    /// Up to where the running transaction wrote pending entries into the database.
    staged_stored: Option<u64>,
    /// The running transaction's hold on `order`, from its first append to its end.
    held: Option<OwnedMutexGuard<()>>,
}

impl AuditHead {
    /// An in-memory head, to [`AuditHead::load`] before use.
    pub fn memory() -> Self {
        Self::Memory(MemoryHead::default())
    }

    /// True for the in-memory head.
    pub fn in_memory(&self) -> bool {
        matches!(self, Self::Memory(_))
    }

    fn slots(&self) -> Option<MutexGuard<'_, Slots>> {
        match self {
            Self::Row => None,
            Self::Memory(head) => Some(head.slots()),
        }
    }

    /// Reads the in-memory head from the stored log. Only where nothing is pending (at
    /// start, after recovering the journal; after a restore, which drains it first).
    pub async fn load(&self, pool: &AnyPool) -> StoreResult<()> {
        if !self.in_memory() {
            return Ok(());
        }
        let head = stored_head(pool).await?;
        if let Some(mut slots) = self.slots() {
            if !slots.pending.is_empty() {
                return Err(corrupt("audit head reloaded with journal entries pending"));
            }
            slots.committed = Some(head);
            slots.staged = None;
        }
        Ok(())
    }

    /// Orders this transaction's append after every journal append (see the module
    /// docs); held until the transaction ends. A no-op for the row head, and for a
    /// transaction that already holds it.
    pub(crate) async fn hold(&self) {
        let Self::Memory(head) = self else {
            return;
        };
        if head.slots().held.is_some() {
            return;
        }
        let held = head.order.clone().lock_owned().await;
        head.slots().held = Some(held);
    }

    /// The head a transaction appends at: what it staged, else the committed one.
    /// `None` for the row head (read inside the transaction instead).
    pub(crate) fn current(&self) -> StoreResult<Option<Head>> {
        match self.slots() {
            None => Ok(None),
            Some(slots) => slots
                .staged
                .or(slots.committed)
                .map(Some)
                .ok_or_else(|| corrupt("audit head not loaded")),
        }
    }

    pub(crate) fn stage(&self, head: Head) {
        if let Some(mut slots) = self.slots() {
            slots.staged = Some(head);
        }
    }

    /// The running transaction wrote the pending entries below `stored`.
    pub(crate) fn stage_stored(&self, stored: u64) {
        if let Some(mut slots) = self.slots() {
            slots.staged_stored = Some(stored);
        }
    }

    /// The pending entries the running transaction has not written yet.
    pub(crate) fn unwritten(&self) -> Vec<(u64, String)> {
        let Some(slots) = self.slots() else {
            return Vec::new();
        };
        let written = slots.staged_stored.unwrap_or(0);
        let skip = slots.pending.partition_point(|(index, _)| *index < written);
        slots.pending.range(skip..).cloned().collect()
    }

    /// Up to `limit` pending entries from index `from` on.
    pub(crate) fn pending_from(&self, from: u64, limit: u64) -> Vec<(u64, String)> {
        let Some(slots) = self.slots() else {
            return Vec::new();
        };
        let skip = slots.pending.partition_point(|(index, _)| *index < from);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        slots.pending.range(skip..).take(limit).cloned().collect()
    }

    /// The index of the oldest pending entry.
    pub(crate) fn pending_first(&self) -> Option<u64> {
        self.slots()
            .and_then(|slots| slots.pending.front().map(|(index, _)| *index))
    }

    /// Entries pending.
    pub(crate) fn pending_len(&self) -> usize {
        self.slots().map_or(0, |slots| slots.pending.len())
    }

    /// A transaction starts on the writer connection: nothing is staged. The answer is
    /// settled when the transaction ends; dropped unsettled (the request that ran it was
    /// dropped), it voids what was staged and releases the order at once, before the
    /// connection goes back to the pool (declare it after the connection), so appends
    /// never wait on a transaction that is gone.
    pub fn begin(&self) -> Staging<'_> {
        self.abandon();
        Staging {
            head: self,
            settled: false,
        }
    }

    fn abandon(&self) {
        if let Some(mut slots) = self.slots() {
            slots.staged = None;
            slots.staged_stored = None;
            slots.held = None;
        }
    }

    /// A transaction ended: what it staged becomes the head if it committed.
    fn settle(&self, committed: bool) {
        if let Some(mut slots) = self.slots() {
            let staged = slots.staged.take();
            let stored = slots.staged_stored.take();
            if committed {
                if let Some(staged) = staged {
                    slots.committed = Some(staged);
                }
                if let Some(stored) = stored {
                    let written = slots.pending.partition_point(|(index, _)| *index < stored);
                    slots.pending.drain(..written);
                }
            }
            slots.held = None;
        }
    }
}

/// A running transaction's staging of the head ([`AuditHead::begin`]).
#[must_use = "settle it when the transaction ends"]
pub struct Staging<'a> {
    head: &'a AuditHead,
    settled: bool,
}

impl Staging<'_> {
    /// The transaction ended: what it staged becomes the head if it committed.
    pub fn settle(mut self, committed: bool) {
        self.head.settle(committed);
        self.settled = true;
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.head.abandon();
        }
    }
}

impl MemoryHead {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Held by a journal append from taking its indices until its sync returned.
    pub(crate) async fn order(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.order.lock().await
    }

    /// The committed head (call holding [`MemoryHead::order`]: no transaction is then
    /// between its append and its end).
    pub(crate) fn committed(&self) -> StoreResult<Head> {
        self.slots()
            .committed
            .ok_or_else(|| corrupt("audit head not loaded"))
    }

    /// A journal append is durable: its entries are the log's, and wait to be written
    /// into the database.
    pub(crate) fn journaled(&self, head: Head, rows: Vec<(u64, String)>) {
        let mut slots = self.slots();
        slots.committed = Some(head);
        slots.pending.extend(rows);
    }

    /// Entries recovered from the journal at start are in the database now.
    pub(crate) fn recovered(&self, head: Head) {
        self.slots().committed = Some(head);
    }
}

/// The head as the stored entries say: after the last one.
async fn stored_head(pool: &AnyPool) -> StoreResult<Head> {
    let last = sqlx::query("SELECT idx, leaf FROM audit_entries ORDER BY idx DESC LIMIT 1")
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(match last {
        None => Head {
            next: 0,
            prev: [0u8; 32],
        },
        Some(row) => {
            let index = row.try_get::<i64, _>("idx").map_err(unavailable)?;
            let leaf = row.try_get::<String, _>("leaf").map_err(unavailable)?;
            Head {
                next: u64::try_from(index + 1).map_err(|_| corrupt("audit index"))?,
                prev: leaf_hash(leaf.as_bytes()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::AuditHead;

    #[tokio::test]
    async fn a_transaction_dropped_unsettled_releases_the_order_at_once() {
        let head = AuditHead::memory();
        let AuditHead::Memory(memory) = &head else {
            unreachable!("a memory head")
        };
        let staging = head.begin();
        head.hold().await;
        assert!(memory.order.try_lock().is_err(), "held by the transaction");
        // The request running the transaction is dropped: journal appends go on.
        drop(staging);
        assert!(memory.order.try_lock().is_ok());

        let staging = head.begin();
        head.hold().await;
        staging.settle(false);
        assert!(memory.order.try_lock().is_ok(), "and once it settled");
    }
}
