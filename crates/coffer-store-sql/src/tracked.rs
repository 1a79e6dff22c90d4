//! Tracked data keys.

use coffer_core::store::{Record, Rewrapped, TrackedKey};
use coffer_core::{KeyId, StoreError, StoreResult, TenantId};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::errors::{corrupt, unavailable};

fn tracked(row: &sqlx::any::AnyRow) -> StoreResult<TrackedKey> {
    Ok(TrackedKey {
        tenant: crate::rows::text(row, "tenant_id")?
            .parse()
            .map_err(|_| corrupt("tenant_id"))?,
        track_id: crate::rows::text(row, "track_id")?,
        key: crate::rows::text(row, "key_id")?
            .parse()
            .map_err(|_| corrupt("key_id"))?,
        version: u32::try_from(row.try_get::<i64, _>("version").map_err(unavailable)?)
            .map_err(|_| corrupt("version"))?,
        ciphertext: row
            .try_get::<Vec<u8>, _>("ciphertext")
            .map_err(unavailable)?,
        context: crate::rows::text(row, "context")?,
    })
}

pub async fn insert(conn: &mut AnyConnection, t: &TrackedKey, record: &Record) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tracked_keys (tenant_id, track_id, key_id, version, ciphertext, context, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.tenant.to_string())
    .bind(&t.track_id)
    .bind(t.key.to_string())
    .bind(i64::from(t.version))
    .bind(t.ciphertext.as_slice())
    .bind(&t.context)
    .bind(crate::now_millis())
    .execute(&mut *conn)
    .await
    .map_err(|e| match unavailable(e) {
        StoreError::Conflict(_) => StoreError::Conflict("the tracked data key id is already in use"),
        other => other,
    })?;
    crate::history::record_change(conn, record).await
}

pub async fn get(
    pool: &AnyPool,
    tenant: TenantId,
    track_id: &str,
) -> StoreResult<Option<TrackedKey>> {
    sqlx::query("SELECT * FROM tracked_keys WHERE tenant_id = $1 AND track_id = $2")
        .bind(tenant.to_string())
        .bind(track_id)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(tracked)
        .transpose()
}

pub async fn under(
    pool: &AnyPool,
    tenant: TenantId,
    key: KeyId,
    version: u32,
    limit: u64,
) -> StoreResult<Vec<TrackedKey>> {
    // No ORDER BY: any batch will do (moved rows leave the selection), and sorting
    // every remaining row for each batch made a large rewrap quadratic.
    sqlx::query(
        "SELECT * FROM tracked_keys WHERE tenant_id = $1 AND key_id = $2 AND version = $3 LIMIT $4",
    )
    .bind(tenant.to_string())
    .bind(key.to_string())
    .bind(i64::from(version))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(tracked)
    .collect()
}

pub async fn count(pool: &AnyPool, tenant: TenantId, key: KeyId) -> StoreResult<Vec<(u32, u64)>> {
    let rows = sqlx::query("SELECT version, COUNT(*) AS n FROM tracked_keys WHERE tenant_id = $1 AND key_id = $2 GROUP BY version ORDER BY version")
        .bind(tenant.to_string())
        .bind(key.to_string())
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            let version = row.try_get::<i64, _>("version").map_err(unavailable)?;
            let n = row.try_get::<i64, _>("n").map_err(unavailable)?;
            Ok((
                u32::try_from(version).unwrap_or(0),
                u64::try_from(n).unwrap_or(0),
            ))
        })
        .collect()
}

pub async fn rewrap(
    conn: &mut AnyConnection,
    tenant: TenantId,
    from: u32,
    to: u32,
    items: &[Rewrapped],
) -> StoreResult<u64> {
    let now = crate::now_millis();
    let mut moved = 0;
    for item in items {
        let done = sqlx::query(
            "UPDATE tracked_keys SET version = $1, ciphertext = $2, updated_at = $3 \
             WHERE tenant_id = $4 AND track_id = $5 AND version = $6",
        )
        .bind(i64::from(to))
        .bind(item.ciphertext.as_slice())
        .bind(now)
        .bind(tenant.to_string())
        .bind(&item.track_id)
        .bind(i64::from(from))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
        moved += done.rows_affected();
    }
    Ok(moved)
}
