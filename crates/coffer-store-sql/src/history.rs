//! Events (written inside other modules' transactions) and rotation records.

use coffer_core::saga::{Status, Step};
use coffer_core::store::{AllowListChange, Record, RotationFilter, RotationRecord};
use coffer_core::{Event, KeyId, StoreError, StoreResult, TenantId, Timestamp};
use sqlx::{AnyConnection, AnyPool};

use crate::attestation::{joined, split};
use crate::errors::{corrupt, one_row, unavailable};
use crate::multirow;
use crate::rows;

/// Writes a change's history events inside the change's transaction. Its audit entry
/// is appended by the transaction wrapper (`in_transaction!` in `lib.rs`) after the
/// change, last, so the audit head is held as briefly as possible.
pub async fn record_change(conn: &mut AnyConnection, record: &Record) -> StoreResult<()> {
    let events: Vec<&Event> = record.events.iter().collect();
    insert_events(conn, &events).await
}

/// The `events` table and its columns, in the order [`bind_event`] binds them.
const EVENT_COLUMNS: &str = "events (tenant_id, key_id, version, kind, detail, actor, at)";
const EVENT_PARAMS: usize = 7;

/// Appends `events`, in order, inside the caller's transaction; many rows a statement
/// (see `multirow`), and both engines number them (`seq`) in the order of the rows.
pub async fn insert_events(conn: &mut AnyConnection, events: &[&Event]) -> StoreResult<()> {
    for chunk in events.chunks(multirow::rows_per_statement(EVENT_PARAMS)) {
        let sql = multirow::insert(conn, EVENT_COLUMNS, chunk.len(), EVENT_PARAMS);
        let query = chunk
            .iter()
            .fold(sqlx::query(&sql), |query, event| bind_event(query, event));
        query.execute(&mut *conn).await.map_err(unavailable)?;
    }
    Ok(())
}

fn bind_event<'q>(query: multirow::Query<'q>, event: &'q Event) -> multirow::Query<'q> {
    query
        .bind(event.tenant.to_string())
        .bind(event.key.map(|k| k.to_string()))
        .bind(event.version.map(|v| i64::from(v.get())))
        .bind(event.kind.as_str())
        .bind(event.detail.as_str())
        .bind(event.actor.as_deref())
        .bind(event.at.millis())
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
         from_version, to_version, switched, failures, error, paused_after, started_by, \
         allow_list, allow_list_from_policy) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&r.id)
    .bind(r.tenant.to_string())
    .bind(r.key.to_string())
    .bind(r.step.as_str())
    .bind(r.status.as_str())
    .bind(r.started_at.millis())
    .bind(r.updated_at.millis())
    .bind(i64::from(r.from_version))
    .bind(opt_u32(r.to_version))
    .bind(i64::from(r.switched()))
    .bind(i64::from(r.failures))
    .bind(r.error.as_deref())
    .bind(r.paused_after.map(Step::as_str))
    .bind(&r.started_by)
    .bind(r.allow_list.as_ref().map(|a| joined(&a.measurements)))
    .bind(r.allow_list.as_ref().map(|a| i64::from(a.from_policy)))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    // Checked after the insert has claimed the key's one running rotation: no other
    // saga can move the primary from here to the commit, and any that moved it before
    // has committed (or the insert would have waited for it), so this read sees it.
    let primary: Option<i64> =
        sqlx::query_scalar("SELECT number FROM key_versions WHERE key_id = $1 AND is_primary = 1")
            .bind(r.key.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
    if primary != Some(i64::from(r.from_version)) {
        return Err(StoreError::Conflict(
            "the key's primary version is not the one the rotation starts from (it changed)",
        ));
    }
    record_change(conn, record).await
}

