//! Audit entries and checkpoints.
//!
//! Appends happen inside a caller's transaction ([`append_in`]): the group-committed
//! batches of the hot path and every state change, which writes its entry beside its
//! rows. The `audit_head` row allocates indices: updating it first takes its row lock
//! until the transaction ends, so replicas append one after another, never interleaved.

use coffer_audit::entry::{ExportedEntry, hex};
use coffer_audit::merkle::{Hash, leaf_hash};
use coffer_core::audit::AuditEntry;
use coffer_core::store::Appended;
use coffer_core::{StoreError, StoreResult, Timestamp};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::errors::{corrupt, unavailable};

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rows per INSERT statement: one statement (one round trip to the database) per
/// group-committed batch, within both engines' bound-parameter limits.
const ROWS_PER_STATEMENT: usize = 500;

fn insert_statement(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO audit_entries (idx, leaf) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
    }
    sql
}

fn parse_hash(text: &str) -> StoreResult<Hash> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(corrupt("audit head hash"));
    }
    let mut hash = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).map_err(|_| corrupt("audit head hash"))?;
        hash[i] = u8::from_str_radix(pair, 16).map_err(|_| corrupt("audit head hash"))?;
    }
    Ok(hash)
}

/// Appends `entries` inside the caller's transaction: takes indices from the head,
/// chains each leaf to the previous one, inserts the rows and moves the head.
pub async fn append_in(conn: &mut AnyConnection, entries: &[AuditEntry]) -> StoreResult<Appended> {
    let count = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    let head = sqlx::query(
        "UPDATE audit_head SET next_idx = next_idx + $1 WHERE id = 1 RETURNING next_idx, prev",
    )
    .bind(count)
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?
    .ok_or_else(|| corrupt("audit head row"))?;
    let next = head.try_get::<i64, _>("next_idx").map_err(unavailable)?;
    let first = u64::try_from(next - count).map_err(|_| corrupt("audit head index"))?;
    let mut link = parse_hash(&head.try_get::<String, _>("prev").map_err(unavailable)?)?;
    let mut rows = Vec::with_capacity(entries.len());
    let mut leaves = Vec::with_capacity(entries.len());
    for (offset, entry) in entries.iter().enumerate() {
        let index = first + offset as u64;
        let bytes = ExportedEntry::new(index, &link, entry.clone()).leaf_bytes();
        link = leaf_hash(&bytes);
        leaves.push(link);
        rows.push((
            index,
            String::from_utf8(bytes).map_err(|_| corrupt("audit leaf"))?,
        ));
    }
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_statement(chunk.len());
        let mut query = sqlx::query(&sql);
        for (index, leaf) in chunk {
            query = query.bind(to_i64(*index)).bind(leaf.as_str());
        }
        query.execute(&mut *conn).await.map_err(unavailable)?;
    }
    if !entries.is_empty() {
        sqlx::query("UPDATE audit_head SET prev = $1 WHERE id = 1")
            .bind(hex(&link))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    Ok(Appended { first, leaves })
}

/// Writes the head row if it is missing (a new database, or one from before the head
/// existed): next index and last leaf hash from the stored entries.
pub async fn ensure_head(pool: &AnyPool) -> StoreResult<()> {
    let present: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_head")
        .fetch_one(pool)
        .await
        .map_err(unavailable)?;
    if present > 0 {
        return Ok(());
    }
    let last = sqlx::query("SELECT idx, leaf FROM audit_entries ORDER BY idx DESC LIMIT 1")
        .fetch_optional(pool)
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
    // Replicas starting together: the first insert wins, the others change nothing.
    sqlx::query(
        "INSERT INTO audit_head (id, next_idx, prev) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(next)
    .bind(hex(&prev))
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(unavailable)
}

pub async fn entries(pool: &AnyPool, from: u64, limit: u64) -> StoreResult<Vec<(u64, String)>> {
    let rows =
        sqlx::query("SELECT idx, leaf FROM audit_entries WHERE idx >= $1 ORDER BY idx LIMIT $2")
            .bind(to_i64(from))
            .bind(to_i64(limit))
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            let index = row.try_get::<i64, _>("idx").map_err(unavailable)?;
            let leaf = row.try_get::<String, _>("leaf").map_err(unavailable)?;
            Ok((u64::try_from(index).unwrap_or(0), leaf))
        })
        .collect()
}

pub async fn save_checkpoint(
    conn: &mut AnyConnection,
    size: u64,
    note: &str,
    at: Timestamp,
) -> StoreResult<()> {
    // A second checkpoint of the same size signs the same root: the first one stays, and
    // a concurrent writer of the same size is not an error.
    let inserted =
        sqlx::query("INSERT INTO audit_checkpoints (size, note, created_at) VALUES ($1, $2, $3)")
            .bind(to_i64(size))
            .bind(note)
            .bind(at.millis())
            .execute(&mut *conn)
            .await;
    match inserted.map_err(unavailable) {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(other) => Err(other),
    }
}

pub async fn checkpoints(pool: &AnyPool) -> StoreResult<Vec<(u64, String)>> {
    let rows = sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            let size = row.try_get::<i64, _>("size").map_err(unavailable)?;
            Ok((
                u64::try_from(size).unwrap_or(0),
                row.try_get::<String, _>("note").map_err(unavailable)?,
            ))
        })
        .collect()
}
