//! The tenant key hierarchy:
//!
//! ```text
//! custody root key ──wraps──► tenant key (XAES-256-GCM, one per tenant)
//!                              └──wraps──► each key version's stored material
//! ```
//!
//! Associated data binds each wrapped blob to the row it belongs to, so copying a
//! tenant key to another tenant, or a version's material to another key or version,
//! makes it fail to unwrap. Destroying a tenant key makes all of that tenant's material
//! unrecoverable at once (crypto-shredding).

use coffer_crypto::{AeadKey, KeyMaterial, SecretBytes};

use crate::custody::Custody;
use crate::error::CoreResult;
use crate::ids::{KeyId, TenantId, VersionNumber};

const TENANT_KEK_DOMAIN: &[u8] = b"coffer/tenant-kek/v1";
const MATERIAL_DOMAIN: &[u8] = b"coffer/key-material/v1";

/// Associated data for a tenant key wrapped by custody.
pub fn tenant_kek_aad(tenant: TenantId) -> Vec<u8> {
    [TENANT_KEK_DOMAIN, tenant.as_bytes()].concat()
}

/// Associated data for a key version's material wrapped by its tenant key.
pub fn material_aad(tenant: TenantId, key: KeyId, version: VersionNumber) -> Vec<u8> {
    [
        MATERIAL_DOMAIN,
        tenant.as_bytes(),
        key.as_bytes(),
        &version.get().to_be_bytes(),
    ]
    .concat()
}

/// A new tenant key, returned wrapped by custody (for the store) and in the clear (for
/// immediate use).
pub fn new_tenant_kek(custody: &dyn Custody, tenant: TenantId) -> CoreResult<(Vec<u8>, AeadKey)> {
    let kek = AeadKey::generate()?;
    let wrapped = custody.wrap(&tenant_kek_aad(tenant), kek.expose_secret())?;
    Ok((wrapped, kek))
}

/// Unwraps a tenant key read from the store.
pub fn open_tenant_kek(
    custody: &dyn Custody,
    tenant: TenantId,
    wrapped: &[u8],
) -> CoreResult<AeadKey> {
    let raw: SecretBytes = custody.unwrap(&tenant_kek_aad(tenant), wrapped)?;
    Ok(AeadKey::from_bytes(raw.expose_secret())?)
}

/// Wraps a key version's material under its tenant key.
pub fn wrap_material(
    kek: &AeadKey,
    tenant: TenantId,
    key: KeyId,
    version: VersionNumber,
    material: &KeyMaterial,
) -> CoreResult<Vec<u8>> {
    let stored = material.to_stored()?;
    Ok(kek.seal(&material_aad(tenant, key, version), stored.expose_secret())?)
}

/// Unwraps a key version's material.
pub fn unwrap_material(
    kek: &AeadKey,
    tenant: TenantId,
    key: KeyId,
    version: VersionNumber,
    wrapped: &[u8],
) -> CoreResult<KeyMaterial> {
    let stored = kek.open(&material_aad(tenant, key, version), wrapped)?;
    Ok(KeyMaterial::from_stored(stored.expose_secret())?)
}