/// Compare-and-set: the stored record must still be at `from`'s step, status and
/// pause, so two drivers of one saga cannot both move it, and a driver that loaded the
/// record before a resume changed its pause cannot undo that change (the loser gets
/// `Conflict`). `COALESCE` compares a missing pause the same way on both engines.
pub async fn save_rotation(
    conn: &mut AnyConnection,
    from: &RotationRecord,
    r: &RotationRecord,
    record: &Record,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE rotations SET step = $1, status = $2, updated_at = $3, to_version = $4, \
         switched = $5, failures = $6, error = $7, paused_after = $8 \
         WHERE id = $9 AND tenant_id = $10 AND step = $11 AND status = $12 \
         AND COALESCE(paused_after, '') = $13",
    )
    .bind(r.step.as_str())
    .bind(r.status.as_str())
    .bind(r.updated_at.millis())
    .bind(opt_u32(r.to_version))
    .bind(i64::from(r.switched()))
    .bind(i64::from(r.failures))
    .bind(r.error.as_deref())
    .bind(r.paused_after.map(Step::as_str))
    .bind(&r.id)
    .bind(r.tenant.to_string())
    .bind(from.step.as_str())
    .bind(from.status.as_str())
    .bind(from.paused_after.map_or("", Step::as_str))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    one_row(
        &done,
        StoreError::Conflict("the rotation moved on underneath (another driver)"),
    )?;
    record_change(conn, record).await
}

/// Decodes a row; a step or status this build does not know is `Corrupt`, so nothing
/// past the store sees saga state as text.
fn rotation(row: &sqlx::any::AnyRow) -> StoreResult<RotationRecord> {
    use sqlx::Row;
    let int = |column: &str| row.try_get::<i64, _>(column).map_err(unavailable);
    let text = |column: &str| rows::text(row, column);
    let to_version = row
        .try_get::<Option<i64>, _>("to_version")
        .map_err(unavailable)?;
    let paused_after = row
        .try_get::<Option<String>, _>("paused_after")
        .map_err(unavailable)?
        .map(|step| step.parse::<Step>().map_err(|_| corrupt("paused_after")))
        .transpose()?;
    let allow_list = row
        .try_get::<Option<String>, _>("allow_list")
        .map_err(unavailable)?;
    let from_policy = row
        .try_get::<Option<i64>, _>("allow_list_from_policy")
        .map_err(unavailable)?;
    // The two are written together; one without the other is not a record this store made.
    let allow_list = match (allow_list, from_policy) {
        (None, None) => None,
        (Some(list), Some(from)) => Some(AllowListChange {
            from_policy: u32::try_from(from).map_err(|_| corrupt("allow_list_from_policy"))?,
            measurements: split(&list, "allow_list")?,
        }),
        _ => return Err(corrupt("allow_list")),
    };
    Ok(RotationRecord {
        id: text("id")?,
        tenant: text("tenant_id")?
            .parse()
            .map_err(|_| corrupt("tenant_id"))?,
        key: text("key_id")?.parse().map_err(|_| corrupt("key_id"))?,
        step: text("step")?.parse().map_err(|_| corrupt("step"))?,
        status: text("status")?.parse().map_err(|_| corrupt("status"))?,
        started_at: Timestamp::from_millis(int("started_at")?),
        from_version: u32::try_from(int("from_version")?).map_err(|_| corrupt("from_version"))?,
        to_version: to_version.and_then(|v| u32::try_from(v).ok()),
        failures: u32::try_from(int("failures")?).unwrap_or(u32::MAX),
        error: row
            .try_get::<Option<String>, _>("error")
            .map_err(unavailable)?,
        paused_after,
        started_by: text("started_by")?,
        allow_list,
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

/// A filter left out binds the empty string, which matches every row: one statement
/// for every combination.
pub async fn list_rotations(
    pool: &AnyPool,
    tenant: TenantId,
    filter: RotationFilter,
) -> StoreResult<Vec<RotationRecord>> {
    sqlx::query(
        "SELECT * FROM rotations WHERE tenant_id = $1 AND ($2 = '' OR key_id = $2) \
         AND ($3 = '' OR status = $3) ORDER BY started_at DESC, id",
    )
    .bind(tenant.to_string())
    .bind(filter.key.map(|k| k.to_string()).unwrap_or_default())
    .bind(filter.status.map_or("", Status::as_str))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(rotation)
    .collect()
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
