//! SQLite's hot-path audit appends through the journal: durable with one `pwrite` and
//! one `fdatasync`, written into the database afterwards, off the request's path.
//!
//! A group-committed batch takes its indices from the in-memory head, is written to the
//! journal file (`journal`) and synced; only then is it acknowledged, and its rows wait
//! in the head (`pending`). A task writes pending rows into `audit_entries` every
//! [`DRAIN_INTERVAL`], many per transaction; any other writing transaction that
//! appends entries writes the pending ones first (`audit::append_in`), so the table
//! never has a gap. Readers of the log see the table followed by what is pending
//! (`SqlStore::audit_entries`).
//!
//! At start the journal's records that continue the table are written into it before
//! anything else runs, and the journal is emptied. It is emptied again, while running,
//! whenever everything in it has reached the table and it has grown past [`CLEAR_AT`].
//!
//! Before, every batch was one SQLite commit: about a dozen page writes and a sync of
//! the log, back to back on the one writer connection, so every answer waited for the
//! commit in progress and then its own (PERFORMANCE.md §3).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use coffer_audit::merkle::leaf_hash;
use coffer_core::audit::AuditEntry;
use coffer_core::store::Appended;
use coffer_core::{StoreError, StoreResult};
use sqlx::AnyPool;

use super::head::{AuditHead, Head, MemoryHead};
use super::journal::{self, JournalFile};
use crate::errors::{corrupt, unavailable};
use crate::health::WriterHealth;

/// How often pending entries are written into the database.
pub(crate) const DRAIN_INTERVAL: Duration = Duration::from_millis(20);
/// Entries per draining transaction at most.
const DRAIN_MAX: usize = 4_000;
/// Entries pending at most: beyond, appends are refused until the database takes them
/// (it is failing; the journal would only grow).
const MAX_PENDING: usize = 200_000;
/// Journal size past which it is emptied once everything in it is in the database.
const CLEAR_AT: u64 = 16 << 20;

/// The journal of one SQLite database, and the task draining it.
pub(crate) struct Journal {
    file: Arc<JournalFile>,
    head: Arc<AuditHead>,
    writer: AnyPool,
    health: Arc<WriterHealth>,
    /// Where the next batch is written; changed only by an append holding the order.
    end: AtomicU64,
    drainer: tokio::task::JoinHandle<()>,
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.drainer.abort();
    }
}

