//! Whole-store snapshots and restores (`BackupStore`).
//!
//! [`TABLES`] names every durable table and its columns with their kind, in an order
//! that satisfies the foreign keys; a test compares it with the database's catalog, so
//! a migration that adds a table or a column without adding it here fails. Left out:
//! `leases` (held by running replicas), `coffer_migrations` (recorded as the snapshot's
//! schema instead) and `audit_head` (recomputed from the restored log, as at start).
//!
//! A snapshot is one read transaction: SQLite in WAL mode reads one snapshot from the
//! first SELECT to the end; PostgreSQL runs it `REPEATABLE READ, READ ONLY`. So the
//! audit log, the keys its entries describe and the checkpoints all come from one
//! instant, while writers keep committing.
//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses (and whose expansion
//! names `errors` and `StoreError`, imported here for it).

use async_trait::async_trait;
use coffer_audit::entry::hex;
use coffer_audit::merkle::leaf_hash;
use coffer_core::backup::{BackupStore, Cell, NOT_EMPTY, Snapshot, Table};
use coffer_core::store::AuditStore;
use coffer_core::{StoreError, StoreResult};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Executor, Row};

use crate::errors::{corrupt, unavailable};
use crate::{Backend, SqlStore, errors};

#[async_trait]
impl BackupStore for SqlStore {
    async fn snapshot(&self) -> StoreResult<Snapshot> {
        // The journal's entries are the log's: into the table before it is read.
        self.settle_audit().await?;
        let mut conn = self.reader.acquire().await.map_err(unavailable)?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(unavailable)?;
        if self.backend == Backend::Postgres {
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await
                .map_err(unavailable)?;
        }
        let snapshot = read_all(&mut tx).await?;
        // Read only: nothing to commit; ending it releases the snapshot.
        tx.rollback().await.map_err(unavailable)?;
        Ok(snapshot)
    }

    async fn restore(&self, snapshot: &Snapshot) -> StoreResult<()> {
        let backend = self.backend;
        self.settle_audit().await?;
        in_transaction!(self, |conn| write_all(conn, backend, snapshot))?;
        // SQLite keeps the audit head in memory: read it from the restored log.
        self.head.load(&self.writer).await
    }
}

/// How a column is read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// BIGINT / INTEGER.
    Int,
    /// TEXT.
    Text,
    /// BLOB / BYTEA.
    Blob,
}

use Kind::{Blob, Int, Text};

