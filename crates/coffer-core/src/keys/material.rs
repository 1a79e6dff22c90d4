//! Version material: software material, or a key the HSM generates (and destroys again
//! when the version never reaches the store).

use coffer_crypto::{AeadKey, KeyMaterial, KeySpec};

use super::KeyService;
use crate::error::{CoreError, CoreResult, InvalidInput};
use crate::hsm::{HsmKeyRef, Protection, hsm_supports};
use crate::ids::VersionNumber;
use crate::key::{Key, KeyPurpose, KeyVersion};
use crate::keyring;
use crate::lifecycle::VersionState;

impl KeyService {
    /// Loads and unwraps one version's material.
    pub async fn load_material(&self, key: &Key, version: &KeyVersion) -> CoreResult<KeyMaterial> {
        let kek = self.tenant_kek(key.tenant).await?;
        keyring::unwrap_material(
            &kek,
            key.tenant,
            key.id,
            version.number,
            &version.wrapped_material,
        )
    }

    /// Loads one version's sealed bytes: software material or its HSM location.
    pub async fn open_version(
        &self,
        key: &Key,
        version: &KeyVersion,
    ) -> CoreResult<keyring::VersionSecret> {
        let kek = self.tenant_kek(key.tenant).await?;
        keyring::unwrap_version(
            &kek,
            key.tenant,
            key.id,
            version.number,
            &version.wrapped_material,
        )
    }

    /// A new version: software material, or (for an HSM key) a key the token generates.
    pub(super) fn new_version(
        &self,
        kek: &AeadKey,
        key: &Key,
        number: VersionNumber,
        state: VersionState,
        hsm_slot: Option<u64>,
    ) -> CoreResult<KeyVersion> {
        let now = self.clock.now();
        let (public_key, wrapped, hsm) = match key.protection {
            Protection::Software => {
                let material = KeyMaterial::generate(key.spec)?;
                let wrapped = keyring::wrap_material(kek, key.tenant, key.id, number, &material)?;
                (
                    material.public_key().map(|pk| pk.to_spki_der()),
                    wrapped,
                    None,
                )
            }
            Protection::Hsm => {
                let label = format!("coffer:{}:{}:v{}", key.tenant, key.id, number.get());
                let made = self.hsm()?.generate(key.spec, &label, hsm_slot)?;
                let version = keyring::HsmVersion {
                    spec: key.spec,
                    location: made.location.clone(),
                    public_key: made.public_key.clone(),
                };
                match keyring::wrap_hsm_version(kek, key.tenant, key.id, number, &version) {
                    Ok(wrapped) => (made.public_key, wrapped, Some(made.location)),
                    Err(error) => {
                        self.discard_hsm_object(&made.location);
                        return Err(error);
                    }
                }
            }
        };
        Ok(KeyVersion {
            key: key.id,
            number,
            state,
            primary: false,
            not_before: now,
            not_after: key.validity.map(|v| now.plus(v.get())),
            public_key,
            wrapped_material: wrapped,
            hsm,
            created_at: now,
            state_tag: None,
        })
    }

    /// A version whose store write failed leaves no object behind in the token.
    pub(super) fn discard_if_failed<T, E: Into<CoreError>>(
        &self,
        version: &KeyVersion,
        result: Result<T, E>,
    ) -> CoreResult<T> {
        result.map_err(|error| {
            if let Some(location) = &version.hsm {
                self.discard_hsm_object(location);
            }
            error.into()
        })
    }

    /// Destroys the token object of a version that was never stored or was destroyed.
    /// Best effort: the row no longer names it, so a token that is away at that moment
    /// keeps an object nothing uses (logged, with its location).
    pub(super) fn discard_hsm_object(&self, location: &HsmKeyRef) {
        if let Ok(hsm) = self.hsm()
            && let Err(error) = hsm.destroy(location)
        {
            tracing::warn!(%error, %location, "could not destroy an HSM key object");
        }
    }
}

/// Refuses what the HSM does not hold: specs outside [`hsm_supports`], and RSA keys
/// made for encryption (the token signs with RSA; OAEP stays software).
pub(super) fn check_hsm_spec(spec: KeySpec, purpose: KeyPurpose) -> CoreResult<()> {
    if !hsm_supports(spec) {
        return Err(InvalidInput::new(
            "spec",
            "protection hsm takes aes-256, ecdsa-p256, ed25519 or rsa-2048/3072/4096",
        )
        .into());
    }
    if spec.is_rsa() && purpose != KeyPurpose::Sign {
        return Err(InvalidInput::new("purpose", "HSM-resident RSA keys sign only").into());
    }
    Ok(())
}
