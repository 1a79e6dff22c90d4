//! The writer's health, for readiness: broken from a failed write until the next commit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use coffer_core::{StoreError, StoreResult};
use sqlx::Any;
use sqlx::pool::PoolConnection;

/// Whether the last write that reached the database committed.
#[derive(Debug, Default)]
pub struct WriterHealth {
    broken: AtomicBool,
    /// Write transactions begun through `in_transaction!` (see `batch::kept`).
    writes: AtomicU64,
}

impl WriterHealth {
    /// True after a write failed on the database's side and none committed since.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Counts a write transaction that has just taken the writer connection.
    pub fn began_write(&self) {
        self.writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Write transactions begun so far through `in_transaction!`.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Records a failure of the database itself and passes the error on.
    pub fn failed(&self, error: StoreError) -> StoreError {
        if let StoreError::Unavailable(reason) = &error {
            if !self.broken.swap(true, Ordering::AcqRel) {
                tracing::error!(target: "coffer::store", %reason, "the store cannot commit writes");
            }
            metrics::counter!("kms_store_write_failed_total").increment(1);
        }
        error
    }

    /// Ends a transaction's use of `conn`. A rule of the schema refusing the change
    /// leaves the connection sound (its transaction was rolled back on drop); a failure
    /// of the database may leave it inside a transaction that will never commit, so it
    /// is closed, and the pool opens a fresh one for the next write.
    pub async fn settle<T>(
        &self,
        conn: PoolConnection<Any>,
        outcome: StoreResult<T>,
    ) -> StoreResult<T> {
        match outcome {
            Ok(value) => {
                if self.broken.swap(false, Ordering::AcqRel) {
                    tracing::info!(target: "coffer::store", "the store commits writes again");
                }
                Ok(value)
            }
            Err(error @ StoreError::Unavailable(_)) => {
                let _ = conn.close().await;
                Err(self.failed(error))
            }
            Err(other) => Err(other),
        }
    }
}
