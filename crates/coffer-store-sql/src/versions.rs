//! Key versions and compare-and-set lifecycle changes.

use coffer_core::store::{Change, Record};
use coffer_core::{
    KeyId, KeyState, KeyVersion, StoreError, StoreResult, TenantId, Timestamp, VersionNumber,
    VersionState,
};
use sqlx::{AnyConnection, AnyPool};

use coffer_core::state_seal::{SealedRow, StateTag};

use crate::errors::unavailable;
use crate::history::record_change;
use crate::keys::require_key_in_tenant;
use crate::multirow;
use crate::rows;

/// The `key_versions` table and its columns, in the order [`bind_version`] binds them.
const VERSION_COLUMNS: &str = "key_versions (key_id, number, state, is_primary, not_before, \
     not_after, public_key, wrapped_material, created_at, hsm_location, state_tag)";
const VERSION_PARAMS: usize = 11;

pub async fn insert_version(conn: &mut AnyConnection, v: &KeyVersion) -> StoreResult<()> {
    insert_versions(conn, &[v]).await
}

/// Writes `versions`, many rows a statement (see `multirow`).
pub async fn insert_versions(
    conn: &mut AnyConnection,
    versions: &[&KeyVersion],
) -> StoreResult<()> {
    for chunk in versions.chunks(multirow::rows_per_statement(VERSION_PARAMS)) {
        let sql = multirow::insert(conn, VERSION_COLUMNS, chunk.len(), VERSION_PARAMS);
        let query = chunk
            .iter()
            .fold(sqlx::query(&sql), |query, v| bind_version(query, v));
        query.execute(&mut *conn).await.map_err(unavailable)?;
    }
    Ok(())
}

fn bind_version<'q>(query: multirow::Query<'q>, v: &'q KeyVersion) -> multirow::Query<'q> {
    query
        .bind(v.key.to_string())
        .bind(i64::from(v.number.get()))
        .bind(v.state.as_str())
        .bind(i64::from(v.primary))
        .bind(v.not_before.millis())
        .bind(v.not_after.map(|t| t.millis()))
        .bind(v.public_key.as_deref())
        .bind(v.wrapped_material.as_slice())
        .bind(v.created_at.millis())
        .bind(v.hsm.as_ref().map(rows::hsm_location))
        .bind(v.state_tag.map(|tag| tag.to_vec()))
}

pub async fn list(pool: &AnyPool, tenant: TenantId, key: KeyId) -> StoreResult<Vec<KeyVersion>> {
    sqlx::query(
        "SELECT v.* FROM key_versions v JOIN keys k ON k.id = v.key_id \
         WHERE k.tenant_id = $1 AND v.key_id = $2 ORDER BY v.number",
    )
    .bind(tenant.to_string())
    .bind(key.to_string())
    .fetch_all(pool)
    .await
    .map_err(unavailable)?
    .iter()
    .map(rows::version)
    .collect()
}

pub async fn add(
    conn: &mut AnyConnection,
    limits: &coffer_core::quota::Limits,
    tenant: TenantId,
    version: &KeyVersion,
    then: &[Change],
    record: &Record,
) -> StoreResult<()> {
    if version.primary {
        return Err(StoreError::Conflict(
            "a new version is never primary on insert",
        ));
    }
    require_key_in_tenant(&mut *conn, tenant, version.key).await?;
    crate::quota::admit_version(&mut *conn, limits, tenant, version.key).await?;
    insert_version(&mut *conn, version).await?;
    for change in then {
        apply_one(&mut *conn, version.key, change).await?;
    }
    record_change(&mut *conn, record).await?;
    Ok(())
}

pub async fn apply(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
    changes: &[Change],
    record: &Record,
) -> StoreResult<()> {
    require_key_in_tenant(&mut *conn, tenant, key).await?;
    for change in changes {
        apply_one(&mut *conn, key, change).await?;
    }
    record_change(&mut *conn, record).await?;
    // Dropping `tx` on any early return above rolls everything back.
    Ok(())
}

