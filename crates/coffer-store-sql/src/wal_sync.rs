//! Durable commits on SQLite with the fsync off the writer's critical path (pipelined
//! group commit).
//!
//! The writer connection runs `synchronous=NORMAL` in WAL mode: a commit appends its
//! frames to the write-ahead log with `write()` and returns without syncing. Such a
//! commit survives a crash of the process but not a power loss, so no commit is
//! acknowledged yet. After it returns, its transaction takes a ticket here and waits; one
//! thread (`coffer-wal-sync`) runs `fdatasync` on the log for every ticket issued before
//! the sync started (their frames were written before it) and then releases them. While
//! it syncs, the writer connection is already committing the next transactions, whose
//! tickets the next sync covers. The log is sequential, so a sync covers every earlier
//! commit too. SQLite syncs the log and the database file itself around checkpoints
//! (`synchronous=NORMAL`'s contract), which is what makes the database file durable.
//!
//! A failed sync is final: the state of what was written before it is unknown (the
//! kernel may have dropped the dirty pages it could not write), so every waiting and
//! every later commit is refused as unavailable until the process restarts and SQLite
//! recovers the log from what reached the disk.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use coffer_core::{StoreError, StoreResult};
use tokio::sync::watch;

/// How far the log is known durable.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Synced {
    /// Every ticket up to this one.
    Through(u64),
    /// A sync failed; nothing is acknowledged any more.
    Failed(String),
}

#[derive(Debug, Default)]
struct Tickets {
    issued: u64,
    stop: bool,
}

/// What the sync thread shares with the committers.
struct Shared {
    tickets: Mutex<Tickets>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
}

/// Makes `fdatasync` of a file: the real one, or a test's stand-in.
pub(crate) type SyncFile = Box<dyn FnMut(&Path) -> io::Result<()> + Send>;

/// The sync thread's handle; dropping it stops the thread once every issued ticket is
/// synced.
pub struct WalSync {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalSync").finish_non_exhaustive()
    }
}

impl WalSync {
    /// Starts the thread syncing the write-ahead log of the database file `database`.
    pub fn start(database: &Path) -> io::Result<Self> {
        let mut log = database.as_os_str().to_owned();
        log.push("-wal");
        Self::start_with(PathBuf::from(log), fdatasync_log())
    }

    pub(crate) fn start_with(log: PathBuf, mut sync: SyncFile) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            tickets: Mutex::new(Tickets::default()),
            wake: Condvar::new(),
            synced: watch::channel(Synced::Through(0)).0,
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("coffer-wal-sync".into())
            .spawn(move || run(&worker, &log, &mut sync))?;
        Ok(Self { shared })
    }

    /// Waits until everything committed before this call is durable. Call it after the
    /// commit returned and the connection went back to the pool.
    pub async fn durable(&self) -> StoreResult<()> {
        let mut synced = self.shared.synced.subscribe();
        let ticket = {
            let mut tickets = lock(&self.shared.tickets);
            tickets.issued += 1;
            tickets.issued
        };
        self.shared.wake.notify_one();
        let outcome = synced
            .wait_for(|s| !matches!(s, Synced::Through(n) if *n < ticket))
            .await
            .map(|s| s.clone());
        match outcome {
            Ok(Synced::Through(_)) => Ok(()),
            Ok(Synced::Failed(reason)) => Err(StoreError::Unavailable(reason)),
            Err(_) => Err(StoreError::Unavailable(
                "the write-ahead log sync stopped".into(),
            )),
        }
    }
}

