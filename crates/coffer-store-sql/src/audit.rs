//! Audit entries and checkpoints.

use coffer_core::{StoreResult, Timestamp};
use sqlx::{AnyPool, Row};

use crate::errors::unavailable;

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

fn bound<'q>(
    sql: &'q str,
    chunk: &'q [(u64, String)],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let mut query = sqlx::query(sql);
    for (index, leaf) in chunk {
        query = query.bind(to_i64(*index)).bind(leaf.as_str());
    }
    query
}

pub async fn append(pool: &AnyPool, entries: &[(u64, String)]) -> StoreResult<()> {
    if entries.len() <= ROWS_PER_STATEMENT {
        // One statement is atomic on its own: no BEGIN/COMMIT round trips, which on a
        // busy machine cost more than the insert (each is a hop to the driver's thread).
        let sql = insert_statement(entries.len());
        return bound(&sql, entries)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(unavailable);
    }
    let mut tx = pool.begin().await.map_err(unavailable)?;
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_statement(chunk.len());
        bound(&sql, chunk)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)
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
    pool: &AnyPool,
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
            .execute(pool)
            .await;
    match inserted.map_err(unavailable) {
        Ok(_) | Err(coffer_core::StoreError::Conflict(_)) => Ok(()),
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
