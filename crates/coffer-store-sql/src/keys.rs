//! Keys and aliases.

use coffer_core::quota::Limits;
use coffer_core::store::Record;
use coffer_core::{Alias, Event, Key, KeyId, KeyVersion, StoreError, StoreResult, TenantId};
use sqlx::{AnyConnection, AnyPool, Row};

use crate::errors::{corrupt, one_row, unavailable};
use crate::history::{insert_events, record_change};
use crate::multirow;
use crate::quota;
use crate::rows::{self, duration_secs};
use crate::versions::insert_versions;

/// One key to create: the key, its first version, and its record (the events written
/// here; the audit entry is appended by the caller, after every row of its group).
#[derive(Clone, Copy)]
pub struct Creation<'a> {
    pub key: &'a Key,
    pub first: &'a KeyVersion,
    pub record: &'a Record,
}

/// Writes new keys, their first versions, their aliases and their events: one
/// statement per table for all of them (see `multirow`), so a group of creations costs
/// four round trips whatever its size. Any refusal (an alias taken) refuses all of
/// them: the caller then writes them one at a time to find which (`batch`). Their
/// quotas were checked by the caller under the tenant's lock (`quota::Tally`).
pub async fn create_all(conn: &mut AnyConnection, creations: &[Creation<'_>]) -> StoreResult<()> {
    let keys: Vec<&Key> = creations.iter().map(|c| c.key).collect();
    insert_keys(&mut *conn, &keys).await?;
    let firsts: Vec<&KeyVersion> = creations.iter().map(|c| c.first).collect();
    insert_versions(&mut *conn, &firsts).await?;
    let aliases: Vec<(TenantId, KeyId, &Alias)> = creations
        .iter()
        .flat_map(|c| {
            let key = c.key;
            key.aliases.iter().map(|alias| (key.tenant, key.id, alias))
        })
        .collect();
    insert_aliases(&mut *conn, &aliases).await?;
    let events: Vec<&Event> = creations
        .iter()
        .flat_map(|c| c.record.events.iter())
        .collect();
    insert_events(conn, &events).await
}

/// Writes one new key (see [`create_all`]).
pub async fn create(
    conn: &mut AnyConnection,
    key: &Key,
    first: &KeyVersion,
    record: &Record,
) -> StoreResult<()> {
    create_all(conn, &[Creation { key, first, record }]).await
}

/// The `keys` table and its columns, in the order [`bind_key`] binds them.
const KEY_COLUMNS: &str = "keys (id, tenant_id, spec, purpose, state, deletion_due, labels, \
     registered_purposes, rotation_period, rotation_before_expiry, rotation_overlap, \
     validity, created_at, protection, state_tag)";
const KEY_PARAMS: usize = 15;

async fn insert_keys(conn: &mut AnyConnection, keys: &[&Key]) -> StoreResult<()> {
    for chunk in keys.chunks(multirow::rows_per_statement(KEY_PARAMS)) {
        let sql = multirow::insert(conn, KEY_COLUMNS, chunk.len(), KEY_PARAMS);
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = bind_key(query, key)?;
        }
        query.execute(&mut *conn).await.map_err(unavailable)?;
    }
    Ok(())
}

fn bind_key<'q>(query: multirow::Query<'q>, key: &'q Key) -> StoreResult<multirow::Query<'q>> {
    let labels = serde_json::to_string(&key.labels).map_err(|_| corrupt("labels"))?;
    let purposes = serde_json::to_string(&key.registered_purposes)
        .map_err(|_| corrupt("registered_purposes"))?;
    Ok(query
        .bind(key.id.to_string())
        .bind(key.tenant.to_string())
        .bind(key.spec.as_str())
        .bind(key.purpose.as_str())
        .bind(key.state.as_str())
        .bind(key.deletion_due.map(|t| t.millis()))
        .bind(labels)
        .bind(purposes)
        .bind(duration_secs(key.rotation.period))
        .bind(duration_secs(key.rotation.before_expiry))
        .bind(duration_secs(key.rotation.overlap))
        .bind(duration_secs(key.validity))
        .bind(key.created_at.millis())
        .bind(key.protection.as_str())
        .bind(key.state_tag.map(|tag| tag.to_vec())))
}

const ALIAS_COLUMNS: &str = "aliases (tenant_id, alias, key_id)";
const ALIAS_PARAMS: usize = 3;

async fn insert_alias(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
    alias: &Alias,
) -> StoreResult<()> {
    insert_aliases(conn, &[(tenant, key, alias)]).await
}

/// Writes `(tenant, key, alias)` rows; a taken alias is `Conflict` (for the whole
/// statement).
async fn insert_aliases(
    conn: &mut AnyConnection,
    aliases: &[(TenantId, KeyId, &Alias)],
) -> StoreResult<()> {
    for chunk in aliases.chunks(multirow::rows_per_statement(ALIAS_PARAMS)) {
        let sql = multirow::insert(conn, ALIAS_COLUMNS, chunk.len(), ALIAS_PARAMS);
        let query = chunk
            .iter()
            .fold(sqlx::query(&sql), |query, (tenant, key, alias)| {
                query
                    .bind(tenant.to_string())
                    .bind(alias.as_str())
                    .bind(key.to_string())
            });
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| match unavailable(e) {
                // Both engines' messages name the table, which is what `errors` matches.
                StoreError::Conflict(_) => {
                    StoreError::Conflict("the alias is already in use in this tenant")
                }
                other => other,
            })?;
    }
    Ok(())
}

