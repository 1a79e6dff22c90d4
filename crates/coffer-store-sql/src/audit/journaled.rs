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
//! anything else runs, and the journal is emptied; a graceful stop (`drain_all`)
//! empties it too. While running, its two files take turns: past [`SWITCH_AT`] appends
//! go to the other file, once the table holds everything that one held, and write over
//! it from its start. Zeros are written ahead of the records (`journal`), so most
//! batches' syncs leave the file's size alone.
//!
//! Only the process that owns the database (`owner`) opens the journal: the recovery
//! at the start would otherwise take a running server's entries and empty its files.
//!
//! Before, every batch was one SQLite commit: about a dozen page writes and a sync of
//! the log, back to back on the one writer connection, so every answer waited for the
//! commit in progress and then its own (PERFORMANCE.md §3).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
use crate::owner::DatabaseOwner;

/// How often pending entries are written into the database.
pub(crate) const DRAIN_INTERVAL: Duration = Duration::from_millis(50);
/// Entries per draining transaction at most.
const DRAIN_MAX: u64 = 10_000;
/// Entries pending at most: beyond, appends are refused until the database takes them
/// (it is failing; the journal would only grow).
const MAX_PENDING: usize = 200_000;
/// Bytes of records past which appends go to the other file, once the table holds
/// everything in that one.
const SWITCH_AT: u64 = 16 << 20;

/// The journal of one SQLite database, and the task draining it.
pub(crate) struct Journal {
    files: [Arc<JournalFile>; 2],
    head: Arc<AuditHead>,
    writer: AnyPool,
    health: Arc<WriterHealth>,
    /// Changed only by an append, holding the order.
    turn: Mutex<Turn>,
    /// An append failed and none succeeded since (readiness).
    broken: AtomicBool,
    /// [`SWITCH_AT`], smaller in tests.
    switch_at: AtomicU64,
    /// [`MAX_PENDING`], smaller in tests.
    max_pending: AtomicUsize,
    drainer: tokio::task::JoinHandle<()>,
    /// This process's ownership of the database (`owner`); `None` once let go, after
    /// which nothing is written to the files: another process may own them.
    owner: Mutex<Option<DatabaseOwner>>,
}

