//! SQLite's WAL checkpoints, run beside the writer instead of inside its commits.
//!
//! In WAL mode a commit appends pages to the log; a checkpoint copies them into the
//! database file and syncs it. Left to SQLite, the commit that takes the log past
//! `wal_autocheckpoint` pages runs the checkpoint itself, so every few hundred commits
//! one audit batch waits for megabytes to be copied and synced while every request
//! behind it waits too. Here a task checkpoints from a reader connection every
//! [`INTERVAL`] (`PASSIVE`: it copies what no reader still needs and never blocks the
//! writer), and the writer's own threshold is only a backstop ([`WRITER_BACKSTOP_PAGES`])
//! should the task fall behind. The log restarts from its beginning at the first commit
//! after a checkpoint that copied everything, as before.

use std::time::Duration;

use sqlx::AnyPool;

/// How often the task checkpoints.
pub(crate) const INTERVAL: Duration = Duration::from_millis(50);

/// Log pages after which a commit checkpoints by itself (SQLite's default is 1,000).
pub(crate) const WRITER_BACKSTOP_PAGES: u32 = 16_384;

/// The checkpoint task; dropping it (with the last clone of the store) stops it.
pub(crate) struct Checkpointer {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts checkpointing the database `readers` open.
pub(crate) fn start(readers: AnyPool) -> Checkpointer {
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if readers.is_closed() {
                return;
            }
            // A failure here loses nothing (the log still holds every page); the
            // writer's backstop checkpoints if it keeps failing.
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_optional(&readers)
                .await
            {
                tracing::debug!(target: "coffer::store", %error, "checkpoint skipped");
            }
        }
    });
    Checkpointer { task }
}

#[cfg(test)]
mod tests {
    use coffer_core::store::AuditStore;
    use coffer_core::testing::fixtures;

    use super::*;

    /// Rows in a copy of the database file alone, without its log: what checkpoints
    /// copied there. `None` for a copy taken while a checkpoint was writing it.
    async fn rows_in_the_file_alone(database: &std::path::Path) -> Option<i64> {
        let copy = tempfile::tempdir().unwrap();
        let file = copy.path().join("copy.db");
        std::fs::copy(database, &file).unwrap();
        let copied = crate::SqlStore::open_sqlite(&file).await.ok()?;
        let rows = sqlx::query_scalar("SELECT COUNT(*) FROM audit_entries")
            .fetch_one(&copied.reader)
            .await
            .ok();
        copied.close().await;
        rows
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_reach_the_database_file_without_a_commit_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("coffer.db");
        let store = crate::SqlStore::open_sqlite(&database).await.unwrap();
        // Far fewer log pages than any commit's own threshold (SQLite's default of
        // 1,000, or the backstop): only the checkpoint task copies these.
        let entry = fixtures::audit_record(None).audit;
        for _ in 0..20 {
            store
                .append_audit(std::slice::from_ref(&entry))
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + INTERVAL * 40;
        loop {
            let rows = rows_in_the_file_alone(&database).await;
            if rows == Some(20) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{rows:?} of 20 committed rows in the database file"
            );
            tokio::time::sleep(INTERVAL).await;
        }
    }
}