/// Every durable table and its columns, parents before children.
pub const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "tenants",
        &[
            ("id", Text),
            ("name", Text),
            ("state", Text),
            ("created_at", Int),
            ("aws_account_id", Text),
        ],
    ),
    (
        "tenant_keks",
        &[("tenant_id", Text), ("wrapped", Blob), ("updated_at", Int)],
    ),
    (
        "tenant_pq_policy",
        &[
            ("tenant_id", Text),
            ("pq_verify_mode", Text),
            ("updated_at", Int),
            ("pq_produce_hybrid", Int),
            ("pq_rollout_percent", Int),
        ],
    ),
    (
        "keys",
        &[
            ("id", Text),
            ("tenant_id", Text),
            ("spec", Text),
            ("purpose", Text),
            ("state", Text),
            ("deletion_due", Int),
            ("labels", Text),
            ("registered_purposes", Text),
            ("rotation_period", Int),
            ("rotation_before_expiry", Int),
            ("rotation_overlap", Int),
            ("validity", Int),
            ("created_at", Int),
            ("protection", Text),
            ("state_tag", Blob),
        ],
    ),
    (
        "key_tags",
        &[
            ("key_id", Text),
            ("tenant_id", Text),
            ("tag_key", Text),
            ("tag_value", Text),
        ],
    ),
    (
        "key_policies",
        &[
            ("key_id", Text),
            ("tenant_id", Text),
            ("document", Text),
            ("rules", Text),
        ],
    ),
    (
        "key_grants",
        &[
            ("grant_id", Text),
            ("tenant_id", Text),
            ("key_id", Text),
            ("grantee", Text),
            ("retiring", Text),
            ("operations", Text),
            ("name", Text),
            ("created_at", Int),
        ],
    ),
    (
        "key_versions",
        &[
            ("key_id", Text),
            ("number", Int),
            ("state", Text),
            ("is_primary", Int),
            ("not_before", Int),
            ("not_after", Int),
            ("public_key", Blob),
            ("wrapped_material", Blob),
            ("created_at", Int),
            ("cert_chain", Text),
            ("hsm_location", Text),
            ("state_tag", Blob),
        ],
    ),
    (
        "aliases",
        &[("tenant_id", Text), ("alias", Text), ("key_id", Text)],
    ),
    (
        "events",
        &[
            ("seq", Int),
            ("tenant_id", Text),
            ("key_id", Text),
            ("version", Int),
            ("kind", Text),
            ("detail", Text),
            ("actor", Text),
            ("at", Int),
        ],
    ),
    (
        "rotations",
        &[
            ("id", Text),
            ("tenant_id", Text),
            ("key_id", Text),
            ("step", Text),
            ("status", Text),
            ("started_at", Int),
            ("updated_at", Int),
            ("from_version", Int),
            ("to_version", Int),
            ("switched", Int),
            ("failures", Int),
            ("error", Text),
            ("paused_after", Text),
            ("started_by", Text),
            ("allow_list", Text),
            ("allow_list_from_policy", Int),
        ],
    ),
    (
        "tracked_keys",
        &[
            ("tenant_id", Text),
            ("track_id", Text),
            ("key_id", Text),
            ("version", Int),
            ("ciphertext", Blob),
            ("context", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "tokens",
        &[
            ("id", Text),
            ("kind", Text),
            ("tenant_id", Text),
            ("description", Text),
            ("created_at", Int),
            ("revoked_at", Int),
            ("grant_tag", Blob),
        ],
    ),
    (
        "server_secrets",
        &[("name", Text), ("wrapped", Blob), ("created_at", Int)],
    ),
    ("audit_entries", &[("idx", Int), ("leaf", Text)]),
    (
        "audit_checkpoints",
        &[("size", Int), ("note", Text), ("created_at", Int)],
    ),
    (
        "version_use",
        &[
            ("tenant_id", Text),
            ("key_id", Text),
            ("version", Int),
            ("principal", Text),
            ("kind", Text),
            ("first_seen", Int),
            ("last_seen", Int),
            ("uses", Int),
        ],
    ),
    (
        "key_attestation_policies",
        &[
            ("tenant_id", Text),
            ("key_id", Text),
            ("version", Int),
            ("operations", Text),
            ("measurements", Text),
            ("created_at", Int),
        ],
    ),
];

/// Tables of the schema a snapshot leaves out on purpose.
pub const NOT_BACKED_UP: &[&str] = &["leases", "coffer_migrations", "audit_head"];

/// Reads every table of [`TABLES`] on `conn`, inside a read transaction the caller
/// opened.
pub async fn read_all(conn: &mut AnyConnection) -> StoreResult<Snapshot> {
    let schema: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM coffer_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for (name, columns) in TABLES {
        let list: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        // Ordered by every column, so two snapshots of one state are equal.
        let sql = format!(
            "SELECT {cols} FROM {name} ORDER BY {cols}",
            cols = list.join(", ")
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
        let rows = rows
            .iter()
            .map(|row| decode(row, columns))
            .collect::<StoreResult<Vec<_>>>()?;
        tables.push(Table {
            name: (*name).to_owned(),
            columns: list.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        });
    }
    Ok(Snapshot { schema, tables })
}

fn decode(row: &AnyRow, columns: &[(&str, Kind)]) -> StoreResult<Vec<Cell>> {
    columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            let cell = match kind {
                Int => row.try_get::<Option<i64>, _>(i).map(|v| v.map(Cell::Int)),
                Text => row
                    .try_get::<Option<String>, _>(i)
                    .map(|v| v.map(Cell::Text)),
                Blob => row
                    .try_get::<Option<Vec<u8>>, _>(i)
                    .map(|v| v.map(Cell::Blob)),
            };
            cell.map(|c| c.unwrap_or(Cell::Null)).map_err(unavailable)
        })
        .collect()
}

