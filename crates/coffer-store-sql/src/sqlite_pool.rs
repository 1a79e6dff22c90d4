//! SQLite connection pools: the writer's and the readers' per-connection settings, and
//! the database file the log sync (`wal_sync`) works on.

use std::time::Duration;

use coffer_core::{StoreError, StoreResult};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor, Row};

use crate::errors::unavailable;

/// Which SQLite pool a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqliteRole {
    /// The single writer connection.
    Writer,
    /// The readers.
    Reader,
}

/// How a SQLite connection's commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// An fsync inside every commit (durable against power loss when it returns).
    Full,
    /// No fsync in the commit: the writer's log sync makes it durable before it counts.
    Normal,
}

/// The file of the `main` database a SQLite pool opened (its log is beside it).
pub(crate) async fn database_file(pool: &AnyPool) -> StoreResult<std::path::PathBuf> {
    let rows = sqlx::query("PRAGMA database_list")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.iter()
        .find(|row| row.try_get::<String, _>(1).is_ok_and(|name| name == "main"))
        .and_then(|row| row.try_get::<String, _>(2).ok())
        .filter(|file| !file.is_empty())
        .map(std::path::PathBuf::from)
        .ok_or_else(|| StoreError::Unavailable("the SQLite database has no file to sync".into()))
}

pub(crate) fn sqlite_pool(role: SqliteRole, size: u32, sync: Durability) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // Per-connection settings: how commits reach the disk (see `Durability`),
                // enforced foreign keys, and waiting rather than failing when another
                // connection holds the write lock.
                conn.execute(match sync {
                    Durability::Full => "PRAGMA synchronous=FULL",
                    Durability::Normal => "PRAGMA synchronous=NORMAL",
                })
                .await?;
                conn.execute("PRAGMA foreign_keys=ON").await?;
                conn.execute("PRAGMA busy_timeout=10000").await?;
                if role == SqliteRole::Writer {
                    // Statement journals (a multi-row INSERT keeps one, to undo itself
                    // alone) in memory rather than in a temporary file: writing that
                    // file took a fifth of the SQLite threads' time in a key-creation
                    // run under `perf` (PERFORMANCE.md, issue 15).
                    // Only a rollback reads them, never crash recovery (the WAL is
                    // what makes a commit durable); each holds the pages one
                    // statement changes.
                    conn.execute("PRAGMA temp_store=MEMORY").await?;
                }
                Ok(())
            })
        })
}
