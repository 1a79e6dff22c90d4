//! Key policies and grants (`key_policies`, `key_grants`, migration 0024): the AWS
//! front's access controls.
//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses (and whose expansion
//! names `audit`, `errors` and `StoreError`, imported here for it).

use async_trait::async_trait;
use coffer_core::store::{AccessStore, Grant, Record, StoreError, StoreResult, StoredPolicy};
use coffer_core::{KeyId, TenantId, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::errors::{corrupt, one_row, unavailable};
use crate::history::record_change;
use crate::{SqlStore, audit, errors};

/// The key's row exists in the tenant (and is locked on PostgreSQL until commit).
async fn lock_key(conn: &mut AnyConnection, tenant: TenantId, key: KeyId) -> StoreResult<()> {
    let done = sqlx::query("UPDATE keys SET id = id WHERE id = $1 AND tenant_id = $2")
        .bind(key.to_string())
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    one_row(&done, StoreError::NotFound("key"))
}

async fn put_policy(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
    policy: &StoredPolicy,
    record: &Record,
) -> StoreResult<()> {
    lock_key(&mut *conn, tenant, key).await?;
    sqlx::query(
        "INSERT INTO key_policies (key_id, tenant_id, document, rules) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key_id) DO UPDATE SET document = excluded.document, rules = excluded.rules",
    )
    .bind(key.to_string())
    .bind(tenant.to_string())
    .bind(&policy.document)
    .bind(&policy.rules)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    record_change(&mut *conn, record).await
}

async fn insert_grant(conn: &mut AnyConnection, grant: &Grant, record: &Record) -> StoreResult<()> {
    lock_key(&mut *conn, grant.tenant, grant.key).await?;
    let operations = serde_json::to_string(&grant.operations).map_err(|_| corrupt("operations"))?;
    sqlx::query(
        "INSERT INTO key_grants (grant_id, tenant_id, key_id, grantee, retiring, operations, \
         name, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&grant.id)
    .bind(grant.tenant.to_string())
    .bind(grant.key.to_string())
    .bind(&grant.grantee)
    .bind(grant.retiring.as_deref())
    .bind(operations)
    .bind(grant.name.as_deref())
    .bind(grant.created_at.millis())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    record_change(&mut *conn, record).await
}

async fn remove_grant(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
    id: &str,
    record: &Record,
) -> StoreResult<()> {
    let done = sqlx::query(
        "DELETE FROM key_grants WHERE grant_id = $1 AND key_id = $2 AND tenant_id = $3",
    )
    .bind(id)
    .bind(key.to_string())
    .bind(tenant.to_string())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    one_row(&done, StoreError::NotFound("grant"))?;
    record_change(&mut *conn, record).await
}

fn grant(row: &AnyRow) -> StoreResult<Grant> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(unavailable);
    let opt = |c: &str| row.try_get::<Option<String>, _>(c).map_err(unavailable);
    Ok(Grant {
        id: text("grant_id")?,
        tenant: text("tenant_id")?
            .parse()
            .map_err(|_| corrupt("tenant_id"))?,
        key: text("key_id")?.parse().map_err(|_| corrupt("key_id"))?,
        grantee: text("grantee")?,
        retiring: opt("retiring")?,
        operations: serde_json::from_str(&text("operations")?)
            .map_err(|_| corrupt("operations"))?,
        name: opt("name")?,
        created_at: Timestamp::from_millis(
            row.try_get::<i64, _>("created_at").map_err(unavailable)?,
        ),
    })
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn put_key_policy(
        &self,
        tenant: TenantId,
        key: KeyId,
        policy: &StoredPolicy,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| put_policy(
            conn, tenant, key, policy, record
        ))
    }

    async fn key_policy(&self, tenant: TenantId, key: KeyId) -> StoreResult<Option<StoredPolicy>> {
        let row = sqlx::query(
            "SELECT document, rules FROM key_policies WHERE key_id = $1 AND tenant_id = $2",
        )
        .bind(key.to_string())
        .bind(tenant.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable)?;
        row.map(|row| {
            Ok(StoredPolicy {
                document: row.try_get("document").map_err(unavailable)?,
                rules: row.try_get("rules").map_err(unavailable)?,
            })
        })
        .transpose()
    }

    async fn create_grant(&self, grant: &Grant, record: &Record) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| insert_grant(
            conn, grant, record
        ))
    }

    async fn grants(&self, tenant: TenantId, key: Option<KeyId>) -> StoreResult<Vec<Grant>> {
        let rows = match key {
            Some(key) => sqlx::query(
                "SELECT * FROM key_grants WHERE tenant_id = $1 AND key_id = $2 ORDER BY grant_id",
            )
            .bind(tenant.to_string())
            .bind(key.to_string())
            .fetch_all(&self.reader)
            .await,
            None => {
                sqlx::query("SELECT * FROM key_grants WHERE tenant_id = $1 ORDER BY grant_id")
                    .bind(tenant.to_string())
                    .fetch_all(&self.reader)
                    .await
            }
        }
        .map_err(unavailable)?;
        rows.iter().map(grant).collect()
    }

    async fn delete_grant(
        &self,
        tenant: TenantId,
        key: KeyId,
        id: &str,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| remove_grant(
            conn, tenant, key, id, record
        ))
    }
}
