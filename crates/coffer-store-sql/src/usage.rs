//! The reference tracker's persisted counts (`version_use`): batched upserts that add,
//! and the rows of one key.
//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses: a flush is a write like
//! any other (one transaction, a failed commit marks the writer broken), only without
//! an audit entry, because it records use rather than changing state.

use async_trait::async_trait;
use coffer_core::store::UsageStore;
use coffer_core::usage::{UseCount, UseOf, VersionUse};
use coffer_core::{KeyId, StoreError, StoreResult, TenantId, Timestamp, VersionNumber};
use sqlx::{AnyConnection, Row};

use crate::SqlStore;
use crate::errors::{self, corrupt, unavailable};

async fn add(conn: &mut AnyConnection, uses: &[VersionUse]) -> StoreResult<()> {
    // One statement per row: a flush carries the (version, principal, kind) triples
    // touched in about a second, a handful, not a bulk load.
    for row in uses {
        sqlx::query(
            "INSERT INTO version_use \
             (tenant_id, key_id, version, principal, kind, first_seen, last_seen, uses) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (key_id, version, principal, kind) DO UPDATE SET \
             uses = version_use.uses + excluded.uses, \
             first_seen = CASE WHEN excluded.first_seen < version_use.first_seen \
                 THEN excluded.first_seen ELSE version_use.first_seen END, \
             last_seen = CASE WHEN excluded.last_seen > version_use.last_seen \
                 THEN excluded.last_seen ELSE version_use.last_seen END",
        )
        .bind(row.of.tenant.to_string())
        .bind(row.of.key.to_string())
        .bind(i64::from(row.of.version.get()))
        .bind(row.of.principal.to_string())
        .bind(row.of.kind.as_str())
        .bind(row.count.first_seen.millis())
        .bind(row.count.last_seen.millis())
        .bind(i64::try_from(row.count.count).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}

fn decode(row: &sqlx::any::AnyRow) -> StoreResult<VersionUse> {
    let int = |column: &'static str| row.try_get::<i64, _>(column).map_err(unavailable);
    let text = |column: &'static str| crate::rows::text(row, column);
    Ok(VersionUse {
        of: UseOf {
            tenant: text("tenant_id")?
                .parse()
                .map_err(|_| corrupt("tenant_id"))?,
            key: text("key_id")?.parse().map_err(|_| corrupt("key_id"))?,
            version: u32::try_from(int("version")?)
                .ok()
                .and_then(|n| VersionNumber::new(n).ok())
                .ok_or_else(|| corrupt("version"))?,
            principal: text("principal")?
                .parse()
                .map_err(|_| corrupt("principal"))?,
            kind: text("kind")?.parse().map_err(|_| corrupt("kind"))?,
        },
        count: UseCount {
            first_seen: Timestamp::from_millis(int("first_seen")?),
            last_seen: Timestamp::from_millis(int("last_seen")?),
            count: u64::try_from(int("uses")?).map_err(|_| corrupt("uses"))?,
        },
    })
}

#[async_trait]
impl UsageStore for SqlStore {
    async fn add_use(&self, uses: &[VersionUse]) -> StoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        in_transaction!(self, |conn| add(conn, uses))
    }

    async fn key_use(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<VersionUse>> {
        sqlx::query(
            "SELECT * FROM version_use WHERE tenant_id = $1 AND key_id = $2 \
             ORDER BY version, principal, kind",
        )
        .bind(tenant.to_string())
        .bind(key.to_string())
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable)?
        .iter()
        .map(decode)
        .collect::<Result<_, StoreError>>()
    }
}
