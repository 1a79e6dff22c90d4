//! unwrap: open an envelope made by wrap, datakey or rewrap.

use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};
use coffer_crypto::{EncryptionContext, KeyMaterial, SecretBytes};

use super::attested::{Presented, RecipientFormat};
use super::cache::CachedKey;
use super::trail::Named;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::attestation::AttestedOp;
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyPurpose;
use crate::lifecycle::VersionState;
use crate::token::Operation;
use crate::usage::UseKind;

/// A decrypted envelope.
#[derive(Debug)]
pub struct Opened {
    /// The plaintext.
    pub plaintext: SecretBytes,
    /// Key.
    pub key_id: KeyId,
    /// Version.
    pub version: VersionNumber,
    /// The plaintext encrypted to the public key of the caller's attestation document
    /// (`coffer_attest::recipient`), when it carried one; `plaintext` is then empty,
    /// so the plaintext never leaves in the clear.
    pub for_recipient: Option<Vec<u8>>,
}

/// Moves `secret` into a ciphertext for the attested workload's public key, if its
/// document carried one: `None` (and `secret` untouched) otherwise.
/// In the AWS format, a document without a public key is refused (`400`): the AWS
/// front never answers the plaintext to a `Recipient`.
pub(super) fn for_recipient(
    attested: Option<crate::attestation::Attested>,
    secret: &[u8],
    format: RecipientFormat,
) -> KmsResult<Option<Vec<u8>>> {
    let key = attested.and_then(|a| a.public_key);
    let sealed = match (format, key) {
        (RecipientFormat::Coffer, None) => return Ok(None),
        (RecipientFormat::AwsCms, None) => {
            return Err(KmsError::Invalid(
                "the Recipient's attestation document carries no public key".into(),
            ));
        }
        (RecipientFormat::Coffer, Some(key)) => coffer_attest::recipient::seal(&key, secret),
        (RecipientFormat::AwsCms, Some(key)) => coffer_attest::recipient_cms::seal(&key, secret),
    };
    sealed
        .map(Some)
        .map_err(|e| KmsError::Invalid(e.to_string()))
}

/// The key id and version an envelope names, before anything else is trusted.
pub(super) fn header(ciphertext: &[u8]) -> KmsResult<(KeyId, VersionNumber)> {
    let header = EnvelopeHeader::parse(ciphertext)?;
    let version =
        VersionNumber::new(header.key_version).map_err(|_| KmsError::InvalidCiphertext)?;
    Ok((KeyId::from_bytes(header.key_id), version))
}

impl Kms {
    /// Opens `ciphertext` with the version it names (already authorised): in memory, or
    /// by the HSM for an HSM-resident version.
    pub(super) fn open_with(
        &self,
        entry: &CachedKey,
        version: VersionNumber,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Opened> {
        require_usable(entry, KeyPurpose::Encrypt, "decrypt")?;
        let Some(ready) = entry.ready.get(&version) else {
            return Err(match entry.versions.get(&version).map(|v| v.state) {
                Some(VersionState::Retired | VersionState::Destroyed) => {
                    KmsError::VersionRetired(version.get())
                }
                // Pending, inactive or unknown versions never sealed anything the caller
                // could hold: the blob is not genuine.
                _ => KmsError::InvalidCiphertext,
            });
        };
        let binding = Binding {
            tenant_id: entry.key.tenant.as_bytes(),
            context,
        };
        let plaintext = match (ready.software(), ready.hsm()) {
            (Some(KeyMaterial::Aes256(key)), _) => envelope::open(key, ciphertext, binding)?,
            (_, Some(location)) => self.hsm_open(location, ciphertext, binding)?,
            _ => {
                return Err(KmsError::Internal(
                    "encrypt key without AES material".into(),
                ));
            }
        };
        Ok(Opened {
            plaintext,
            key_id: entry.key.id,
            version,
            for_recipient: None,
        })
    }

    /// Unwraps an envelope (the key comes from its header, within the caller's tenant).
    pub async fn unwrap(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Opened> {
        self.unwrap_attested(caller, ciphertext, context, None)
            .await
    }

    /// [`Kms::unwrap`] with the caller's attestation document, for keys whose policy
    /// asks for one.
    pub async fn unwrap_attested(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &EncryptionContext,
        attestation: Option<&[u8]>,
    ) -> KmsResult<Opened> {
        self.unwrap_presented(caller, ciphertext, context, Presented::new(attestation))
            .await
    }

    /// [`Kms::unwrap`] for a request presenting `presented` (the AWS front's
    /// `Recipient`: [`Presented::aws_recipient`]).
    pub async fn unwrap_presented(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &EncryptionContext,
        presented: Presented<'_>,
    ) -> KmsResult<Opened> {
        let result = self
            .unwrap_unaudited(caller, ciphertext, context, &presented)
            .await;
        // A success names its key and version itself; a failure (a retired version
        // refused, say) names those of the ciphertext's header.
        let named = Named::header(ciphertext);
        let entry = self.entry_of(caller, "unwrap", named, presented.detail(), &result);
        self.recorded(entry, result).await
    }

    /// Unwraps an envelope. The key comes from the envelope's header, within the
    /// caller's tenant: another tenant's ciphertext names a key that is absent here.
    pub(super) async fn unwrap_unaudited(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &EncryptionContext,
        presented: &Presented<'_>,
    ) -> KmsResult<Opened> {
        if !caller.grants.allows_op(Operation::Unwrap) {
            return Err(KmsError::Forbidden(
                "the token does not allow this operation",
            ));
        }
        let (key_id, version) = header(ciphertext)?;
        let tenant = Self::tenant_of(caller)?;
        let entry = self
            .entry_for(caller, tenant, key_id, Operation::Unwrap)
            .await?;
        require_usable(&entry, KeyPurpose::Encrypt, "decrypt")?;
        let attested = self.attested(&entry, AttestedOp::Unwrap, presented)?;
        let _in_flight = self.in_flight(
            caller,
            &entry.key,
            version,
            UseKind::of_ciphertext(UseKind::Decrypt, context),
        );
        let mut opened = self.open_with(&entry, version, ciphertext, context)?;
        let format = presented.format();
        if let Some(sealed) = for_recipient(attested, opened.plaintext.expose_secret(), format)? {
            opened.plaintext = SecretBytes::new(Vec::new());
            opened.for_recipient = Some(sealed);
        }
        Ok(opened)
    }
}
