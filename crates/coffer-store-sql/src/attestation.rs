//! Attestation policies of keys (`key_attestation_policies`, migration 0010): one row
//! per version, the highest in force.
//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses.

use std::collections::BTreeSet;

use async_trait::async_trait;
use coffer_core::attestation::{AttestationPolicy, AttestationStore, AttestedOp, Measurement};
use coffer_core::store::Record;
use coffer_core::{KeyId, StoreError, StoreResult, TenantId, Timestamp};
use sqlx::{AnyConnection, Row};

use crate::errors::{self, corrupt, unavailable};
use crate::history::record_change;
use crate::{SqlStore, audit};

const COLUMNS: &str = "tenant_id, key_id, version, operations, measurements, created_at";

pub(crate) fn joined<T: ToString>(items: &BTreeSet<T>) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn split<T: Ord + std::str::FromStr>(
    text: &str,
    column: &str,
) -> StoreResult<BTreeSet<T>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| corrupt(column)))
        .collect()
}

fn decode(row: &sqlx::any::AnyRow) -> StoreResult<AttestationPolicy> {
    let text = |column: &'static str| crate::rows::text(row, column);
    let int = |column: &'static str| row.try_get::<i64, _>(column).map_err(unavailable);
    Ok(AttestationPolicy {
        tenant: text("tenant_id")?
            .parse()
            .map_err(|_| corrupt("tenant_id"))?,
        key: text("key_id")?.parse().map_err(|_| corrupt("key_id"))?,
        version: u32::try_from(int("version")?).map_err(|_| corrupt("version"))?,
        operations: split::<AttestedOp>(&text("operations")?, "operations")?,
        measurements: split::<Measurement>(&text("measurements")?, "measurements")?,
        created_at: Timestamp::from_millis(int("created_at")?),
    })
}

async fn current_version(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
) -> StoreResult<i64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT COALESCE(MAX(version), 0) FROM key_attestation_policies \
         WHERE tenant_id = $1 AND key_id = $2",
    )
    .bind(tenant.to_string())
    .bind(key.to_string())
    .fetch_one(&mut *conn)
    .await
    .map_err(unavailable)
}

async fn put(
    conn: &mut AnyConnection,
    policy: &AttestationPolicy,
    record: &Record,
) -> StoreResult<()> {
    insert_version(&mut *conn, policy).await?;
    record_change(&mut *conn, record).await
}

/// Inserts `policy` as the key's next version, by compare-and-set on the one in force
/// (`policy.version - 1`), inside the caller's transaction: `put` above, and
/// [`coffer_core::Change::AttestationPolicy`] in a key change (a rotation's switch).
pub(crate) async fn insert_version(
    conn: &mut AnyConnection,
    policy: &AttestationPolicy,
) -> StoreResult<()> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT id FROM keys WHERE id = $1 AND tenant_id = $2")
            .bind(policy.key.to_string())
            .bind(policy.tenant.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
    if exists.is_none() {
        return Err(StoreError::NotFound("key"));
    }
    let current = current_version(&mut *conn, policy.tenant, policy.key).await?;
    if current + 1 != i64::from(policy.version) {
        return Err(StoreError::Conflict(
            "the key's attestation policy changed meanwhile",
        ));
    }
    // A racing writer that read the same version inserts the same key and fails here.
    sqlx::query(&format!(
        "INSERT INTO key_attestation_policies ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(policy.tenant.to_string())
    .bind(policy.key.to_string())
    .bind(i64::from(policy.version))
    .bind(joined(&policy.operations))
    .bind(joined(&policy.measurements))
    .bind(policy.created_at.millis())
    .execute(&mut *conn)
    .await
    .map_err(|e| match unavailable(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict("the key's attestation policy changed meanwhile")
        }
        other => other,
    })?;
    Ok(())
}

#[async_trait]
impl AttestationStore for SqlStore {
    async fn put_attestation_policy(
        &self,
        policy: &AttestationPolicy,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| put(conn, policy, record))
    }

    async fn attestation_policies(
        &self,
        tenant: TenantId,
        key: KeyId,
    ) -> StoreResult<Vec<AttestationPolicy>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM key_attestation_policies \
             WHERE tenant_id = $1 AND key_id = $2 ORDER BY version"
        ))
        .bind(tenant.to_string())
        .bind(key.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable)?;
        rows.iter().map(decode).collect()
    }

    async fn attestation_policy(
        &self,
        tenant: TenantId,
        key: KeyId,
    ) -> StoreResult<Option<AttestationPolicy>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM key_attestation_policies \
             WHERE tenant_id = $1 AND key_id = $2 ORDER BY version DESC LIMIT 1"
        ))
        .bind(tenant.to_string())
        .bind(key.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(decode).transpose()
    }
}