async fn attach_aliases(pool: &AnyPool, tenant: TenantId, keys: &mut [Key]) -> StoreResult<()> {
    let rows = sqlx::query("SELECT alias, key_id FROM aliases WHERE tenant_id = $1")
        .bind(tenant.to_string())
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    for row in rows {
        let key_id: KeyId = rows::text(&row, "key_id")?
            .parse()
            .map_err(|_| corrupt("key_id"))?;
        let alias: Alias = rows::text(&row, "alias")?
            .parse()
            .map_err(|_| corrupt("alias"))?;
        if let Some(key) = keys.iter_mut().find(|k| k.id == key_id) {
            key.aliases.insert(alias);
        }
    }
    Ok(())
}

pub async fn get(pool: &AnyPool, tenant: TenantId, id: KeyId) -> StoreResult<Option<Key>> {
    let row = sqlx::query("SELECT * FROM keys WHERE id = $1 AND tenant_id = $2")
        .bind(id.to_string())
        .bind(tenant.to_string())
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    let Some(row) = row else { return Ok(None) };
    let mut key = rows::key(&row)?;
    let aliases = sqlx::query("SELECT alias FROM aliases WHERE tenant_id = $1 AND key_id = $2")
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    for alias in aliases {
        key.aliases.insert(
            rows::text(&alias, "alias")?
                .parse()
                .map_err(|_| corrupt("alias"))?,
        );
    }
    Ok(Some(key))
}

pub async fn resolve_alias(
    pool: &AnyPool,
    tenant: TenantId,
    alias: &Alias,
) -> StoreResult<Option<KeyId>> {
    let row = sqlx::query("SELECT key_id FROM aliases WHERE tenant_id = $1 AND alias = $2")
        .bind(tenant.to_string())
        .bind(alias.as_str())
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    row.map(|r| {
        r.try_get::<String, _>("key_id")
            .map_err(unavailable)?
            .parse()
            .map_err(|_| corrupt("key_id"))
    })
    .transpose()
}

pub async fn list(pool: &AnyPool, tenant: TenantId) -> StoreResult<Vec<Key>> {
    let mut keys = sqlx::query("SELECT * FROM keys WHERE tenant_id = $1 ORDER BY created_at, id")
        .bind(tenant.to_string())
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(rows::key)
        .collect::<StoreResult<Vec<_>>>()?;
    attach_aliases(pool, tenant, &mut keys).await?;
    Ok(keys)
}

pub async fn require_key_in_tenant(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
) -> StoreResult<()> {
    let found = sqlx::query("SELECT id FROM keys WHERE id = $1 AND tenant_id = $2")
        .bind(key.to_string())
        .bind(tenant.to_string())
        .fetch_optional(conn)
        .await
        .map_err(unavailable)?;
    found.map(|_| ()).ok_or(StoreError::NotFound("key"))
}

pub async fn add_alias(
    conn: &mut AnyConnection,
    limits: &Limits,
    tenant: TenantId,
    key: KeyId,
    alias: &Alias,
    record: &Record,
) -> StoreResult<()> {
    require_key_in_tenant(&mut *conn, tenant, key).await?;
    quota::admit_aliases(&mut *conn, limits, tenant, 1).await?;
    insert_alias(&mut *conn, tenant, key, alias).await?;
    record_change(&mut *conn, record).await?;
    Ok(())
}

pub async fn remove_alias(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
    alias: &Alias,
    record: &Record,
) -> StoreResult<()> {
    let done =
        sqlx::query("DELETE FROM aliases WHERE tenant_id = $1 AND alias = $2 AND key_id = $3")
            .bind(tenant.to_string())
            .bind(alias.as_str())
            .bind(key.to_string())
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    one_row(&done, StoreError::NotFound("alias"))?;
    record_change(&mut *conn, record).await?;
    Ok(())
}

pub async fn move_alias(
    conn: &mut AnyConnection,
    tenant: TenantId,
    alias: &Alias,
    from: KeyId,
    to: KeyId,
    record: &Record,
) -> StoreResult<()> {
    require_key_in_tenant(&mut *conn, tenant, to).await?;
    let done = sqlx::query(
        "UPDATE aliases SET key_id = $1 WHERE tenant_id = $2 AND alias = $3 AND key_id = $4",
    )
    .bind(to.to_string())
    .bind(tenant.to_string())
    .bind(alias.as_str())
    .bind(from.to_string())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() != 1 {
        let exists = sqlx::query("SELECT key_id FROM aliases WHERE tenant_id = $1 AND alias = $2")
            .bind(tenant.to_string())
            .bind(alias.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
        return Err(match exists {
            Some(_) => StoreError::Conflict("the alias names another key by now"),
            None => StoreError::NotFound("alias"),
        });
    }
    record_change(&mut *conn, record).await?;
    Ok(())
}

pub async fn update_metadata(
    conn: &mut AnyConnection,
    key: &Key,
    record: &Record,
) -> StoreResult<()> {
    let labels = serde_json::to_string(&key.labels).map_err(|_| corrupt("labels"))?;
    let purposes = serde_json::to_string(&key.registered_purposes)
        .map_err(|_| corrupt("registered_purposes"))?;
    let done = sqlx::query(
        "UPDATE keys SET labels = $1, registered_purposes = $2, rotation_period = $3, \
         rotation_before_expiry = $4, rotation_overlap = $5, validity = $6 \
         WHERE id = $7 AND tenant_id = $8",
    )
    .bind(labels)
    .bind(purposes)
    .bind(duration_secs(key.rotation.period))
    .bind(duration_secs(key.rotation.before_expiry))
    .bind(duration_secs(key.rotation.overlap))
    .bind(duration_secs(key.validity))
    .bind(key.id.to_string())
    .bind(key.tenant.to_string())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    one_row(&done, StoreError::NotFound("key"))?;
    record_change(&mut *conn, record).await?;
    Ok(())
}