pub async fn set_cert_chain(
    conn: &mut AnyConnection,
    tenant: TenantId,
    key: KeyId,
    version: VersionNumber,
    chain_pem: Option<&str>,
    record: &Record,
) -> StoreResult<()> {
    require_key_in_tenant(&mut *conn, tenant, key).await?;
    let affected =
        sqlx::query("UPDATE key_versions SET cert_chain = $1 WHERE key_id = $2 AND number = $3")
            .bind(chain_pem)
            .bind(key.to_string())
            .bind(i64::from(version.get()))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?
            .rows_affected();
    if affected != 1 {
        return Err(StoreError::NotFound("key version"));
    }
    record_change(&mut *conn, record).await?;
    Ok(())
}

pub async fn get_cert_chain(
    pool: &AnyPool,
    tenant: TenantId,
    key: KeyId,
    version: VersionNumber,
) -> StoreResult<Option<String>> {
    let chain: Option<Option<String>> = sqlx::query_scalar(
        "SELECT v.cert_chain FROM key_versions v JOIN keys k ON k.id = v.key_id \
         WHERE k.tenant_id = $1 AND v.key_id = $2 AND v.number = $3",
    )
    .bind(tenant.to_string())
    .bind(key.to_string())
    .bind(i64::from(version.get()))
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    Ok(chain.flatten())
}

async fn apply_one(conn: &mut AnyConnection, key: KeyId, change: &Change) -> StoreResult<()> {
    let key_id = key.to_string();
    let affected = match change {
        Change::KeyState {
            from,
            to,
            deletion_due,
        } => sqlx::query(
            "UPDATE keys SET state = $1, deletion_due = $2 WHERE id = $3 AND state = $4",
        )
        .bind(to.as_str())
        .bind(deletion_due.map(|t| t.millis()))
        .bind(&key_id)
        .bind(from.as_str())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?
        .rows_affected(),
        Change::VersionState { version, from, to } => {
            // Destroying a version destroys its material: the column is cleared in the
            // same statement (the schema checks the two go together).
            let sql = if *to == VersionState::Destroyed {
                "UPDATE key_versions SET state = $1, wrapped_material = NULL \
                 WHERE key_id = $2 AND number = $3 AND state = $4"
            } else {
                "UPDATE key_versions SET state = $1 WHERE key_id = $2 AND number = $3 AND state = $4"
            };
            sqlx::query(sql)
                .bind(to.as_str())
                .bind(&key_id)
                .bind(i64::from(version.get()))
                .bind(from.as_str())
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?
                .rows_affected()
        }
        Change::Primary { from, to } => {
            let cleared = sqlx::query(
                "UPDATE key_versions SET is_primary = 0 WHERE key_id = $1 AND number = $2 AND is_primary = 1",
            )
            .bind(&key_id)
            .bind(i64::from(from.get()))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?
            .rows_affected();
            if cleared != 1 {
                return Err(StoreError::Conflict(
                    "the primary version changed underneath",
                ));
            }
            sqlx::query("UPDATE key_versions SET is_primary = 1 WHERE key_id = $1 AND number = $2 AND state = $3")
                .bind(&key_id)
                .bind(i64::from(to.get()))
                .bind(VersionState::Active.as_str())
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?
                .rows_affected()
        }
        Change::DestroyKey { due_by } => destroy_key(&mut *conn, &key_id, *due_by).await?,
        Change::Validity {
            version,
            from,
            not_before,
            not_after,
        } => sqlx::query(
            "UPDATE key_versions SET not_before = $1, not_after = $2 \
                 WHERE key_id = $3 AND number = $4 AND not_before = $5",
        )
        .bind(not_before.millis())
        .bind(not_after.map(|t| t.millis()))
        .bind(&key_id)
        .bind(i64::from(version.get()))
        .bind(from.millis())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?
        .rows_affected(),
        Change::Seal { row, from, to } => seal(&mut *conn, &key_id, *row, *from, to).await?,
        Change::Material { version, from, to } => sqlx::query(
            "UPDATE key_versions SET wrapped_material = $1 \
                 WHERE key_id = $2 AND number = $3 AND wrapped_material = $4",
        )
        .bind(to.as_slice())
        .bind(&key_id)
        .bind(i64::from(version.get()))
        .bind(from.as_slice())
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?
        .rows_affected(),
        Change::AttestationPolicy(policy) => {
            if policy.key != key {
                return Err(StoreError::Conflict(
                    "an attestation policy change names another key",
                ));
            }
            crate::attestation::insert_version(&mut *conn, policy).await?;
            1
        }
    };
    if affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(conflict_reason(change)))
    }
}

