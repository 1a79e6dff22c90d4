//! Tenants and their wrapped tenant keys.

use coffer_core::store::Record;
use coffer_core::{StoreError, StoreResult, Tenant, TenantId, TenantState};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::errors::{one_row, unavailable};
use crate::history::record_change;
use crate::rows;

pub async fn create(
    conn: &mut AnyConnection,
    tenant: &Tenant,
    wrapped_kek: &[u8],
    record: &Record,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tenants (id, name, state, created_at, aws_account_id) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant.id.to_string())
    .bind(tenant.name.as_str())
    .bind(tenant.state.as_str())
    .bind(tenant.created_at.millis())
    .bind(tenant.aws_account_id.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query("INSERT INTO tenant_keks (tenant_id, wrapped, updated_at) VALUES ($1, $2, $3)")
        .bind(tenant.id.to_string())
        .bind(wrapped_kek)
        .bind(tenant.created_at.millis())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    record_change(&mut *conn, record).await?;
    Ok(())
}

/// By `id` or `name` (the column is a constant chosen by the caller, never input).
pub async fn get(pool: &AnyPool, column: &'static str, value: &str) -> StoreResult<Option<Tenant>> {
    let sql = match column {
        "name" => "SELECT * FROM tenants WHERE name = $1",
        _ => "SELECT * FROM tenants WHERE id = $1",
    };
    sqlx::query(sql)
        .bind(value)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(rows::tenant)
        .transpose()
}

pub async fn list(pool: &AnyPool) -> StoreResult<Vec<Tenant>> {
    sqlx::query("SELECT * FROM tenants ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(rows::tenant)
        .collect()
}

pub async fn kek(pool: &AnyPool, id: TenantId) -> StoreResult<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT wrapped FROM tenant_keks WHERE tenant_id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    row.map(|r| r.try_get::<Vec<u8>, _>("wrapped").map_err(unavailable))
        .transpose()
}

/// Whether `id` still holds its tenant key (it is not shredded), read inside the
/// caller's transaction: after the tenant's row lock on PostgreSQL (`quota::Tally`),
/// which a shred's update of the row waits for.
pub async fn holds_kek(conn: &mut AnyConnection, id: TenantId) -> StoreResult<bool> {
    let row = sqlx::query("SELECT 1 FROM tenant_keks WHERE tenant_id = $1")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(unavailable)?;
    Ok(row.is_some())
}

pub async fn replace_kek(
    conn: &mut AnyConnection,
    id: TenantId,
    expected: &[u8],
    new: &[u8],
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE tenant_keks SET wrapped = $1, updated_at = $2 WHERE tenant_id = $3 AND wrapped = $4",
    )
    .bind(new)
    .bind(crate::now_millis())
    .bind(id.to_string())
    .bind(expected)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    one_row(
        &done,
        StoreError::Conflict("the tenant key changed underneath"),
    )
}

pub async fn shred(conn: &mut AnyConnection, id: TenantId, record: &Record) -> StoreResult<()> {
    let deleted = sqlx::query("DELETE FROM tenant_keks WHERE tenant_id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    one_row(&deleted, StoreError::NotFound("tenant key"))?;
    sqlx::query("UPDATE tenants SET state = $1 WHERE id = $2")
        .bind(TenantState::Shredded.as_str())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    record_change(&mut *conn, record).await?;
    Ok(())
}
