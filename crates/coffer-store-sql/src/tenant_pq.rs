//! Tenants' PQ policy overrides (`tenant_pq_policy`, migrations 0015 and 0021): one row
//! per tenant with at least one override, a NULL column where the server's default
//! applies.

use coffer_core::pq::{Change, HybridSigning, PqChange, PqOverrides, RolloutPercent};
use coffer_core::store::Record;
use coffer_core::{StoreResult, TenantId};
use coffer_crypto::PqVerifyMode;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::errors::{corrupt, unavailable};
use crate::history::record_change;

const COLUMNS: &str = "tenant_id, pq_verify_mode, pq_produce_hybrid, pq_rollout_percent";

/// `(kept, value to write)` for one override: a kept column is left as stored; any
/// other is written, NULL when cleared.
fn bindable<T, U>(change: Change<T>, to_column: impl Fn(T) -> U) -> (i64, Option<U>) {
    match change {
        Change::Keep => (1, None),
        Change::Clear => (0, None),
        Change::Set(value) => (0, Some(to_column(value))),
    }
}

/// Applies `change` in one statement, so two concurrent changes of different settings
/// cannot overwrite each other with what they read; a row left with no override is
/// deleted. Answers the overrides after the change.
pub async fn change(
    conn: &mut AnyConnection,
    id: TenantId,
    change: &PqChange,
    record: &Record,
) -> StoreResult<PqOverrides> {
    let (keep_mode, mode) = bindable(change.verify_mode, |m| m.as_str());
    let (keep_signing, signing) =
        bindable(change.signing, |s| i64::from(s == HybridSigning::Composite));
    let (keep_rollout, rollout) = bindable(change.rollout, |r| i64::from(r.get()));
    sqlx::query(
        "INSERT INTO tenant_pq_policy \
         (tenant_id, pq_verify_mode, pq_produce_hybrid, pq_rollout_percent, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id) DO UPDATE SET \
         pq_verify_mode = CASE WHEN $6 = 1 THEN tenant_pq_policy.pq_verify_mode \
             ELSE excluded.pq_verify_mode END, \
         pq_produce_hybrid = CASE WHEN $7 = 1 THEN tenant_pq_policy.pq_produce_hybrid \
             ELSE excluded.pq_produce_hybrid END, \
         pq_rollout_percent = CASE WHEN $8 = 1 THEN tenant_pq_policy.pq_rollout_percent \
             ELSE excluded.pq_rollout_percent END, \
         updated_at = excluded.updated_at",
    )
    .bind(id.to_string())
    .bind(mode)
    .bind(signing)
    .bind(rollout)
    .bind(crate::now_millis())
    .bind(keep_mode)
    .bind(keep_signing)
    .bind(keep_rollout)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query(
        "DELETE FROM tenant_pq_policy WHERE tenant_id = $1 AND pq_verify_mode IS NULL \
         AND pq_produce_hybrid IS NULL AND pq_rollout_percent IS NULL",
    )
    .bind(id.to_string())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM tenant_pq_policy WHERE tenant_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?;
    let overrides = match row {
        Some(row) => parse(&row)?.1,
        None => PqOverrides::default(),
    };
    record_change(&mut *conn, record).await?;
    Ok(overrides)
}

/// Every tenant's overrides.
pub async fn all(pool: &AnyPool) -> StoreResult<Vec<(TenantId, PqOverrides)>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM tenant_pq_policy ORDER BY tenant_id"
    ))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(parse)
    .collect()
}

/// A row, parsed into the domain's types (`Corrupt` for anything the schema's checks
/// should have kept out).
fn parse(row: &AnyRow) -> StoreResult<(TenantId, PqOverrides)> {
    let id: String = row.try_get("tenant_id").map_err(unavailable)?;
    let mode: Option<String> = row.try_get("pq_verify_mode").map_err(unavailable)?;
    let signing: Option<i64> = row.try_get("pq_produce_hybrid").map_err(unavailable)?;
    let rollout: Option<i64> = row.try_get("pq_rollout_percent").map_err(unavailable)?;
    let tenant = id
        .parse()
        .map_err(|_| corrupt("tenant_pq_policy.tenant_id"))?;
    let verify_mode = mode
        .map(|m| m.parse::<PqVerifyMode>())
        .transpose()
        .map_err(|_| corrupt("tenant_pq_policy.pq_verify_mode"))?;
    let signing = match signing {
        None => None,
        Some(1) => Some(HybridSigning::Composite),
        Some(0) => Some(HybridSigning::ClassicalHalf),
        Some(_) => return Err(corrupt("tenant_pq_policy.pq_produce_hybrid")),
    };
    let rollout = rollout
        .map(|r| {
            u8::try_from(r)
                .ok()
                .and_then(|r| RolloutPercent::new(r).ok())
                .ok_or_else(|| corrupt("tenant_pq_policy.pq_rollout_percent"))
        })
        .transpose()?;
    Ok((
        tenant,
        PqOverrides {
            verify_mode,
            signing,
            rollout,
        },
    ))
}
