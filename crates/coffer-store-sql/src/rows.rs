//! Rows to domain types. Anything that does not decode is `StoreError::Corrupt`, naming
//! the column.

use std::collections::BTreeSet;
use std::str::FromStr;

use coffer_core::key::{Key, KeyPurpose, KeyVersion, Labels, RotationPolicy};
use coffer_core::{
    Event, HumanDuration, KeyId, KeyState, StoreResult, Tenant, TenantId, TenantName, TenantState,
    Timestamp, VersionNumber, VersionState,
};
use coffer_core::{HsmKeyRef, Protection};
use coffer_crypto::KeySpec;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::errors::{corrupt, unavailable};

pub fn text(row: &AnyRow, column: &str) -> StoreResult<String> {
    row.try_get::<String, _>(column).map_err(unavailable)
}

fn parsed<T: FromStr>(row: &AnyRow, column: &'static str) -> StoreResult<T> {
    text(row, column)?.parse().map_err(|_| corrupt(column))
}

fn int(row: &AnyRow, column: &str) -> StoreResult<i64> {
    row.try_get::<i64, _>(column).map_err(unavailable)
}

fn opt_int(row: &AnyRow, column: &str) -> StoreResult<Option<i64>> {
    row.try_get::<Option<i64>, _>(column).map_err(unavailable)
}

pub(crate) fn opt_bytes(row: &AnyRow, column: &str) -> StoreResult<Option<Vec<u8>>> {
    row.try_get::<Option<Vec<u8>>, _>(column)
        .map_err(unavailable)
}

fn duration(secs: Option<i64>) -> Option<HumanDuration> {
    secs.and_then(|s| u64::try_from(s).ok())
        .map(|s| HumanDuration::new(std::time::Duration::from_secs(s)))
}

/// Stored form of an optional duration.
pub fn duration_secs(d: Option<HumanDuration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn tenant(row: &AnyRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: parsed::<TenantId>(row, "id")?,
        name: TenantName::from_stored(&text(row, "name")?).map_err(|_| corrupt("tenant name"))?,
        state: parsed::<TenantState>(row, "state")?,
        created_at: Timestamp::from_millis(int(row, "created_at")?),
        aws_account_id: row
            .try_get::<Option<String>, _>("aws_account_id")
            .map_err(unavailable)?,
    })
}

/// A key row; aliases are filled in by the caller.
pub fn key(row: &AnyRow) -> StoreResult<Key> {
    let labels: Labels =
        serde_json::from_str(&text(row, "labels")?).map_err(|_| corrupt("labels"))?;
    let registered_purposes: BTreeSet<String> =
        serde_json::from_str(&text(row, "registered_purposes")?)
            .map_err(|_| corrupt("registered_purposes"))?;
    Ok(Key {
        tenant: parsed::<TenantId>(row, "tenant_id")?,
        id: parsed::<KeyId>(row, "id")?,
        spec: parsed::<KeySpec>(row, "spec")?,
        purpose: parsed::<KeyPurpose>(row, "purpose")?,
        state: parsed::<KeyState>(row, "state")?,
        deletion_due: opt_int(row, "deletion_due")?.map(Timestamp::from_millis),
        aliases: BTreeSet::new(),
        labels,
        registered_purposes,
        rotation: RotationPolicy {
            period: duration(opt_int(row, "rotation_period")?),
            before_expiry: duration(opt_int(row, "rotation_before_expiry")?),
            overlap: duration(opt_int(row, "rotation_overlap")?),
        },
        validity: duration(opt_int(row, "validity")?),
        protection: parsed::<Protection>(row, "protection")?,
        created_at: Timestamp::from_millis(int(row, "created_at")?),
        state_tag: state_tag(row)?,
    })
}

pub fn version(row: &AnyRow) -> StoreResult<KeyVersion> {
    let number = u32::try_from(int(row, "number")?).map_err(|_| corrupt("number"))?;
    Ok(KeyVersion {
        key: parsed::<KeyId>(row, "key_id")?,
        number: VersionNumber::new(number).map_err(|_| corrupt("number"))?,
        state: parsed::<VersionState>(row, "state")?,
        primary: int(row, "is_primary")? == 1,
        not_before: Timestamp::from_millis(int(row, "not_before")?),
        not_after: opt_int(row, "not_after")?.map(Timestamp::from_millis),
        public_key: opt_bytes(row, "public_key")?,
        // Destroyed versions keep no material.
        wrapped_material: opt_bytes(row, "wrapped_material")?.unwrap_or_default(),
        hsm: row
            .try_get::<Option<String>, _>("hsm_location")
            .map_err(unavailable)?
            .map(|text| parse_hsm_location(&text).ok_or_else(|| corrupt("hsm_location")))
            .transpose()?,
        created_at: Timestamp::from_millis(int(row, "created_at")?),
        state_tag: state_tag(row)?,
    })
}

/// A row's state tag (`coffer_core::state_seal`): 32 bytes, or none before binding.
fn state_tag(row: &AnyRow) -> StoreResult<Option<coffer_core::state_seal::StateTag>> {
    opt_bytes(row, "state_tag")?
        .map(|tag| tag.try_into().map_err(|_| corrupt("state_tag")))
        .transpose()
}

/// Stored form of an HSM-resident version's location (JSON; the id as hex).
pub fn hsm_location(location: &HsmKeyRef) -> String {
    serde_json::json!({
        "slot": location.slot,
        "token": location.token,
        "label": location.label,
        "id": location.id_hex(),
    })
    .to_string()
}

fn parse_hsm_location(text: &str) -> Option<HsmKeyRef> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let hex = value.get("id")?.as_str()?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    let id = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(HsmKeyRef {
        slot: value.get("slot")?.as_u64()?,
        token: value.get("token")?.as_str()?.to_owned(),
        label: value.get("label")?.as_str()?.to_owned(),
        id,
    })
}

pub fn event(row: &AnyRow) -> StoreResult<Event> {
    let version = opt_int(row, "version")?
        .map(|n| {
            u32::try_from(n)
                .ok()
                .and_then(|n| VersionNumber::new(n).ok())
        })
        .map(|v| v.ok_or_else(|| corrupt("version")))
        .transpose()?;
    let key = row
        .try_get::<Option<String>, _>("key_id")
        .map_err(unavailable)?
        .map(|k| k.parse::<KeyId>().map_err(|_| corrupt("key_id")))
        .transpose()?;
    Ok(Event {
        tenant: parsed::<TenantId>(row, "tenant_id")?,
        key,
        version,
        kind: text(row, "kind")?,
        detail: text(row, "detail")?,
        actor: row
            .try_get::<Option<String>, _>("actor")
            .map_err(unavailable)?,
        at: Timestamp::from_millis(int(row, "at")?),
    })
}
