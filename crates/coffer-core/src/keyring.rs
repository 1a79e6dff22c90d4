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

use coffer_crypto::{AeadKey, KeyMaterial, KeySpec, SecretBytes};

use crate::custody::Custody;
use crate::error::{CoreResult, InvalidInput};
use crate::hsm::HsmKeyRef;
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

/// Format byte of a sealed HSM reference (software material starts with its own
/// format byte, 0x01, see `coffer_crypto::material`).
const HSM_REF_FORMAT: u8 = 0x02;

/// What a version's sealed bytes hold: software material, or where the HSM keeps it.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "a version is opened once per load; boxing would only add an allocation"
)]
pub enum VersionSecret {
    /// Software material.
    Software(KeyMaterial),
    /// An HSM-resident version.
    Hsm(HsmVersion),
}

/// An HSM-resident version as sealed in its row: spec, location and public key, so an
/// edited readable column (location, public key) is caught when the key loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmVersion {
    /// The key's spec.
    pub spec: KeySpec,
    /// Where the token keeps it.
    pub location: HsmKeyRef,
    /// The public key (SPKI DER) read from the token at creation, for key pairs.
    pub public_key: Option<Vec<u8>>,
}

impl HsmVersion {
    fn encode(&self) -> CoreResult<Vec<u8>> {
        let too_long = || InvalidInput::new("hsm reference", "a field is too long");
        let mut out = vec![HSM_REF_FORMAT, self.spec.code()];
        out.extend_from_slice(&self.location.slot.to_be_bytes());
        for field in [
            self.location.token.as_bytes(),
            self.location.label.as_bytes(),
            &self.location.id,
        ] {
            let len = u16::try_from(field.len()).map_err(|_| too_long())?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
        let public = self.public_key.as_deref().unwrap_or_default();
        let len = u32::try_from(public.len()).map_err(|_| too_long())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(public);
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            *rest = tail;
            Some(head)
        }
        fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
            let len = u16::from_be_bytes(take(rest, 2)?.try_into().ok()?);
            take(rest, usize::from(len))
        }
        let mut rest = bytes;
        let [format, code] = take(&mut rest, 2)? else {
            return None;
        };
        if *format != HSM_REF_FORMAT {
            return None;
        }
        let spec = KeySpec::from_code(*code)?;
        let slot = u64::from_be_bytes(take(&mut rest, 8)?.try_into().ok()?);
        let token = String::from_utf8(field(&mut rest)?.to_vec()).ok()?;
        let label = String::from_utf8(field(&mut rest)?.to_vec()).ok()?;
        let id = field(&mut rest)?.to_vec();
        let len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().ok()?);
        let public = take(&mut rest, usize::try_from(len).ok()?)?;
        if !rest.is_empty() {
            return None;
        }
        Some(Self {
            spec,
            location: HsmKeyRef {
                slot,
                token,
                label,
                id,
            },
            public_key: (!public.is_empty()).then(|| public.to_vec()),
        })
    }
}

/// Seals an HSM-resident version's reference under its tenant key, bound to its row
/// exactly as software material is.
pub fn wrap_hsm_version(
    kek: &AeadKey,
    tenant: TenantId,
    key: KeyId,
    version: VersionNumber,
    hsm: &HsmVersion,
) -> CoreResult<Vec<u8>> {
    Ok(kek.seal(&material_aad(tenant, key, version), &hsm.encode()?)?)
}

/// Unwraps a version's sealed bytes: software material or an HSM reference.
pub fn unwrap_version(
    kek: &AeadKey,
    tenant: TenantId,
    key: KeyId,
    version: VersionNumber,
    wrapped: &[u8],
) -> CoreResult<VersionSecret> {
    let stored = kek.open(&material_aad(tenant, key, version), wrapped)?;
    if stored.expose_secret().first() == Some(&HSM_REF_FORMAT) {
        return HsmVersion::decode(stored.expose_secret())
            .map(VersionSecret::Hsm)
            .ok_or(InvalidInput::new("hsm reference", "malformed").into());
    }
    Ok(VersionSecret::Software(KeyMaterial::from_stored(
        stored.expose_secret(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HsmVersion {
        HsmVersion {
            spec: KeySpec::EcdsaP256,
            location: HsmKeyRef {
                slot: 7,
                token: "coffer".into(),
                label: "coffer-key".into(),
                id: vec![1, 2, 3],
            },
            public_key: Some(vec![9; 91]),
        }
    }

    #[test]
    fn hsm_references_round_trip_and_bind_their_row() {
        let kek = AeadKey::generate().unwrap();
        let (tenant, key) = (TenantId::generate(), KeyId::generate());
        let v1 = VersionNumber::FIRST;
        let wrapped = wrap_hsm_version(&kek, tenant, key, v1, &sample()).unwrap();
        match unwrap_version(&kek, tenant, key, v1, &wrapped).unwrap() {
            VersionSecret::Hsm(found) => assert_eq!(found, sample()),
            VersionSecret::Software(_) => panic!("software material"),
        }
        // Another version's row does not open it.
        assert!(unwrap_version(&kek, tenant, key, v1.next(), &wrapped).is_err());
    }

    #[test]
    fn malformed_references_are_refused_without_panicking() {
        let encoded = sample().encode().unwrap();
        for cut in 0..encoded.len() {
            assert!(
                HsmVersion::decode(&encoded[..cut]).is_none(),
                "cut at {cut}"
            );
        }
        let mut longer = encoded.clone();
        longer.push(0);
        assert!(HsmVersion::decode(&longer).is_none());
        assert_eq!(HsmVersion::decode(&encoded), Some(sample()));
    }
}