/// [`Change::DestroyKey`]: the key's state first, as the compare-and-set (its count is
/// what the caller checks), then every version at once. Clearing `is_primary` in the
/// same statement keeps the schema's "only an active version is primary" rule, and
/// clearing the material keeps "a destroyed version keeps no material".
async fn destroy_key(
    conn: &mut AnyConnection,
    key_id: &str,
    due_by: Timestamp,
) -> StoreResult<u64> {
    let destroyed = sqlx::query(
        "UPDATE keys SET state = $1, deletion_due = NULL \
         WHERE id = $2 AND state = $3 AND deletion_due <= $4",
    )
    .bind(KeyState::Destroyed.as_str())
    .bind(key_id)
    .bind(KeyState::PendingDeletion.as_str())
    .bind(due_by.millis())
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?
    .rows_affected();
    if destroyed == 1 {
        sqlx::query(
            "UPDATE key_versions SET state = $1, wrapped_material = NULL, is_primary = 0 \
             WHERE key_id = $2",
        )
        .bind(VersionState::Destroyed.as_str())
        .bind(key_id)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    }
    Ok(destroyed)
}

/// [`Change::Seal`]: the row's tag, compare-and-set on the one the change was computed
/// from (`IS NULL` for an untagged row: `= NULL` would match nothing).
async fn seal(
    conn: &mut AnyConnection,
    key_id: &str,
    row: SealedRow,
    from: Option<StateTag>,
    to: &StateTag,
) -> StoreResult<u64> {
    let (table_row, number) = match row {
        SealedRow::Key => ("keys SET state_tag = $1 WHERE id = $2", None),
        SealedRow::Version(n) => (
            "key_versions SET state_tag = $1 WHERE key_id = $2 AND number = $3",
            Some(i64::from(n.get())),
        ),
    };
    let compare = match (from, number) {
        (None, _) => " AND state_tag IS NULL".to_owned(),
        (Some(_), None) => " AND state_tag = $3".to_owned(),
        (Some(_), Some(_)) => " AND state_tag = $4".to_owned(),
    };
    let sql = format!("UPDATE {table_row}{compare}");
    let mut query = sqlx::query(&sql).bind(to.to_vec()).bind(key_id);
    if let Some(number) = number {
        query = query.bind(number);
    }
    if let Some(from) = from {
        query = query.bind(from.to_vec());
    }
    Ok(query
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?
        .rows_affected())
}

/// Sets the state tag of each named row that has none (the binding of rows written
/// before key states were sealed; rows tagged meanwhile keep theirs).
pub async fn bind_states(
    conn: &mut AnyConnection,
    tags: &[(KeyId, SealedRow, StateTag)],
) -> StoreResult<()> {
    for (key, row, tag) in tags {
        seal(&mut *conn, &key.to_string(), *row, None, tag).await?;
    }
    Ok(())
}

fn conflict_reason(change: &Change) -> &'static str {
    match change {
        Change::KeyState { .. } => "the key's state changed underneath",
        Change::VersionState { .. } => "the version's state changed underneath",
        Change::Primary { .. } => "the new primary version is not active",
        Change::DestroyKey { .. } => "the key is not pending deletion, or not yet due",
        Change::Validity { .. } => "the version's validity changed underneath",
        Change::Material { .. } => "the version's material changed underneath",
        Change::AttestationPolicy(_) => "the key's attestation policy changed meanwhile",
        Change::Seal { .. } => "the row changed underneath",
    }
}
