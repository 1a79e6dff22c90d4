//! The migration journal (seed 003's "migration table"): one SQLite row per sidecar, so a
//! killed run resumes where it stopped and no sidecar is migrated twice.
//!
//! An item moves `wrapped` → `done`, or ends `skipped` or `failed`. `wrapped` holds the
//! new sidecar, committed before the file is written: a run killed between the two
//! writes that file on resume instead of asking Coffer again, so each sidecar is
//! rewritten once. `done` and `skipped` are final; `failed` items are tried again by the
//! next run. The journal holds wrapped keys only, never a plaintext key.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr as _;

use anyhow::{Context as _, bail};
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// The journal of one migration.
pub struct Journal {
    pool: SqlitePool,
}

/// Totals by state, over every run of this journal.
#[derive(Debug, Default, serde::Serialize)]
pub struct Totals {
    pub done: u64,
    pub skipped: u64,
    pub failed: u64,
    pub wrapped: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS run (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('wrapped', 'done', 'skipped', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    new_sidecar TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_state ON items (state);
";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Journal {
    /// Opens (or creates) the journal at `path`, durable on every commit.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .context("cannot create the journal's tables")?;
        Ok(Self { pool })
    }

    /// Records what this journal migrates (input and target); a resume with other
    /// parameters is refused, since its rows would describe another migration.
    pub async fn bind(&self, name: &str, value: &str) -> anyhow::Result<()> {
        let stored: Option<String> = sqlx::query_scalar("SELECT value FROM run WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match stored {
            Some(stored) if stored != value => bail!(
                "this journal belongs to a migration with {name} `{stored}`, not `{value}`; use another --journal"
            ),
            Some(_) => Ok(()),
            None => {
                sqlx::query("INSERT INTO run (name, value) VALUES (?, ?)")
                    .bind(name)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    }

    /// Ids that are final (`done`, `skipped`): never touched again.
    pub async fn finished(&self) -> anyhow::Result<HashSet<String>> {
        let rows = sqlx::query("SELECT id FROM items WHERE state IN ('done', 'skipped')")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|row| row.get::<String, _>(0)).collect())
    }

    /// New sidecars committed but not yet written, by id.
    pub async fn wrapped(&self) -> anyhow::Result<HashMap<String, String>> {
        self.sidecars_in("wrapped").await
    }

    /// New sidecars of finished items, by id (for a JSON-lines output).
    pub async fn migrated(&self) -> anyhow::Result<HashMap<String, String>> {
        self.sidecars_in("done").await
    }

    async fn sidecars_in(&self, state: &str) -> anyhow::Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT id, new_sidecar FROM items WHERE state = ?")
            .bind(state)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<String, _>(0), row.get::<String, _>(1)))
            .collect())
    }

    /// Commits new sidecars (`id`, origin, JSON) as `wrapped`, in one transaction.
    pub async fn record_wrapped(&self, items: &[(String, String, String)]) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for (id, origin, sidecar) in items {
            sqlx::query(
                "INSERT INTO items (id, origin, state, attempts, new_sidecar, updated_at) VALUES (?, ?, 'wrapped', 1, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET state = 'wrapped', attempts = attempts + 1, reason = NULL,
                 new_sidecar = excluded.new_sidecar, updated_at = excluded.updated_at
                 WHERE items.state = 'failed'",
            )
            .bind(id)
            .bind(origin)
            .bind(sidecar)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.context("cannot commit to the journal")?;
        Ok(())
    }

    /// Marks written items `done`, in one transaction.
    pub async fn record_done(&self, ids: &[String]) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query("UPDATE items SET state = 'done', updated_at = ? WHERE id = ? AND state = 'wrapped'")
                .bind(now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.context("cannot commit to the journal")?;
        Ok(())
    }

    /// Records final `skipped` or retryable `failed` outcomes (`id`, origin, reason).
    pub async fn record_outcome(
        &self,
        state: Outcome,
        items: &[(String, String, String)],
    ) -> anyhow::Result<()> {
        let state = match state {
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        };
        let mut tx = self.pool.begin().await?;
        for (id, origin, reason) in items {
            sqlx::query(
                "INSERT INTO items (id, origin, state, attempts, reason, updated_at) VALUES (?, ?, ?, 1, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = attempts + 1,
                 reason = excluded.reason, updated_at = excluded.updated_at
                 WHERE items.state = 'failed'",
            )
            .bind(id)
            .bind(origin)
            .bind(state)
            .bind(reason)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.context("cannot commit to the journal")?;
        Ok(())
    }

    /// Totals by state.
    pub async fn totals(&self) -> anyhow::Result<Totals> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM items GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut totals = Totals::default();
        for row in rows {
            let count = u64::try_from(row.get::<i64, _>(1)).unwrap_or(0);
            match row.get::<String, _>(0).as_str() {
                "done" => totals.done = count,
                "skipped" => totals.skipped = count,
                "failed" => totals.failed = count,
                _ => totals.wrapped = count,
            }
        }
        Ok(totals)
    }

    /// Failed items with their reasons (`id`, reason), by id.
    pub async fn failures(&self) -> anyhow::Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT id, COALESCE(reason, '') FROM items WHERE state = 'failed' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<String, _>(0), row.get::<String, _>(1)))
            .collect())
    }
}

/// A final or retryable outcome without a new sidecar.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Skipped,
    Failed,
}