impl Drop for WalSync {
    fn drop(&mut self) {
        lock(&self.shared.tickets).stop = true;
        self.shared.wake.notify_one();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(shared: &Shared, log: &Path, sync: &mut SyncFile) {
    let mut through = 0;
    loop {
        let target = {
            let mut tickets = lock(&shared.tickets);
            while tickets.issued == through && !tickets.stop {
                tickets = shared
                    .wake
                    .wait(tickets)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if tickets.issued == through {
                return; // stopped, nothing left to sync
            }
            tickets.issued
        };
        match sync(log) {
            Ok(()) => {
                through = target;
                shared.synced.send_replace(Synced::Through(through));
            }
            Err(error) => {
                tracing::error!(target: "coffer::store", %error, "the write-ahead log could not be synced; refusing writes until restart");
                metrics::counter!("kms_store_write_failed_total").increment(1);
                shared.synced.send_replace(Synced::Failed(format!(
                    "the write-ahead log could not be synced: {error}"
                )));
                return;
            }
        }
    }
}

/// `fdatasync` of the log, through a descriptor kept open and reopened when the file
/// was replaced (SQLite deletes the log when its last connection closes, and a new one
/// starts at the next write).
fn fdatasync_log() -> SyncFile {
    let mut open: Option<(File, u64)> = None;
    Box::new(move |log: &Path| {
        let inode = match std::fs::metadata(log) {
            Ok(meta) => meta.ino(),
            // No log: the last connection checkpointed it into the database file
            // (syncing both) and deleted it; nothing committed is only in a log.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if open.as_ref().is_none_or(|(_, ino)| *ino != inode) {
            // Read-only is enough for fdatasync. No lock is taken through it: SQLite
            // locks the shared-memory file in WAL mode, never the log.
            open = Some((File::open(log)?, inode));
        }
        match &open {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    /// A sync that blocks until the test releases it, counting calls.
    fn gated() -> (
        SyncFile,
        std::sync::mpsc::Sender<io::Result<()>>,
        Arc<AtomicU64>,
    ) {
        let (release, gate) = std::sync::mpsc::channel::<io::Result<()>>();
        let gate = Mutex::new(gate);
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let sync: SyncFile = Box::new(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            lock(&gate)
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("test ended")))
        });
        (sync, release, calls)
    }

    async fn pending<F: std::future::Future>(future: F) -> bool {
        tokio::time::timeout(Duration::from_millis(100), future)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_commit_is_acknowledged_only_after_a_sync_that_started_after_it() {
        let (sync, release, calls) = gated();
        let wal = Arc::new(WalSync::start_with(PathBuf::from("unused"), sync).unwrap());
        // The first commit's sync starts and blocks.
        let first = tokio::spawn({
            let wal = wal.clone();
            async move { wal.durable().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A second commit while it runs is not covered by it.
        let second = tokio::spawn({
            let wal = wal.clone();
            async move { wal.durable().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(Ok(())).unwrap();
        first.await.unwrap().unwrap();
        assert!(!second.is_finished(), "acknowledged before its own sync");
        release.send(Ok(())).unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn commits_waiting_together_share_one_sync() {
        let (sync, release, calls) = gated();
        let wal = Arc::new(WalSync::start_with(PathBuf::from("unused"), sync).unwrap());
        let blocker = tokio::spawn({
            let wal = wal.clone();
            async move { wal.durable().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let wal = wal.clone();
                tokio::spawn(async move { wal.durable().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(Ok(())).unwrap();
        blocker.await.unwrap().unwrap();
        release.send(Ok(())).unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "ten waiters, one sync");
    }

    #[tokio::test]
    async fn a_failed_sync_refuses_its_commits_and_every_later_one() {
        let (sync, release, _calls) = gated();
        let wal = WalSync::start_with(PathBuf::from("unused"), sync).unwrap();
        release.send(Err(io::Error::other("EIO"))).unwrap();
        let refused = wal.durable().await.unwrap_err();
        assert!(
            refused.to_string().contains("could not be synced"),
            "{refused}"
        );
        assert!(
            wal.durable().await.is_err(),
            "a later commit is acknowledged"
        );
        assert!(!pending(wal.durable()).await, "a later commit hangs");
    }

    #[test]
    fn the_real_sync_follows_a_replaced_log_and_skips_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("db-wal");
        let mut sync = fdatasync_log();
        sync(&log).unwrap();
        std::fs::write(&log, b"frames").unwrap();
        sync(&log).unwrap();
        std::fs::remove_file(&log).unwrap();
        std::fs::write(&log, b"new log").unwrap();
        sync(&log).unwrap();
    }
}
