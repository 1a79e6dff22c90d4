//! Key management: create, list, show, rotate, enable, disable, schedule and cancel
//! deletion.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /v1/kms/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// `aes-256`, `ed25519`, `ecdsa-p256`, `ml-dsa-65`, `hybrid-ed25519-ml-dsa-65`,
    /// `hmac-sha256`.
    pub spec: String,
    /// `encrypt`, `sign` or `mac`; defaults to the spec's purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// `alias/NAME` (or `NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Registered purposes such as `attestation-signing`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub registered_purposes: BTreeSet<String>,
    /// Rotation policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationPolicyView>,
    /// Validity of each version, e.g. `365d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
    /// `software` (the default) or `hsm`: each version a non-extractable key in the
    /// HSM token (custody `pkcs11` only; `aes-256`, `ecdsa-p256`, `ed25519`, RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<String>,
    /// With `protection = hsm`: the slot of the token to create it in (must be the
    /// configured token's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsm_slot: Option<u64>,
}

/// Rotation policy as durations like `90d`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationPolicyView {
    /// Rotate every…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Rotate this long before the primary expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_expiry: Option<String>,
    /// Keep the replaced version usable this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
}

/// A key as answered by create, show and list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct KeyView {
    /// Key id (UUID).
    pub key_id: String,
    /// Spec.
    pub spec: String,
    /// Purpose.
    pub purpose: String,
    /// `enabled`, `disabled`, `pending-deletion`, `destroyed`.
    pub state: String,
    /// For `pending-deletion`: when it becomes due (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_due: Option<String>,
    /// Aliases.
    pub aliases: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Registered purposes.
    pub registered_purposes: Vec<String>,
    /// Rotation policy.
    pub rotation: RotationPolicyView,
    /// Validity of each new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
    /// `software` or `hsm`: where the key's versions live.
    #[serde(default = "software")]
    pub protection: String,
    /// The primary version's number.
    pub primary_version: u32,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Every version, oldest first.
    pub versions: Vec<VersionView>,
}

/// One key version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct VersionView {
    /// Number.
    pub version: u32,
    /// `pending`, `active`, `inactive`, `retiring`, `retired`, `destroyed`.
    pub state: String,
    /// True for the primary.
    pub primary: bool,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Valid until (RFC 3339), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Public key as PEM (signing keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// Where this version lives: `software` (wrapped in the database) or `hsm`.
    #[serde(default = "software")]
    pub location: String,
    /// For an HSM-resident version: the token object that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsm: Option<HsmObjectView>,
}

fn software() -> String {
    "software".into()
}

/// The token object holding an HSM-resident version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct HsmObjectView {
    /// The slot the token was in when the object was created.
    pub slot: u64,
    /// The token's label.
    pub token: String,
    /// The object's `CKA_LABEL`.
    pub label: String,
    /// The object's `CKA_ID`, hex.
    pub id: String,
}

/// `GET /v1/kms/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ListKeysResponse {
    /// The keys.
    pub keys: Vec<KeyView>,
}

/// Query of `GET /v1/kms/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListKeysQuery {
    /// Only this purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Only this spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Only keys in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// `POST /v1/kms/keys/{key}/rotate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct RotateResponse {
    /// Key id.
    pub key_id: String,
    /// The new primary version.
    pub version: u32,
}

/// The body of a key action that takes none (`rotate`, `enable`, `disable`,
/// `cancel-deletion`, `add-spare`, `publish`): absent, or `{}`. Anything else is refused,
/// as an unknown field is anywhere.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// `POST /v1/kms/keys/{key}/schedule-deletion`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeletionRequest {
    /// Waiting period in days, 7–30 (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_window_days: Option<u32>,
}

/// `POST /v1/kms/keys/{key}/activate`: make a spare (or pending) version primary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The version.
    pub version: u32,
}

/// `POST /v1/kms/keys/{key}/reactivate`: move a retired version back to `retiring`
/// (decrypt and verify only) while its material exists.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactivateRequest {
    /// The retired version.
    pub version: u32,
}

/// `POST /v1/kms/keys/{key}/register`: register a purpose (`published` publishes a
/// signing key in its tenant's JWKS).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The purpose, e.g. `attestation-signing`.
    pub purpose: String,
}

/// `POST /v1/kms/aliases`: move an existing alias to another key of the tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAliasRequest {
    /// The alias, `alias/NAME` (or `NAME`).
    pub alias: String,
    /// The key it is to name (id or `alias/NAME`).
    pub key_id: String,
    /// Move it only if it still names this key (id or `alias/NAME`); else `409`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_key_id: Option<String>,
}

/// Answer of `POST /v1/kms/aliases`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct AliasView {
    /// The alias, `alias/NAME`.
    pub alias: String,
    /// The key it names now.
    pub key_id: String,
    /// The key it named before.
    pub previous_key_id: String,
}

/// `GET /v1/kms/keys/{key}/history`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct HistoryResponse {
    /// Lifecycle events, oldest first.
    pub events: Vec<EventView>,
}

/// One lifecycle event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct EventView {
    /// When (RFC 3339).
    pub at: String,
    /// What, e.g. `key.created`, `key.rotated`, `version.activated`.
    pub kind: String,
    /// The version concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Details.
    pub detail: String,
}

/// `POST /v1/kms/keys/{key}/certificate`: import a certificate chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportChainRequest {
    /// PEM `CERTIFICATE` blocks, leaf first; the leaf certifies the version's key.
    pub chain_pem: String,
    /// The version (default: the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// `POST /v1/kms/keys/{key}/issue-certificate`: issue a certificate for the key's
/// primary version from a CA key of the tenant (the key itself: self-signed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCertificateRequest {
    /// The CA key: id or `alias/NAME`.
    pub ca_key: String,
    /// The subject's common name.
    pub subject: String,
    /// Validity from now, e.g. `365d`.
    pub validity: String,
}

/// Query of `GET /v1/kms/keys/{key}/certificate` and `.../verify-chain`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainQuery {
    /// The version (default: the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// One certificate of a chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ChainLinkView {
    /// Subject name.
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// notBefore (RFC 3339).
    pub not_before: String,
    /// notAfter (RFC 3339).
    pub not_after: String,
    /// Within its validity now.
    pub valid_now: bool,
    /// The signature verified with the issuer's key; absent when not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_ok: Option<bool>,
    /// `ok`, `invalid`, or `unverified: REASON`.
    pub signature: String,
}

/// A version's certificate chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ChainView {
    /// Key id.
    pub key_id: String,
    /// Version.
    pub version: u32,
    /// PEM, leaf first.
    pub chain_pem: String,
    /// The links, leaf first.
    pub links: Vec<ChainLinkView>,
}

/// `GET /v1/kms/keys/{key}/verify-chain`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ChainReportView {
    /// Key id.
    pub key_id: String,
    /// Version.
    pub version: u32,
    /// The links, leaf first (index 0).
    pub links: Vec<ChainLinkView>,
    /// Index of the first link past its notAfter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_expired: Option<usize>,
    /// Every link valid now and no failing signature.
    pub ok: bool,
}

/// `POST /v1/kms/keys/{key}/policy`: change the rotation policy and version validity.
/// Fields given replace the current ones; fields left out stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicyRequest {
    /// Rotation policy fields to set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationPolicyView>,
    /// Validity of versions created from now on, e.g. `365d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<String>,
}
