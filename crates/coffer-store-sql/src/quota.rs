//! Quota checks inside the writing transaction (see `coffer_core::quota`).
//!
//! Each check first takes the tenant's row lock, then counts, then the caller writes:
//! on PostgreSQL `SELECT … FOR NO KEY UPDATE` serialises the quota-checked writes of one
//! tenant (two creations cannot both count the last free slot), while the foreign-key
//! checks of other writes (`FOR KEY SHARE`) do not wait on it. SQLite has one writer
//! connection, so its transactions are serial already. A refusal returns before any
//! write, and the transaction is rolled back with nothing in it.

use std::sync::{Arc, RwLock};

use coffer_core::quota::{Limits, Quota, Quotas};
use coffer_core::{Key, KeyId, StoreError, StoreResult, TenantId};
use sqlx::{AnyConnection, Row};

use crate::errors::unavailable;

/// The store's quotas, replaceable while it runs (the store is shared by clones).
#[derive(Debug, Clone, Default)]
pub struct SharedQuotas(Arc<RwLock<Quotas>>);

impl SharedQuotas {
    /// Replaces the quotas; writes from then on are checked against `quotas`.
    pub fn set(&self, quotas: Quotas) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = quotas;
    }

    /// The limits of `tenant`.
    pub fn of(&self, tenant: TenantId) -> Limits {
        *self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .of(tenant)
    }
}

/// Takes `tenant`'s row lock for the rest of the transaction (PostgreSQL).
async fn lock_tenant(conn: &mut AnyConnection, tenant: TenantId) -> StoreResult<()> {
    if conn.backend_name() == "SQLite" {
        return Ok(());
    }
    sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
        .bind(tenant.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

async fn count(conn: &mut AnyConnection, sql: &str, subject: String) -> StoreResult<u64> {
    let row = sqlx::query(sql)
        .bind(subject)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    let n: i64 = row.try_get(0).map_err(unavailable)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn admit(limits: &Limits, quota: Quota, current: u64, adding: u64) -> StoreResult<()> {
    limits
        .admit(quota, current, adding)
        .map_err(StoreError::QuotaExceeded)
}

/// Labels are the key's own, set at its creation only: no count in the database, no
/// lock. (Metadata changes keep the labels a key has, even over a quota lowered since.)
fn admit_labels(limits: &Limits, key: &Key) -> StoreResult<()> {
    admit(limits, Quota::LabelsPerKey, 0, key.labels.len() as u64)
}

/// A tenant's keys and aliases, counted once under its row lock: a group of key
/// creations (`batch`) counts each tenant once per transaction, not once per key, and
/// adds what each admitted creation writes. The lock (PostgreSQL) and the single
/// writer (SQLite) keep the counts true until the transaction ends.
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    keys: u64,
    aliases: u64,
}

impl Tally {
    /// Locks `tenant`'s row and counts its keys (not destroyed) and aliases.
    pub async fn take(conn: &mut AnyConnection, tenant: TenantId) -> StoreResult<Self> {
        lock_tenant(&mut *conn, tenant).await?;
        let keys = count(
            &mut *conn,
            "SELECT COUNT(*) FROM keys WHERE tenant_id = $1 AND state <> 'destroyed'",
            tenant.to_string(),
        )
        .await?;
        let aliases = count(
            conn,
            "SELECT COUNT(*) FROM aliases WHERE tenant_id = $1",
            tenant.to_string(),
        )
        .await?;
        Ok(Self { keys, aliases })
    }

    /// Whether `key` (with its aliases and labels) fits beside what is counted.
    pub fn admit(&self, limits: &Limits, key: &Key) -> StoreResult<()> {
        admit_labels(limits, key)?;
        admit(limits, Quota::KeysPerTenant, self.keys, 1)?;
        if !key.aliases.is_empty() {
            let adding = key.aliases.len() as u64;
            admit(limits, Quota::AliasesPerTenant, self.aliases, adding)?;
        }
        Ok(())
    }

    /// Counts `key` as written.
    pub fn add(&mut self, key: &Key) {
        self.keys += 1;
        self.aliases += key.aliases.len() as u64;
    }
}

/// `adding` more aliases in `tenant`.
pub async fn admit_aliases(
    conn: &mut AnyConnection,
    limits: &Limits,
    tenant: TenantId,
    adding: u64,
) -> StoreResult<()> {
    lock_tenant(&mut *conn, tenant).await?;
    admit_aliases_locked(conn, limits, tenant, adding).await
}

async fn admit_aliases_locked(
    conn: &mut AnyConnection,
    limits: &Limits,
    tenant: TenantId,
    adding: u64,
) -> StoreResult<()> {
    let aliases = count(
        conn,
        "SELECT COUNT(*) FROM aliases WHERE tenant_id = $1",
        tenant.to_string(),
    )
    .await?;
    admit(limits, Quota::AliasesPerTenant, aliases, adding)
}

/// One more version of `key`.
pub async fn admit_version(
    conn: &mut AnyConnection,
    limits: &Limits,
    tenant: TenantId,
    key: KeyId,
) -> StoreResult<()> {
    lock_tenant(&mut *conn, tenant).await?;
    let versions = count(
        conn,
        "SELECT COUNT(*) FROM key_versions WHERE key_id = $1",
        key.to_string(),
    )
    .await?;
    admit(limits, Quota::VersionsPerKey, versions, 1)
}

/// One more token of `tenant`.
pub async fn admit_token(
    conn: &mut AnyConnection,
    limits: &Limits,
    tenant: TenantId,
) -> StoreResult<()> {
    lock_tenant(&mut *conn, tenant).await?;
    let tokens = count(
        conn,
        "SELECT COUNT(*) FROM tokens WHERE tenant_id = $1 AND revoked_at IS NULL",
        tenant.to_string(),
    )
    .await?;
    admit(limits, Quota::TokensPerTenant, tokens, 1)
}
