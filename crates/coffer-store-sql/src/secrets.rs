//! Token records and wrapped server secrets.

use coffer_core::store::Record;
use coffer_core::token::{TokenId, TokenKind, TokenRecord};
use coffer_core::{StoreError, StoreResult, Timestamp};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::errors::{corrupt, one_row, unavailable};
use crate::history::record_change;
use crate::rows;

pub async fn put(conn: &mut AnyConnection, name: &str, wrapped: &[u8]) -> StoreResult<()> {
    sqlx::query("INSERT INTO server_secrets (name, wrapped, created_at) VALUES ($1, $2, $3)")
        .bind(name)
        .bind(wrapped)
        .bind(crate::now_millis())
        .execute(&mut *conn)
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

pub async fn insert_token(
    conn: &mut AnyConnection,
    token: &TokenRecord,
    record: &Record,
) -> StoreResult<()> {
    let (kind, tenant) = match token.kind {
        TokenKind::Admin => ("admin", None),
        TokenKind::Tenant(t) => ("tenant", Some(t.to_string())),
    };
    sqlx::query(
        "INSERT INTO tokens (id, kind, tenant_id, description, created_at, revoked_at, \
         grant_tag) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token.id.to_string())
    .bind(kind)
    .bind(tenant)
    .bind(&token.description)
    .bind(token.created_at.millis())
    .bind(token.revoked_at.map(|t| t.millis()))
    .bind(token.grant_tag.map(|tag| tag.to_vec()))
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    record_change(conn, record).await
}

pub async fn revoke_token(
    conn: &mut AnyConnection,
    id: TokenId,
    at: Timestamp,
    tag: &[u8; 32],
    record: &Record,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE tokens SET revoked_at = $1, grant_tag = $2 WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(at.millis())
    .bind(tag.to_vec())
    .bind(id.to_string())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    one_row(&done, StoreError::NotFound("token"))?;
    record_change(conn, record).await
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
                grant_tag: rows::opt_bytes(row, "grant_tag")?
                    .map(|tag| tag.try_into().map_err(|_| corrupt("token grant tag")))
                    .transpose()?,
            })
        })
        .collect()
}

/// Sets the grant tag of each unbound record named (records bound meanwhile keep theirs).
pub async fn bind_grants(
    conn: &mut AnyConnection,
    tags: &[(TokenId, [u8; 32])],
) -> StoreResult<()> {
    for (id, tag) in tags {
        sqlx::query("UPDATE tokens SET grant_tag = $1 WHERE id = $2 AND grant_tag IS NULL")
            .bind(tag.to_vec())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

pub async fn bind_revocations(
    conn: &mut AnyConnection,
    tags: &[(TokenId, [u8; 32])],
) -> StoreResult<()> {
    for (id, tag) in tags {
        sqlx::query("UPDATE tokens SET grant_tag = $1 WHERE id = $2 AND revoked_at IS NOT NULL")
            .bind(tag.to_vec())
            .bind(id.to_string())
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    Ok(())
}

pub async fn try_lease(
    conn: &mut AnyConnection,
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
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() == 1)
}

/// A write that changes nothing anyone reads, to learn whether the writer commits again.
pub async fn probe(conn: &mut AnyConnection, now_millis: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO leases (name, holder, expires_at) VALUES ('coffer/store-probe', '-', $1) \
         ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at",
    )
    .bind(now_millis)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(unavailable)
}