/// Which file takes appends and where, and what the other one still holds.
#[derive(Debug, Clone, Copy)]
struct Turn {
    current: usize,
    end: u64,
    /// The last index the other file holds; `None` once the database holds it all.
    other_last: Option<u64>,
    /// How far each file is written (records, or zeros ahead of them).
    filled: [u64; 2],
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
        owner: DatabaseOwner,
        writer: AnyPool,
        head: Arc<AuditHead>,
        health: Arc<WriterHealth>,
    ) -> StoreResult<Self> {
        let paths = journal::paths_beside(database);
        let shown = paths[0].display().to_string();
        let memory = memory(&head)?;
        let stored = memory.committed()?;
        let opened = blocking(move || {
            let (first, mut rows) = JournalFile::open(&paths[0])?;
            let (second, more) = JournalFile::open(&paths[1])?;
            rows.extend(more);
            rows.sort_by_key(|(index, _)| *index);
            rows.dedup_by_key(|(index, _)| *index);
            match continuation(stored.next, rows) {
                Ok(run) => Ok(([first, second], run)),
                Err(problem) => set_aside([first, second], &problem),
            }
        });
        let (files, recovered) = opened
            .await
            .and_then(|opened| opened)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {shown}: {e}")))?;
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
        let files = files.map(Arc::new);
        empty(&files)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot empty {shown}: {e}")))?;
        let drainer = tokio::spawn(drain_forever(writer.clone(), head.clone(), health.clone()));
        Ok(Self {
            files,
            head,
            writer,
            health,
            turn: Mutex::new(Turn {
                current: 0,
                end: 0,
                other_last: None,
                filled: [0; 2],
            }),
            broken: AtomicBool::new(false),
            switch_at: AtomicU64::new(SWITCH_AT),
            max_pending: AtomicUsize::new(MAX_PENDING),
            drainer,
            owner: Mutex::new(Some(owner)),
        })
    }

    /// Whether this process still owns the files (see [`Journal::let_go`]).
    fn owned(&self) -> StoreResult<()> {
        match *self.owner.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(_) => Ok(()),
            None => Err(StoreError::Unavailable("the store is closed".into())),
        }
    }

    /// Gives up the database (at `SqlStore::close`, once its connections are closed):
    /// after an append in progress ends, nothing more is written to the journal, and
    /// another opener may recover it.
    pub(crate) async fn let_go(&self) {
        if let Ok(memory) = memory(&self.head) {
            let _order = memory.order().await;
            self.owner
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }

    fn turn(&self) -> Turn {
        *self.turn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a group-committed batch: returns once it is durable in the journal.
    pub(crate) async fn append(&self, entries: &[AuditEntry]) -> StoreResult<Appended> {
        let memory = memory(&self.head)?;
        let _order = memory.order().await;
        self.owned()?;
        if self.head.pending_len() >= self.max_pending.load(Ordering::Relaxed) {
            return Err(self.failed(
                "the audit journal is full: its entries are not reaching the database".into(),
            ));
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
        journal::encode(&rows, &appended.leaves, &mut bytes);
        let mut turn = self.turn();
        // The other file is free once the database holds everything in it. Its next
        // turn writes over it from the start, without emptying it first: records left
        // beyond the new ones (after a crash) are below the stored log's end, and
        // recovery passes over them.
        if let Some(last) = turn.other_last
            && self.head.pending_first().is_none_or(|first| first > last)
        {
            turn.other_last = None;
        }
        if turn.end >= self.switch_at.load(Ordering::Relaxed) && turn.other_last.is_none() {
            turn.other_last = start.next.checked_sub(1);
            turn.current = 1 - turn.current;
            turn.end = 0;
        }
        let file = self.files[turn.current].clone();
        let (at, length, filled) = (turn.end, bytes.len() as u64, turn.filled[turn.current]);
        // The audit log's writer runs on a thread of its own with nothing else to run
        // meanwhile (`coffer-audit-log`): it writes and syncs in place, saving two
        // thread switches a batch. Elsewhere (a worker of the request runtime) the
        // write goes to the blocking pool.
        let (written, extent) = if coffer_core::audit::on_audit_writer_thread() {
            file.append(at, &bytes, filled)
        } else {
            blocking(move || file.append(at, &bytes, filled))
                .await
                .unwrap_or_else(|e| (Err(e), 0))
        };
        turn.filled[turn.current] = extent;
        if written.is_ok() {
            turn.end += length;
        }
        *self.turn.lock().unwrap_or_else(PoisonError::into_inner) = turn;
        match written {
            Ok(()) => {
                self.recovered();
                memory.journaled(
                    Head {
                        next: start.next + entries.len() as u64,
                        prev: link,
                    },
                    rows,
                );
                Ok(appended)
            }
            Err(error) => Err(self.failed(format!(
                "the audit journal {} cannot be written: {error}",
                self.files[turn.current].path().display()
            ))),
        }
    }

    /// Records that the journal cannot take appends (for readiness) and says why.
    fn failed(&self, reason: String) -> StoreError {
        if !self.broken.swap(true, Ordering::AcqRel) {
            tracing::error!(target: "coffer::store", %reason, "the audit journal cannot be written");
        }
        metrics::counter!("kms_store_write_failed_total").increment(1);
        StoreError::Unavailable(reason)
    }

    /// True after an append failed and none succeeded since.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Whether the journal takes writes again (space freed, disk back): a page of zeros
    /// written where the next batch goes and synced. Zeros read as the journal's end,
    /// and the next batch writes over them.
    pub(crate) async fn probe(&self) -> StoreResult<()> {
        let memory = memory(&self.head)?;
        let _order = memory.order().await;
        self.owned()?;
        let turn = self.turn();
        let file = self.files[turn.current].clone();
        let (written, extent) =
            blocking(move || file.append(turn.end, &[0; 4096], turn.filled[turn.current]))
                .await
                .unwrap_or_else(|e| (Err(e), 0));
        self.turn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .filled[turn.current] = extent;
        match written {
            Ok(()) => {
                self.recovered();
                Ok(())
            }
            Err(error) => Err(StoreError::Unavailable(format!(
                "the audit journal cannot be written: {error}"
            ))),
        }
    }

    fn recovered(&self) {
        if self.broken.swap(false, Ordering::AcqRel) {
            tracing::info!(target: "coffer::store", "the audit journal takes writes again");
        }
    }

    /// Writes everything pending into the database and empties the journal (at a
    /// graceful stop, before a snapshot or a restore): a stopped deployment's table
    /// holds the whole log, and a table cut while it is stopped is not made whole again
    /// from the journal, unseen (the checks against the checkpoints find it).
    pub(crate) async fn drain_all(&self) -> StoreResult<()> {
        let memory = memory(&self.head)?;
        self.owned()?;
        loop {
            while self.head.pending_len() > 0 {
                drain_once(&self.writer, &self.head, &self.health).await?;
            }
            let _order = memory.order().await;
            self.owned()?;
            if self.head.pending_len() > 0 {
                continue; // appended meanwhile
            }
            empty(&self.files).await.map_err(|e| {
                StoreError::Unavailable(format!("cannot empty the audit journal: {e}"))
            })?;
            *self.turn.lock().unwrap_or_else(PoisonError::into_inner) = Turn {
                current: 0,
                end: 0,
                other_last: None,
                filled: [0; 2],
            };
            return Ok(());
        }
    }
}

/// The journal's files, and the entries to recover from them.
type Opened = ([JournalFile; 2], Vec<(u64, String)>);

/// A journal that does not continue the stored log (the table lost entries, or was
/// rewritten while stopped): its files kept aside as evidence, renamed with the time,
/// and new ones started. The log's checks then find what is missing and raise the alarm.
fn set_aside(files: [JournalFile; 2], problem: &str) -> std::io::Result<Opened> {
    let paths = files.map(|file| file.path().to_owned());
    let suffix = format!(".unrecovered-{}", crate::now_millis());
    for path in &paths {
        std::fs::rename(path, crate::with_suffix(path, &suffix))?;
    }
    tracing::error!(
        target: "coffer::audit",
        journal = %paths[0].display(),
        kept = %suffix,
        "the audit journal {problem}; its files were kept aside and not written into the log"
    );
    metrics::counter!("kms_audit_integrity_failed_total").increment(1);
    let [first, second] = paths;
    Ok((
        [JournalFile::open(&first)?.0, JournalFile::open(&second)?.0],
        Vec::new(),
    ))
}

fn memory(head: &AuditHead) -> StoreResult<&MemoryHead> {
    match head {
        AuditHead::Memory(memory) => Ok(memory),
        AuditHead::Row => Err(corrupt("the audit journal needs the in-memory head")),
    }
}

/// File work on the blocking pool; a task that panicked is an I/O error.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Empties both files and waits until that is on disk.
async fn empty(files: &[Arc<JournalFile>; 2]) -> std::io::Result<()> {
    let files = files.clone();
    blocking(move || files.iter().try_for_each(|file| file.clear_durably())).await?
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
    let staging = head.begin();
    let rows = head.pending_from(0, DRAIN_MAX);
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
    staging.settle(outcome.is_ok());
    health.settle(pooled, outcome).await
}

#[cfg(test)]
mod tests;