impl Journal {
    /// Opens the journal beside `database`, writes what it holds beyond the stored log
    /// into the database, empties it, and starts draining. `head` must be loaded.
    pub(crate) async fn open(
        database: &Path,
        writer: AnyPool,
        head: Arc<AuditHead>,
        health: Arc<WriterHealth>,
    ) -> StoreResult<Self> {
        let path = journal::path_beside(database);
        let shown = path.display().to_string();
        let (file, rows) = tokio::task::spawn_blocking(move || JournalFile::open(&path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(|e| StoreError::Unavailable(format!("cannot open {shown}: {e}")))?;
        let memory = memory(&head)?;
        let stored = memory.committed()?;
        let recovered = continuation(stored.next, rows).map_err(|problem| {
            StoreError::Corrupt(format!("the audit journal {shown} {problem}"))
        })?;
        if let Some((_, last)) = recovered.last() {
            let mut conn = writer.acquire().await.map_err(unavailable)?;
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(unavailable)?;
            super::insert_rows(&mut tx, &recovered).await?;
            tx.commit().await.map_err(unavailable)?;
            memory.recovered(Head {
                next: stored.next + recovered.len() as u64,
                prev: leaf_hash(last.as_bytes()),
            });
            tracing::info!(
                target: "coffer::audit",
                entries = recovered.len(),
                journal = %shown,
                "audit entries recovered from the journal into the database"
            );
        }
        let file = Arc::new(file);
        let clearing = file.clone();
        tokio::task::spawn_blocking(move || clearing.clear_durably())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(|e| StoreError::Unavailable(format!("cannot empty {shown}: {e}")))?;
        let drainer = tokio::spawn(drain_forever(writer.clone(), head.clone(), health.clone()));
        Ok(Self {
            file,
            head,
            writer,
            health,
            end: AtomicU64::new(0),
            drainer,
        })
    }

    /// Appends a group-committed batch: returns once it is durable in the journal.
    pub(crate) async fn append(&self, entries: &[AuditEntry]) -> StoreResult<Appended> {
        let memory = memory(&self.head)?;
        let _order = memory.order().await;
        if self.head.pending_len() >= MAX_PENDING {
            return Err(self.health.failed(StoreError::Unavailable(
                "the audit journal is full: its entries are not reaching the database".into(),
            )));
        }
        let start = memory.committed()?;
        let super::Chained {
            rows,
            appended,
            last: link,
        } = super::chain(start.next, start.prev, entries)?;
        if rows.iter().any(|(_, leaf)| leaf.len() > journal::MAX_LEAF) {
            return Err(StoreError::Unavailable(
                "an audit entry is too long for the journal".into(),
            ));
        }
        let mut bytes = Vec::with_capacity(rows.iter().map(|(_, leaf)| leaf.len() + 64).sum());
        journal::encode(&rows, &mut bytes);
        let mut end = self.end.load(Ordering::Acquire);
        if end >= CLEAR_AT && self.head.pending_len() == 0 {
            let file = self.file.clone();
            if blocking(move || file.clear()).await.is_ok() {
                end = 0;
                self.end.store(0, Ordering::Release);
            }
        }
        let file = self.file.clone();
        let length = bytes.len() as u64;
        match blocking(move || file.append(end, &bytes)).await {
            Ok(()) => {
                self.end.store(end + length, Ordering::Release);
                memory.journaled(
                    Head {
                        next: start.next + entries.len() as u64,
                        prev: link,
                    },
                    rows,
                );
                Ok(appended)
            }
            Err(error) => Err(self.health.failed(StoreError::Unavailable(format!(
                "the audit journal {} cannot be written: {error}",
                self.file.path().display()
            )))),
        }
    }

    /// Writes everything pending into the database (before a snapshot, a restore, a
    /// close).
    pub(crate) async fn drain_all(&self) -> StoreResult<()> {
        while self.head.pending_len() > 0 {
            drain_once(&self.writer, &self.head, &self.health).await?;
        }
        Ok(())
    }
}

fn memory(head: &AuditHead) -> StoreResult<&MemoryHead> {
    match head {
        AuditHead::Memory(memory) => Ok(memory),
        AuditHead::Row => Err(corrupt("the audit journal needs the in-memory head")),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

/// The journal's records that continue a stored log ending before `next`: those below
/// it are in the database already; the rest must follow it index by index. What comes
/// after the run (the torn or stale end of the file) is not the log's.
pub(crate) fn continuation(
    next: u64,
    rows: Vec<(u64, String)>,
) -> Result<Vec<(u64, String)>, String> {
    let mut run = Vec::new();
    let mut expected = next;
    for (index, leaf) in rows {
        if run.is_empty() && index < next {
            continue;
        }
        if index != expected {
            if run.is_empty() {
                return Err(format!(
                    "holds entry {index} but the stored log ends before {next}: entries are missing"
                ));
            }
            break;
        }
        run.push((index, leaf));
        expected += 1;
    }
    Ok(run)
}

async fn drain_forever(writer: AnyPool, head: Arc<AuditHead>, health: Arc<WriterHealth>) {
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if writer.is_closed() {
            return;
        }
        let pending = head.pending_len();
        metrics::gauge!("kms_audit_journal_pending").set(pending as f64);
        if pending > 0 {
            // A failure is retried at the next tick; the entries stay in the journal
            // and readiness reports the broken writer meanwhile.
            if let Err(error) = drain_once(&writer, &head, &health).await {
                tracing::warn!(target: "coffer::audit", %error, "audit entries wait in the journal");
            }
        }
    }
}

/// Writes up to [`DRAIN_MAX`] pending entries into the database in one transaction.
async fn drain_once(writer: &AnyPool, head: &AuditHead, health: &WriterHealth) -> StoreResult<()> {
    let mut pooled = writer
        .acquire()
        .await
        .map_err(|e| health.failed(unavailable(e)))?;
    head.begin();
    let rows = head.pending(DRAIN_MAX);
    let outcome = async {
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        let mut tx = sqlx::Connection::begin(&mut *pooled)
            .await
            .map_err(unavailable)?;
        super::insert_rows(&mut tx, &rows).await?;
        head.stage_stored(last + 1);
        tx.commit().await.map_err(unavailable)
    }
    .await;
    head.settle(outcome.is_ok());
    health.settle(pooled, outcome).await
}

#[cfg(test)]
mod tests {
    use super::continuation;

    fn rows(indices: &[u64]) -> Vec<(u64, String)> {
        indices.iter().map(|i| (*i, format!("leaf {i}"))).collect()
    }

    #[test]
    fn recovery_takes_what_follows_the_stored_log_and_stops_at_a_stale_tail() {
        assert_eq!(
            continuation(3, rows(&[1, 2, 3, 4, 5, 2])),
            Ok(rows(&[3, 4, 5]))
        );
        assert_eq!(continuation(6, rows(&[1, 2, 3, 4, 5])), Ok(vec![]));
        assert_eq!(continuation(0, rows(&[])), Ok(vec![]));
    }

    #[test]
    fn recovery_refuses_a_journal_that_skips_entries() {
        assert!(continuation(3, rows(&[5, 6])).is_err());
        assert!(continuation(3, rows(&[1, 2, 4])).is_err());
    }
}
