//! Events (written inside other modules' transactions) and rotation records.

use coffer_core::store::RotationRecord;
use coffer_core::{Event, KeyId, StoreError, StoreResult, TenantId, Timestamp};
use sqlx::{AnyConnection, AnyPool};

use crate::errors::unavailable;
use crate::rows;

/// Appends `event` inside the caller's transaction.
pub async fn insert_event(conn: &mut AnyConnection, event: &Event) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (tenant_id, key_id, version, kind, detail, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.tenant.to_string())
    .bind(event.key.map(|k| k.to_string()))
    .bind(event.version.map(|v| i64::from(v.get())))
    .bind(&event.kind)
    .bind(&event.detail)
    .bind(event.actor.as_deref())
    .bind(event.at.millis())
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(unavailable)
}

pub async fn key_events(pool: &AnyPool, tenant: TenantId, key: KeyId) -> StoreResult<Vec<Event>> {
    sqlx::query("SELECT * FROM events WHERE tenant_id = $1 AND key_id = $2 ORDER BY seq")
        .bind(tenant.to_string())
        .bind(key.to_string())
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(rows::event)
        .collect()
}

pub async fn start_rotation(pool: &AnyPool, r: &RotationRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO rotations (id, tenant_id, key_id, step, status, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.id)
    .bind(r.tenant.to_string())
    .bind(r.key.to_string())
    .bind(&r.step)
    .bind(&r.status)
    .bind(r.started_at.millis())
    .bind(r.started_at.millis())
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(unavailable)
}

pub async fn update_rotation(
    pool: &AnyPool,
    id: &str,
    step: &str,
    status: &str,
) -> StoreResult<()> {
    let done =
        sqlx::query("UPDATE rotations SET step = $1, status = $2, updated_at = $3 WHERE id = $4")
            .bind(step)
            .bind(status)
            .bind(crate::now_millis())
            .bind(id)
            .execute(pool)
            .await
            .map_err(unavailable)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound("rotation"))
    }
}

pub async fn get_rotation(
    pool: &AnyPool,
    tenant: TenantId,
    id: &str,
) -> StoreResult<Option<RotationRecord>> {
    let row = sqlx::query("SELECT * FROM rotations WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.to_string())
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    let Some(row) = row else { return Ok(None) };
    let parse = |column: &'static str| -> StoreResult<String> { rows::text(&row, column) };
    Ok(Some(RotationRecord {
        id: parse("id")?,
        tenant: parse("tenant_id")?
            .parse()
            .map_err(|_| crate::errors::corrupt("tenant_id"))?,
        key: parse("key_id")?
            .parse()
            .map_err(|_| crate::errors::corrupt("key_id"))?,
        step: parse("step")?,
        status: parse("status")?,
        started_at: Timestamp::from_millis(
            sqlx::Row::try_get::<i64, _>(&row, "started_at").map_err(unavailable)?,
        ),
    }))
}
