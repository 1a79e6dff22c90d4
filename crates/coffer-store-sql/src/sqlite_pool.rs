//! SQLite connection pools: the writer's and the readers' per-connection settings.

use std::time::Duration;

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

/// Which SQLite pool a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SqliteRole {
    /// The single writer connection.
    Writer,
    /// The readers.
    Reader,
}

pub(crate) fn sqlite_pool(role: SqliteRole, size: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                // Per-connection settings: full fsync at commit (durable against power
                // loss, not only process crashes), enforced foreign keys, and waiting
                // rather than failing when another connection holds the write lock.
                conn.execute("PRAGMA synchronous=FULL").await?;
                conn.execute("PRAGMA foreign_keys=ON").await?;
                conn.execute("PRAGMA busy_timeout=10000").await?;
                if role == SqliteRole::Writer {
                    // Statement journals (a multi-row INSERT keeps one, to undo itself
                    // alone) in memory rather than in a temporary file: writing that
                    // file took a fifth of the SQLite threads' time in a key-creation
                    // run under `perf` (PERFORMANCE.md, issue 15). Only a rollback
                    // reads them, never crash recovery (the WAL is what makes a commit
                    // durable); each holds the pages one statement changes.
                    conn.execute("PRAGMA temp_store=MEMORY").await?;
                    // Checkpoints run beside the writer (`checkpoint`); this is the
                    // backstop should they fall behind.
                    let backstop = crate::checkpoint::WRITER_BACKSTOP_PAGES;
                    conn.execute(format!("PRAGMA wal_autocheckpoint={backstop}").as_str())
                        .await?;
                }
                Ok(())
            })
        })
}
