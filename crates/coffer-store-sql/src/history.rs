//! Events (written inside other modules' transactions) and rotation records.

use coffer_core::store::{Record, RotationRecord};
use coffer_core::{Event, KeyId, StoreError, StoreResult, TenantId, Timestamp};
use sqlx::{AnyConnection, AnyPool};

use crate::errors::{one_row, unavailable};
use crate::rows;

/// Writes a change's record inside the change's transaction: its history event, then
/// its audit entry (last, so the audit head's row lock is held as briefly as possible).
pub async fn record_change(conn: &mut AnyConnection, record: &Record) -> StoreResult<()> {
    for event in &record.events {
        insert_event(&mut *conn, event).await?;
    }
    crate::audit::append_in(conn, std::slice::from_ref(&record.audit))
        .await
        .map(|_| ())
}

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

fn opt_u32(n: Option<u32>) -> Option<i64> {
    n.map(i64::from)
}

pub async fn start_rotation(
    conn: &mut AnyConnection,
    r: &RotationRecord,
    record: &Record,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO rotations (id, tenant_id, key_id, step, status, started_at, updated_at, \
         from_version, to_version, switched, failures, error) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&r.id)
    .bind(r.tenant.to_string())
    .bind(r.key.to_string())
    .bind(&r.step)
    .bind(&r.status)
    .bind(r.started_at.millis())
    .bind(r.updated_at.millis())
    .bind(i64::from(r.from_version))
    .bind(opt_u32(r.to_version))
    .bind(i64::from(r.switched))
    .bind(i64::from(r.failures))
    .bind(r.error.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    record_change(conn, record).await
}

/// Compare-and-set: the stored record must still be at `from`'s step and status, so
/// two drivers of one saga cannot both move it (the loser gets `Conflict`).
pub async fn save_rotation(
    conn: &mut AnyConnection,
    from: &RotationRecord,
    r: &RotationRecord,
    record: &Record,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE rotations SET step = $1, status = $2, updated_at = $3, to_version = $4, \
         switched = $5, failures = $6, error = $7 WHERE id = $8 AND tenant_id = $9 \
         AND step = $10 AND status = $11",
    )
    .bind(&r.step)
    .bind(&r.status)
    .bind(r.updated_at.millis())
    .bind(opt_u32(r.to_version))
    .bind(i64::from(r.switched))
    .bind(i64::from(r.failures))
    .bind(r.error.as_deref())
    .bind(&r.id)
    .bind(r.tenant.to_string())
    .bind(&from.step)
    .bind(&from.status)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    one_row(
        &done,
        StoreError::Conflict("the rotation moved on underneath (another driver)"),
    )?;
    record_change(conn, record).await
}

fn rotation(row: &sqlx::any::AnyRow) -> StoreResult<RotationRecord> {
    use sqlx::Row;
    let int = |column: &str| row.try_get::<i64, _>(column).map_err(unavailable);
    let text = |column: &str| rows::text(row, column);
    let to_version = row
        .try_get::<Option<i64>, _>("to_version")
        .map_err(unavailable)?;
    Ok(RotationRecord {
        id: text("id")?,
        tenant: text("tenant_id")?
            .parse()
            .map_err(|_| crate::errors::corrupt("tenant_id"))?,
        key: text("key_id")?
            .parse()
            .map_err(|_| crate::errors::corrupt("key_id"))?,
        step: text("step")?,
        status: text("status")?,
        started_at: Timestamp::from_millis(int("started_at")?),
        from_version: u32::try_from(int("from_version")?)
            .map_err(|_| crate::errors::corrupt("from_version"))?,
        to_version: to_version.and_then(|v| u32::try_from(v).ok()),
        switched: int("switched")? == 1,
        failures: u32::try_from(int("failures")?).unwrap_or(u32::MAX),
        error: row
            .try_get::<Option<String>, _>("error")
            .map_err(unavailable)?,
        updated_at: Timestamp::from_millis(int("updated_at")?),
    })
}

pub async fn get_rotation(
    pool: &AnyPool,
    tenant: TenantId,
    id: &str,
) -> StoreResult<Option<RotationRecord>> {
    sqlx::query("SELECT * FROM rotations WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant.to_string())
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(rotation)
        .transpose()
}

pub async fn running_rotations(pool: &AnyPool) -> StoreResult<Vec<RotationRecord>> {
    sqlx::query("SELECT * FROM rotations WHERE status = 'running' ORDER BY started_at")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(rotation)
        .collect()
}
