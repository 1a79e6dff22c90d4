//! Token records and wrapped server secrets.

use coffer_core::token::{TokenId, TokenKind, TokenRecord};
use coffer_core::{StoreError, StoreResult, Timestamp};
use sqlx::{AnyPool, Row};

use crate::errors::{corrupt, one_row, unavailable};
use crate::rows;

pub async fn put(pool: &AnyPool, name: &str, wrapped: &[u8]) -> StoreResult<()> {
    sqlx::query("INSERT INTO server_secrets (name, wrapped, created_at) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(wrapped)
        .bind(crate::now_millis())
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
}

pub async fn get(pool: &AnyPool, name: &str) -> StoreResult<Option<Vec<u8>>> {
    let row = sqlx::query("SELECT wrapped FROM server_secrets WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    row.map(|r| r.try_get::<Vec<u8>, _>("wrapped").map_err(unavailable))
        .transpose()
}

pub async fn insert_token(pool: &AnyPool, record: &TokenRecord) -> StoreResult<()> {
    let (kind, tenant) = match record.kind {
        TokenKind::Admin => ("admin", None),
        TokenKind::Tenant(t) => ("tenant", Some(t.to_string())),
    };
    sqlx::query(
        "INSERT INTO tokens (id, kind, tenant_id, description, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(record.id.to_string())
    .bind(kind)
    .bind(tenant)
    .bind(&record.description)
    .bind(record.created_at.millis())
    .bind(record.revoked_at.map(|t| t.millis()))
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(unavailable)
}

pub async fn revoke_token(pool: &AnyPool, id: TokenId, at: Timestamp) -> StoreResult<()> {
    let done =
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at.millis())
            .bind(id.to_string())
            .execute(pool)
            .await
            .map_err(unavailable)?;
    one_row(&done, StoreError::NotFound("token"))
}

pub async fn list_tokens(pool: &AnyPool) -> StoreResult<Vec<TokenRecord>> {
    let rows = sqlx::query("SELECT * FROM tokens ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            let id: TokenId = rows::text(row, "id")?
                .parse()
                .map_err(|_| corrupt("token id"))?;
            let tenant = row
                .try_get::<Option<String>, _>("tenant_id")
                .map_err(unavailable)?;
            let kind = match (rows::text(row, "kind")?.as_str(), tenant) {
                ("admin", None) => TokenKind::Admin,
                ("tenant", Some(t)) => {
                    TokenKind::Tenant(t.parse().map_err(|_| corrupt("tenant_id"))?)
                }
                _ => return Err(corrupt("token kind")),
            };
            Ok(TokenRecord {
                id,
                kind,
                description: rows::text(row, "description")?,
                created_at: Timestamp::from_millis(
                    row.try_get::<i64, _>("created_at").map_err(unavailable)?,
                ),
                revoked_at: row
                    .try_get::<Option<i64>, _>("revoked_at")
                    .map_err(unavailable)?
                    .map(Timestamp::from_millis),
            })
        })
        .collect()
}

pub async fn try_lease(
    pool: &AnyPool,
    name: &str,
    holder: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> StoreResult<bool> {
    // One statement: insert, or take over when expired or already ours; a row is
    // written only when this holder ends up holding the lease.
    let done = sqlx::query(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
         WHERE leases.expires_at < $4 OR leases.holder = excluded.holder",
    )
    .bind(name)
    .bind(holder)
    .bind(expires_at.millis())
    .bind(now.millis())
    .execute(pool)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}
