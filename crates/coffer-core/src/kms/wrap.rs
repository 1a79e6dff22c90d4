//! wrap: seal caller bytes (a data key, a small secret) under a key's primary version.

use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};
use coffer_crypto::{EncryptionContext, KeyMaterial};

use super::cache::CachedKey;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyPurpose;
use crate::token::Operation;
use crate::usage::UseKind;

/// Largest plaintext wrap accepts (as AWS KMS `Encrypt`): wrap is for keys and small
/// secrets; bulk data is encrypted locally under a data key.
pub const MAX_WRAP_PLAINTEXT: usize = 4096;

/// A ciphertext and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Envelope v1.
    pub ciphertext: Vec<u8>,
    /// Key.
    pub key_id: KeyId,
    /// Version.
    pub version: VersionNumber,
}

impl Kms {
    /// Seals `plaintext` under the primary version of `entry` (already authorised): in
    /// memory, or by the HSM for an HSM-resident version.
    pub(super) fn seal_primary(
        &self,
        entry: &CachedKey,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Sealed> {
        require_usable(entry, KeyPurpose::Encrypt, "encrypt")?;
        let (number, ready) = entry.ready_primary()?;
        let header = EnvelopeHeader {
            key_id: *entry.key.id.as_bytes(),
            key_version: number.get(),
        };
        let binding = Binding {
            tenant_id: entry.key.tenant.as_bytes(),
            context,
        };
        let ciphertext = match (ready.software(), ready.hsm()) {
            (Some(KeyMaterial::Aes256(key)), _) => envelope::seal(key, header, binding, plaintext)?,
            (_, Some(location)) => self.hsm_seal(location, header, binding, plaintext)?,
            _ => {
                return Err(KmsError::Internal(
                    "encrypt key without AES material".into(),
                ));
            }
        };
        Ok(Sealed {
            ciphertext,
            key_id: entry.key.id,
            version: number,
        })
    }

    /// Wraps `plaintext` (at most 4096 bytes) under `reference`'s primary version.
    pub async fn wrap(
        &self,
        caller: &Caller,
        reference: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Sealed> {
        let result = self
            .wrap_unaudited(caller, reference, plaintext, context)
            .await;
        self.audited(caller, "wrap", Some(reference), result).await
    }

    /// Wraps `plaintext` (at most 4096 bytes) under `reference`'s primary version.
    pub(super) async fn wrap_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Sealed> {
        let entry = self.key_for(caller, Operation::Wrap, reference).await?;
        if plaintext.len() > MAX_WRAP_PLAINTEXT {
            return Err(KmsError::Invalid(format!(
                "plaintext is {} bytes; wrap takes at most {MAX_WRAP_PLAINTEXT}",
                plaintext.len()
            )));
        }
        let _in_flight = entry.primary.map(|v| {
            self.in_flight(
                caller,
                &entry.key,
                v,
                UseKind::of_ciphertext(UseKind::Encrypt, context),
            )
        });
        self.seal_primary(&entry, plaintext, context)
    }
}
