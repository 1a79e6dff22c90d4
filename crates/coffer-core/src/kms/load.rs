//! Loading one usable version into the cache: its sealed bytes opened and every
//! readable column that copies them checked.

use coffer_crypto::{AeadKey, PublicKey, VerifyingKey};

use super::cache::{Material, ReadyVersion};
use super::{IntegrityCheck, Kms, KmsResult};
use crate::key::{Key, KeyVersion};
use crate::keyring::{self, VersionSecret};

impl Kms {
    /// Opens `version` of `key` for use. `subject` names the row in integrity logs.
    pub(super) fn ready_version(
        &self,
        key: &Key,
        version: &KeyVersion,
        kek: &AeadKey,
        subject: &str,
    ) -> KmsResult<ReadyVersion> {
        // The material was sealed by this deployment and bound to its row: if it does
        // not open, the stored bytes changed, which is no fault of the caller.
        let secret = keyring::unwrap_version(
            kek,
            key.tenant,
            key.id,
            version.number,
            &version.wrapped_material,
        )
        .map_err(|_| self.integrity_failure(IntegrityCheck::KeyMaterial, subject))?;
        // The published column is a copy of what the material derives; a copy that
        // differs was edited, and serving it would publish a key Coffer never holds.
        // The spec and purpose columns are re-derived from the material, whose sealed
        // bytes name their spec: an edited row would make Coffer announce, or use, the
        // key as something it is not. (An RSA key may sign or encrypt, and its material
        // does not say which: its purpose column is checked only against the two.)
        // For an HSM-resident version the sealed bytes hold its spec, location and the
        // public key read from the token, and the readable columns must match them.
        let (spec, public, material) = match secret {
            VersionSecret::Software(material) => {
                let public = material.public_key().map(|pk| pk.to_spki_der());
                if version.hsm.is_some() {
                    return Err(self.integrity_failure(IntegrityCheck::KeyMaterial, subject));
                }
                (material.spec(), public, Material::Software(material))
            }
            VersionSecret::Hsm(hsm) => {
                if version.hsm.as_ref() != Some(&hsm.location) {
                    return Err(self.integrity_failure(IntegrityCheck::KeyMaterial, subject));
                }
                (hsm.spec, hsm.public_key, Material::Hsm(hsm.location))
            }
        };
        if spec != key.spec || !key.purpose.serves(key.spec) {
            return Err(self.integrity_failure(IntegrityCheck::KeySpec, subject));
        }
        if public != version.public_key {
            return Err(self.integrity_failure(IntegrityCheck::PublicKey, subject));
        }
        let verifier = match &material {
            Material::Software(m) => m.public_key().map(VerifyingKey::new).transpose()?,
            Material::Hsm(_) => public
                .as_deref()
                .map(|der| PublicKey::from_spki_der(der).and_then(VerifyingKey::new))
                .transpose()?,
        };
        Ok(ReadyVersion { material, verifier })
    }
}
