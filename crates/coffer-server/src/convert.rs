//! Domain values to wire types and back, at the edge.

use coffer_api::admin::TenantView;
use coffer_api::keys::{HsmObjectView, KeyView, RotationPolicyView, VersionView};
use coffer_core::kms::KeyDetails;
use coffer_core::{HumanDuration, RotationPolicy, Tenant, Timestamp};
use coffer_crypto::{EncryptionContext, PublicKey};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use coffer_api::ErrorCode;

/// RFC 3339, UTC, millisecond precision.
pub fn rfc3339(t: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.millis()) * 1_000_000)
        .ok()
        .and_then(|dt| dt.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.millis().to_string())
}

fn duration(d: Option<HumanDuration>) -> Option<String> {
    d.map(|d| d.to_string())
}

/// A policy as the API shows it.
pub fn policy_view(policy: &RotationPolicy) -> RotationPolicyView {
    RotationPolicyView {
        period: duration(policy.period),
        before_expiry: duration(policy.before_expiry),
        overlap: duration(policy.overlap),
    }
}

/// A key with its versions.
pub fn key_view(details: &KeyDetails) -> KeyView {
    let key = &details.key;
    KeyView {
        key_id: key.id.to_string(),
        spec: key.spec.as_str().to_owned(),
        purpose: key.purpose.as_str().to_owned(),
        state: key.state.as_str().to_owned(),
        deletion_due: key.deletion_due.map(rfc3339),
        aliases: key.aliases.iter().map(|a| a.as_str().to_owned()).collect(),
        labels: key.labels.clone(),
        registered_purposes: key.registered_purposes.iter().cloned().collect(),
        rotation: policy_view(&key.rotation),
        validity: duration(key.validity),
        protection: key.protection.as_str().to_owned(),
        primary_version: details
            .versions
            .iter()
            .find(|v| v.primary)
            .map_or(0, |v| v.number.get()),
        created_at: rfc3339(key.created_at),
        versions: details
            .versions
            .iter()
            .map(|v| VersionView {
                version: v.number.get(),
                state: v.state.as_str().to_owned(),
                primary: v.primary,
                not_before: rfc3339(v.not_before),
                not_after: v.not_after.map(rfc3339),
                public_key_pem: v
                    .public_key
                    .as_deref()
                    .and_then(|der| PublicKey::from_spki_der(der).ok())
                    .map(|pk| pk.to_pem()),
                location: if v.hsm.is_some() { "hsm" } else { "software" }.to_owned(),
                hsm: v.hsm.as_ref().map(|at| HsmObjectView {
                    slot: at.slot,
                    token: at.token.clone(),
                    label: at.label.clone(),
                    id: at.id_hex(),
                }),
            })
            .collect(),
    }
}

/// A tenant.
pub fn tenant_view(tenant: &Tenant) -> TenantView {
    TenantView {
        tenant_id: tenant.id.to_string(),
        name: tenant.name.to_string(),
        state: tenant.state.as_str().to_owned(),
        created_at: rfc3339(tenant.created_at),
        aws_account_id: Some(crate::aws::account_of(tenant)),
    }
}

/// An encryption context from the wire.
pub fn context(pairs: &coffer_api::crypto::Context) -> Result<EncryptionContext, ApiError> {
    EncryptionContext::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))
}

/// A duration field such as `90d`.
pub fn parse_duration(
    field: &'static str,
    text: &Option<String>,
) -> Result<Option<HumanDuration>, ApiError> {
    text.as_deref()
        .map(|t| t.parse::<HumanDuration>())
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("{field}: {e}")))
}
