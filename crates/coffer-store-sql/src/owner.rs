//! One process at a time owns a SQLite deployment's database file: the one holding an
//! exclusive `flock` on a file beside it (`<database>-lock`).
//!
//! Owning matters because the owner keeps state outside the database that a second
//! opener would break: the audit log's next index in memory, and the audit journal
//! (`audit::journaled`), whose acknowledged entries reach the table only later. A
//! second opener that recovered that journal would write the owner's entries into the
//! table behind its back and empty the files the owner still appends to; one that
//! appended to the table would take indices the owner already acknowledged. So
//! `SqlStore::connect` takes the lock before it runs a statement, and refuses if
//! another process keeps it.
//!
//! The kernel drops a `flock` when the last descriptor of its open file closes, so a
//! killed owner frees the database at once; nothing is left to clean up. The lock
//! file holds the owner's pid, for the refusal's message only.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{FlockOperation, flock};

/// How long an opener waits for the lock before refusing: a restarted server's
/// predecessor may still be writing its last entries as it stops.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(25);

/// Ownership of one database file; dropping it lets another process open the file.
pub(crate) struct DatabaseOwner {
    _file: File,
}

/// Why the database cannot be owned.
#[derive(Debug)]
pub(crate) enum NotOwned {
    /// Another process held it for all of the patience given.
    Held {
        lock: PathBuf,
        pid: Option<u32>,
    },
    Io {
        lock: PathBuf,
        error: io::Error,
    },
}

impl std::fmt::Display for NotOwned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Held { lock, pid } => {
                write!(f, "the database is in use by another Coffer process")?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                write!(f, ", which holds {}; stop it first", lock.display())
            }
            Self::Io { lock, error } => write!(f, "cannot lock {}: {error}", lock.display()),
        }
    }
}

impl DatabaseOwner {
    /// Takes the lock beside `database`, waiting up to `patience` while another
    /// process holds it. Blocks the calling thread.
    pub(crate) fn acquire(database: &Path, patience: Duration) -> Result<Self, NotOwned> {
        let lock = crate::with_suffix(database, "-lock");
        let io = |error| NotOwned::Io {
            lock: lock.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        let deadline = Instant::now() + patience;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => {
                    std::thread::sleep(POLL);
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    let pid = holder(&mut file);
                    return Err(NotOwned::Held { lock, pid });
                }
                Err(errno) => return Err(io(errno.into())),
            }
        }
        let pid = std::process::id().to_string();
        (|| {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(pid.as_bytes())
        })()
        .map_err(io)?;
        Ok(Self { _file: file })
    }
}

/// Ownership of the SQLite database `file` for an async caller, waiting [`PATIENCE`] at
/// most (on the blocking pool); refused as the store being unavailable.
pub(crate) async fn own(file: PathBuf) -> coffer_core::StoreResult<DatabaseOwner> {
    use coffer_core::StoreError;
    tokio::task::spawn_blocking(move || {
        DatabaseOwner::acquire(&file, PATIENCE)
            .map_err(|refused| StoreError::Unavailable(format!("{}: {refused}", file.display())))
    })
    .await
    .map_err(|e| StoreError::Unavailable(e.to_string()))?
}

/// The pid the holder wrote, if it reads as one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("coffer.db");
        let first = DatabaseOwner::acquire(&database, Duration::ZERO).unwrap();
        // A second open of the file is a second owner, even in this process.
        let refused = DatabaseOwner::acquire(&database, Duration::from_millis(100));
        match refused {
            Err(NotOwned::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("{:?}", other.map(|_| ())),
        }
        drop(first);
        DatabaseOwner::acquire(&database, Duration::ZERO).unwrap();
    }

    #[test]
    fn an_opener_waits_for_an_owner_that_lets_go_within_its_patience() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("coffer.db");
        let first = DatabaseOwner::acquire(&database, Duration::ZERO).unwrap();
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        DatabaseOwner::acquire(&database, Duration::from_secs(5)).unwrap();
        letting_go.join().unwrap();
    }
}
