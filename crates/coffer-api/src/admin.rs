//! Tenants, tokens, seal status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /v1/admin/tenants`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Name: 1–64 of a-z, 0-9, `-`, `_`.
    pub name: String,
    /// The tenant's AWS account id for the AWS front (12 digits, unique); derived from
    /// the tenant id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct TenantView {
    /// Id.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// `active` or `shredded`.
    pub state: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// The tenant's AWS account id (chosen or derived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
}

/// `POST /v1/admin/tenants/pq-policy`: a tenant's PQ policy, overriding the server's
/// settings at once (seed 002 §6.4). Each setting is left as it is when absent, set to
/// the tenant's own value when given, and back to the server's default when `null`; at
/// least one must be named.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPqPolicyRequest {
    /// Tenant name or id.
    pub tenant: String,
    /// How its hybrid signatures are accepted: `and`, `or` or `pq_only`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pq_verify_mode: Option<Option<String>>,
    /// Whether its hybrid keys in the rollout sign with the composite (`true`) or with
    /// the classical half alone, a plain Ed25519 signature (`false`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pq_produce_hybrid: Option<Option<bool>>,
    /// The share of its hybrid keys in the rollout, 0 to 100, by a stable hash of
    /// tenant and key.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub pq_rollout_percent: Option<Option<i64>>,
}

/// A field that is present, `null` included (`Some(None)`), apart from one that is
/// absent (`None`, by `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// One effective setting and where it comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct SettingView {
    /// The setting's name (`pq_verify_mode`, `max_inflight_sign`, …).
    pub name: String,
    /// Its value.
    pub value: String,
    /// `tenant` (the tenant's override) or `server` (the server's configuration).
    pub source: String,
}

/// `GET /v1/admin/tenants/{tenant}`, and the answer of a PQ policy change: the tenant
/// and the settings its requests run under.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct TenantSettingsView {
    /// The tenant.
    pub tenant: TenantView,
    /// Its effective PQ and limit settings.
    pub settings: Vec<SettingView>,
}

/// `GET /v1/admin/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ListTenantsResponse {
    /// The tenants.
    pub tenants: Vec<TenantView>,
}

/// `POST /v1/admin/tokens`: a token for a tenant (or an admin token).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MintTokenRequest {
    /// Tenant name or id; required unless `admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// An admin token (tenants and tokens), instead of a tenant token.
    #[serde(default)]
    pub admin: bool,
    /// Allowed operations (default all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
    /// Allowed keys, ids or aliases (default all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Lifetime, e.g. `24h` (default: no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// A note for operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Answer of mint. `Debug` elides the token: it is a bearer credential.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct MintTokenResponse {
    /// The bearer token. Shown once.
    pub token: String,
    /// Its id, for revocation.
    pub token_id: String,
}

impl std::fmt::Debug for MintTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintTokenResponse")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/admin/tenants/shred`: destroys the tenant's key, and with it every key
/// of the tenant, irrecoverably.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShredTenantRequest {
    /// The tenant's name or id.
    pub tenant: String,
    /// The tenant's name again, as confirmation.
    pub confirm: String,
}

/// `POST /v1/admin/tokens/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeTokenRequest {
    /// The token id (every token attenuated from it is revoked with it).
    pub token_id: String,
}

/// `GET /v1/sys/seal-status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct SealStatusView {
    /// True while the root key is unavailable.
    pub sealed: bool,
    /// Shares given so far.
    pub progress: u8,
    /// Shares needed.
    pub threshold: u8,
    /// `shamir`, `passphrase`, `key-file` or `pkcs11` (nothing to unseal).
    pub method: String,
}

/// One configuration key of a running server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ConfigSettingView {
    /// The dotted key (`max_inflight_sign`, `custody.method`).
    pub key: String,
    /// Its value, secrets redacted (a database URL's password is `***`); absent when the
    /// key does not apply (a PKCS#11 key under key-file custody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `default`, `file` or `env`: where the server's load found it.
    pub source: String,
}

/// `GET /config` on the operations port: the configuration the server started with,
/// every key, secrets redacted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct RunningConfigView {
    /// Every key, in the example configuration's order.
    pub settings: Vec<ConfigSettingView>,
}

/// `GET /custody` on the operations port: custody's backend, for `coffer doctor`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct CustodyView {
    /// `sealed` or `pkcs11`.
    pub kind: String,
    /// False while the backend (an HSM) is unreachable.
    pub available: bool,
    /// The token, for PKCS#11 custody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11View>,
}

/// The PKCS#11 token as the server sees it. No PIN, no key material.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Pkcs11View {
    /// The module's path.
    pub module: String,
    /// The configured token (label or slot).
    pub token: String,
    /// The slot the token is in, while connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// The token's label, while connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// Why the token is unreachable, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Reconnect attempts since the server started.
    pub reconnects: u64,
    /// Root key generations and their object handles, while connected.
    pub root_keys: Vec<RootKeyView>,
    /// The session pool, while connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<SessionPoolView>,
    /// `none` or `verify-only`.
    pub failover: String,
}

/// One root key generation in the token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct RootKeyView {
    /// The generation (its `CKA_ID`).
    pub generation: u32,
    /// The object handle in the current session.
    pub handle: u64,
}

/// The bounded session pool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct SessionPoolView {
    /// Sessions open (idle or in use).
    pub open: usize,
    /// Sessions idle.
    pub idle: usize,
    /// The bound.
    pub max: usize,
}

/// `POST /v1/sys/unseal`: one of the fields, matching the custody method.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsealRequest {
    /// A Shamir share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<crate::B64Secret>,
    /// The passphrase (UTF-8 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<crate::B64Secret>,
}
