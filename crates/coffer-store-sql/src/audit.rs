//! Audit entries and checkpoints.
//!
//! Appends happen inside a caller's transaction ([`append_in`]): the group-committed
//! batches of the hot path (PostgreSQL, and SQLite without a journal) and every state
//! change, which writes its entry beside its rows. [`AuditHead`] allocates the indices
//! (`head`). On SQLite in a file the hot path's batches go to the journal instead
//! (`journal`, `journaled`) and reach the table later, in order.

use coffer_audit::entry::{hex, leaf_bytes};
use coffer_audit::merkle::{Hash, leaf_hash};
use coffer_core::audit::AuditEntry;
use coffer_core::store::Appended;
use coffer_core::{StoreError, StoreResult, Timestamp};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::errors::{corrupt, unavailable};

mod head;
pub(crate) mod journal;
pub(crate) mod journaled;

pub use head::AuditHead;
pub(crate) use head::Head;

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Rows per INSERT statement: one statement (one round trip to the database) per
/// group-committed batch, within both engines' bound-parameter limits.
pub const ROWS_PER_STATEMENT: usize = 500;

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
/// chains each leaf to the previous one, inserts the rows and moves the head. On
/// SQLite the entries the journal holds go in first, so the table has no gap.
pub async fn append_in(
    conn: &mut AnyConnection,
    head: &AuditHead,
    entries: &[AuditEntry],
) -> StoreResult<Appended> {
    head.hold().await;
    let (first, prev) = match head.current()? {
        Some(current) => (current.next, current.prev),
        None => take_row_head(&mut *conn, entries.len()).await?,
    };
    let pending = head.unwritten();
    if let Some((last, _)) = pending.last() {
        insert_rows(conn, &pending).await?;
        head.stage_stored(last + 1);
    }
    let Chained {
        rows,
        appended,
        last: link,
    } = chain(first, prev, entries)?;
    insert_rows(conn, &rows).await?;
    if head.in_memory() {
        head.stage(Head {
            next: first + entries.len() as u64,
            prev: link,
        });
        head.stage_stored(first + entries.len() as u64);
    } else if !entries.is_empty() {
        sqlx::query("UPDATE audit_head SET prev = $1 WHERE id = 1")
            .bind(hex(&link))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    Ok(appended)
}

/// Entries chained into leaves at their indices.
pub(crate) struct Chained {
    /// (index, leaf), in order.
    pub(crate) rows: Vec<(u64, String)>,
    pub(crate) appended: Appended,
    /// The last leaf's hash (the one before them when there are none).
    pub(crate) last: Hash,
}

/// The rows of `entries` from index `first` after the leaf whose hash is `prev`.
pub(crate) fn chain(first: u64, prev: Hash, entries: &[AuditEntry]) -> StoreResult<Chained> {
    let mut link = prev;
    let mut rows = Vec::with_capacity(entries.len());
    let mut leaves = Vec::with_capacity(entries.len());
    for (offset, entry) in entries.iter().enumerate() {
        let index = first + offset as u64;
        let bytes = leaf_bytes(index, &hex(&link), entry);
        link = leaf_hash(&bytes);
        leaves.push(link);
        rows.push((
            index,
            String::from_utf8(bytes).map_err(|_| corrupt("audit leaf"))?,
        ));
    }
    Ok(Chained {
        rows,
        appended: Appended { first, leaves },
        last: link,
    })
}

/// Inserts rows (index, leaf) as they are, a few statements for many rows. Statements
/// hold [`ROWS_PER_STATEMENT`] rows or a power of two fewer, so that a handful of
/// statement texts serve every count and stay in the connection's prepared-statement
/// cache: preparing a statement of hundreds of rows anew costs more than running it.
pub(crate) async fn insert_rows(
    conn: &mut AnyConnection,
    rows: &[(u64, String)],
) -> StoreResult<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let size = statement_rows(rest.len());
        let (chunk, after) = rest.split_at(size);
        rest = after;
        let sql = crate::multirow::insert(conn, "audit_entries (idx, leaf)", chunk.len(), 2);
        let mut query = sqlx::query(&sql);
        for (index, leaf) in chunk {
            query = query.bind(to_i64(*index)).bind(leaf.as_str());
        }
        query.execute(&mut *conn).await.map_err(unavailable)?;
    }
    Ok(())
}

/// Rows in the next statement for `left` rows: all of them up to [`ROWS_PER_STATEMENT`]
/// when that is a power of two or the limit itself, else the largest power of two below.
fn statement_rows(left: usize) -> usize {
    if left >= ROWS_PER_STATEMENT {
        ROWS_PER_STATEMENT
    } else {
        1 << left.ilog2()
    }
}

/// Takes `count` indices from the `audit_head` row (locking it until the transaction
/// ends): the first index and the previous leaf's hash.
async fn take_row_head(conn: &mut AnyConnection, count: usize) -> StoreResult<(u64, Hash)> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
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
    let prev = parse_hash(&head.try_get::<String, _>("prev").map_err(unavailable)?)?;
    Ok((first, prev))
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

#[cfg(test)]
mod tests {
    use super::{ROWS_PER_STATEMENT, statement_rows};

    #[test]
    fn statements_take_the_limit_or_a_power_of_two_so_few_texts_serve_every_count() {
        let mut sizes = std::collections::BTreeSet::new();
        for count in 1..=3 * ROWS_PER_STATEMENT {
            let mut left = count;
            while left > 0 {
                let size = statement_rows(left);
                assert!(size >= 1 && size <= left);
                sizes.insert(size);
                left -= size;
            }
        }
        assert_eq!(sizes.len(), 10, "{sizes:?}"); // 500, 256, 128, …, 1
    }
}
