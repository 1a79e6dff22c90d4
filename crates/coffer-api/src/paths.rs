//! Endpoint paths of the native API (port 9446) and the operations port (9909).

/// Keys collection: create (POST) and list (GET).
pub const KEYS: &str = "/v1/kms/keys";
/// One key by id: `KEYS/{key}`; by alias: `KEYS/alias/{name}`. Actions append
/// `/rotate`, `/enable`, `/disable`, `/schedule-deletion`, `/cancel-deletion`.
pub fn key(reference: &str) -> String {
    format!("{KEYS}/{reference}")
}
/// Aliases: move one to another key (POST).
pub const ALIASES: &str = "/v1/kms/aliases";
/// Wrap.
pub const WRAP: &str = "/v1/kms/wrap";
/// Unwrap.
pub const UNWRAP: &str = "/v1/kms/unwrap";
/// Data key.
pub const DATAKEY: &str = "/v1/kms/datakey";
/// Rewrap.
pub const REWRAP: &str = "/v1/kms/rewrap";
/// Sign.
pub const SIGN: &str = "/v1/kms/sign";
/// Verify.
pub const VERIFY: &str = "/v1/kms/verify";
/// Asymmetric (RSA-OAEP) encryption.
pub const ENCRYPT: &str = "/v1/kms/encrypt";
/// Asymmetric (RSA-OAEP) decryption.
pub const DECRYPT: &str = "/v1/kms/decrypt";
/// MAC.
pub const MAC: &str = "/v1/kms/mac";
/// Verify a MAC.
pub const VERIFY_MAC: &str = "/v1/kms/verify-mac";
/// Tenants (admin).
pub const TENANTS: &str = "/v1/admin/tenants";
/// Crypto-shred a tenant (admin).
pub const TENANTS_SHRED: &str = "/v1/admin/tenants/shred";
/// Set or clear a tenant's PQ policy override (admin).
pub const TENANTS_PQ_POLICY: &str = "/v1/admin/tenants/pq-policy";
/// Mint a token (admin).
pub const TOKENS: &str = "/v1/admin/tokens";
/// Revoke a token (admin).
pub const TOKENS_REVOKE: &str = "/v1/admin/tokens/revoke";
/// `POST`: a backup bundle of the whole store (admin tokens with `admin:backup`).
pub const BACKUP: &str = "/v1/admin/backup";
/// Seal status (no token).
pub const SEAL_STATUS: &str = "/v1/sys/seal-status";
/// Unseal (no token: the share is the credential).
pub const UNSEAL: &str = "/v1/sys/unseal";
/// Rotation sagas: start (POST, 202), list (GET, `?key=&status=`); one by id: `ROTATIONS/{id}` (GET), with `/resume`,
/// `/rollback` (POST) and `/verify` (GET).
pub const ROTATIONS: &str = "/v1/kms/rotations";
/// One rotation.
pub fn rotation(id: &str) -> String {
    format!("{ROTATIONS}/{id}")
}
/// A tracked data key's current wrapping: `TRACKED/{track_id}` (GET).
pub const TRACKED: &str = "/v1/kms/tracked";
/// Newest signed checkpoint (GET, public) or a new one (POST, admin).
pub const AUDIT_CHECKPOINT: &str = "/v1/audit/checkpoint";
/// Checkpoint verifier key (public).
pub const AUDIT_KEY: &str = "/v1/audit/key";
/// Audit entries as JSON lines (admin): `?from=&limit=`.
pub const AUDIT_ENTRIES: &str = "/v1/audit/entries";
/// Inclusion proof: `?index=&size=`.
pub const AUDIT_INCLUSION: &str = "/v1/audit/proof/inclusion";
/// Consistency proof: `?old=&new=`.
pub const AUDIT_CONSISTENCY: &str = "/v1/audit/proof/consistency";
/// The API's OpenAPI document (no token).
pub const OPENAPI: &str = "/v1/openapi.json";
/// The operations port's OpenAPI document.
pub const OPS_OPENAPI: &str = "/openapi.json";
/// Liveness (operations port).
pub const HEALTHZ: &str = "/healthz";
/// Readiness (operations port).
pub const READYZ: &str = "/readyz";
/// Prometheus metrics (operations port).
pub const METRICS: &str = "/metrics";
/// Ops port: custody's backend (kind, reachability; for PKCS#11 the module, token,
/// root key handles and session pool).
pub const CUSTODY: &str = "/custody";
/// Ops port: the configuration the server runs with, secrets redacted.
pub const CONFIG: &str = "/config";
