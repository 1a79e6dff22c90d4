//! Tags of keys (`key_tags`, migration 0016): the AWS front's resource tags.
//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses (and whose expansion
//! names `audit`, `errors` and `StoreError`, imported here for it).

use async_trait::async_trait;
use coffer_core::store::{Record, StoreError, StoreResult, TagStore, Tags};
use coffer_core::{KeyId, TenantId};
use sqlx::{AnyConnection, Row};

use crate::errors::{one_row, unavailable};
use crate::history::record_change;
use crate::{SqlStore, audit, errors};

async fn change(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
    set: &Tags,
    remove: &[String],
    max: usize,
    record: &Record,
) -> StoreResult<()> {
    let (key, tenant) = (key.to_string(), tenant.to_string());
    // Takes the key's row lock (PostgreSQL; SQLite has one writer): concurrent tag
    // changes of one key run one after the other, so the count below holds.
    let locked = sqlx::query("UPDATE keys SET id = id WHERE id = $1 AND tenant_id = $2")
        .bind(&key)
        .bind(&tenant)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    one_row(&locked, StoreError::NotFound("key"))?;
    for name in remove {
        sqlx::query("DELETE FROM key_tags WHERE key_id = $1 AND tag_key = $2")
            .bind(&key)
            .bind(name)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    for (name, value) in set {
        sqlx::query(
            "INSERT INTO key_tags (key_id, tenant_id, tag_key, tag_value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
        )
        .bind(&key)
        .bind(&tenant)
        .bind(name)
        .bind(value)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM key_tags WHERE key_id = $1")
        .bind(&key)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?
        .try_get("n")
        .map_err(unavailable)?;
    if usize::try_from(count).map_or(true, |n| n > max) {
        return Err(StoreError::Conflict("the key would carry too many tags"));
    }
    record_change(&mut *conn, record).await
}

#[async_trait]
impl TagStore for SqlStore {
    async fn change_tags(
        &self,
        tenant: TenantId,
        key: KeyId,
        set: &Tags,
        remove: &[String],
        max: usize,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| change(
            conn, tenant, key, set, remove, max, record
        ))
    }

    async fn key_tags(&self, tenant: TenantId, key: KeyId) -> StoreResult<Tags> {
        let rows = sqlx::query(
            "SELECT tag_key, tag_value FROM key_tags WHERE key_id = $1 AND tenant_id = $2",
        )
        .bind(key.to_string())
        .bind(tenant.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("tag_key").map_err(unavailable)?,
                    row.try_get("tag_value").map_err(unavailable)?,
                ))
            })
            .collect()
    }
}