/// Writes `snapshot` on `conn` (inside the caller's write transaction): refuses a
/// store that holds any row, or a snapshot this schema cannot hold; then inserts every
/// row and rebuilds the audit head from the restored log.
pub async fn write_all(
    conn: &mut AnyConnection,
    backend: Backend,
    snapshot: &Snapshot,
) -> StoreResult<()> {
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM coffer_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
    if let Some(newer) = snapshot.schema.iter().find(|v| !applied.contains(v)) {
        return Err(StoreError::Corrupt(format!(
            "the backup was made by a newer Coffer: its schema has migration {newer}, which this one does not know"
        )));
    }
    for (name, _) in TABLES {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {name}"))
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        if rows > 0 {
            tracing::warn!(target: "coffer::backup", table = name, rows, "restore refused: the store is not empty");
            return Err(NOT_EMPTY);
        }
    }
    // Parents first, whatever order the snapshot lists them in.
    for (name, known) in TABLES {
        if let Some(table) = snapshot.table(name) {
            insert_table(conn, table, known).await?;
        }
    }
    if let Some(unknown) = snapshot
        .tables
        .iter()
        .find(|t| !TABLES.iter().any(|(name, _)| *name == t.name))
    {
        return Err(StoreError::Corrupt(format!(
            "the backup has a table `{}` this Coffer's schema does not have",
            unknown.name
        )));
    }
    if backend == Backend::Postgres {
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('events', 'seq'), \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM events), false)",
        )
        .await
        .map_err(unavailable)?;
    }
    rebuild_head(conn).await
}

async fn insert_table(
    conn: &mut AnyConnection,
    table: &Table,
    known: &[(&str, Kind)],
) -> StoreResult<()> {
    let kinds = table
        .columns
        .iter()
        .map(|column| {
            known
                .iter()
                .find(|(name, _)| name == column)
                .map(|(_, kind)| *kind)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "the backup's table {} has a column `{column}` this Coffer's schema does not have",
                        table.name
                    ))
                })
        })
        .collect::<StoreResult<Vec<Kind>>>()?;
    let placeholders: Vec<String> = (1..=kinds.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.columns.join(", "),
        placeholders.join(", ")
    );
    for row in &table.rows {
        let mut query = sqlx::query(&sql);
        for (cell, kind) in row.iter().zip(&kinds) {
            query = match (kind, cell) {
                (Int, Cell::Int(n)) => query.bind(*n),
                (Int, Cell::Null) => query.bind(None::<i64>),
                (Text, Cell::Text(s)) => query.bind(s.clone()),
                (Text, Cell::Null) => query.bind(None::<String>),
                (Blob, Cell::Blob(b)) => query.bind(b.clone()),
                (Blob, Cell::Null) => query.bind(None::<Vec<u8>>),
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "the backup's table {} has a value of the wrong type",
                        table.name
                    )));
                }
            };
        }
        query.execute(&mut *conn).await.map_err(unavailable)?;
    }
    Ok(())
}

/// The audit head row from the restored log: the next index and the last leaf's hash.
async fn rebuild_head(conn: &mut AnyConnection) -> StoreResult<()> {
    let last = sqlx::query("SELECT idx, leaf FROM audit_entries ORDER BY idx DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
    let (next, prev) = match last {
        None => (0, [0u8; 32]),
        Some(row) => {
            let index = row.try_get::<i64, _>("idx").map_err(unavailable)?;
            let leaf = row.try_get::<String, _>("leaf").map_err(unavailable)?;
            (index + 1, leaf_hash(leaf.as_bytes()))
        }
    };
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_entries")
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    if count != next {
        return Err(corrupt("the backup's audit log has gaps in its indices"));
    }
    conn.execute("DELETE FROM audit_head")
        .await
        .map_err(unavailable)?;
    sqlx::query("INSERT INTO audit_head (id, next_idx, prev) VALUES (1, $1, $2)")
        .bind(next)
        .bind(hex(&prev))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}
