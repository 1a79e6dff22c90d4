//! datakey: a fresh random data key, returned wrapped (and, unless declined, in the
//! clear) for local envelope encryption.

use coffer_crypto::{EncryptionContext, SecretBytes};

use super::attested::Presented;
use super::wrap::Sealed;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::attestation::AttestedOp;
use crate::audit::Actor;
use crate::key::KeyPurpose;
use crate::token::Operation;
use crate::usage::UseKind;

/// Data key lengths accepted: AWS KMS's range, so either front takes the same.
pub const DATAKEY_BYTES: std::ops::RangeInclusive<usize> = 1..=1024;

impl Kms {
    /// A tracked data key's current envelope (rotations rewrap it). Audited: it hands
    /// out a wrapped data key.
    pub async fn tracked(
        &self,
        caller: &Caller,
        track_id: &str,
    ) -> KmsResult<crate::store::TrackedKey> {
        let result = self.tracked_unaudited(caller, track_id).await;
        self.audited(caller, "datakey.tracked", None, result).await
    }

    async fn tracked_unaudited(
        &self,
        caller: &Caller,
        track_id: &str,
    ) -> KmsResult<crate::store::TrackedKey> {
        if !caller.grants.allows_op(Operation::Unwrap) {
            return Err(KmsError::Forbidden(
                "the token does not allow this operation",
            ));
        }
        let tenant = Self::tenant_of(caller)?;
        let tracked = self
            .keys
            .store()
            .get_tracked(tenant, track_id)
            .await?
            .ok_or(KmsError::NotFound("tracked data key"))?;
        // A track id under a key outside the token's scope answers as an absent one,
        // so a scoped token cannot learn which track ids exist.
        self.entry_for(caller, tenant, tracked.key, Operation::Unwrap)
            .await
            .map_err(|e| match e {
                KmsError::NotFound(_) => KmsError::NotFound("tracked data key"),
                other => other,
            })?;
        Ok(tracked)
    }

    /// Generates a data key and wraps it under `reference`.
    pub async fn datakey(
        &self,
        caller: &Caller,
        reference: &str,
        bytes: usize,
        context: &EncryptionContext,
        track_id: Option<&str>,
    ) -> KmsResult<(SecretBytes, Sealed)> {
        self.datakey_attested(caller, reference, bytes, context, track_id, None)
            .await
            .map(|(key, sealed, _)| (key, sealed))
    }

    /// [`Kms::datakey`] with the caller's attestation document, for keys whose policy
    /// asks for one. When the document carries a public key, the data key comes back
    /// encrypted to it (the third value) and the first value is empty.
    pub async fn datakey_attested(
        &self,
        caller: &Caller,
        reference: &str,
        bytes: usize,
        context: &EncryptionContext,
        track_id: Option<&str>,
        attestation: Option<&[u8]>,
    ) -> KmsResult<(SecretBytes, Sealed, Option<Vec<u8>>)> {
        let presented = Presented::new(attestation);
        self.datakey_presented(caller, reference, bytes, context, track_id, presented)
            .await
    }

    /// [`Kms::datakey`] for a request presenting `presented` (the AWS front's
    /// `Recipient`: [`Presented::aws_recipient`]).
    pub async fn datakey_presented(
        &self,
        caller: &Caller,
        reference: &str,
        bytes: usize,
        context: &EncryptionContext,
        track_id: Option<&str>,
        presented: Presented<'_>,
    ) -> KmsResult<(SecretBytes, Sealed, Option<Vec<u8>>)> {
        let actor = caller.actor("datakey");
        let result = self
            .datakey_unaudited(
                caller, reference, bytes, context, track_id, &actor, &presented,
            )
            .await;
        match track_id {
            // Registering the data key is a change: its entry committed with it.
            Some(_) if result.is_ok() => result,
            _ => {
                let detail = presented.detail();
                self.audited_with(caller, "datakey", Some(reference), detail, result)
                    .await
            }
        }
    }

    /// Generates a `bytes`-long data key and wraps it under `reference`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's fields, its actor and its attestation, each used once"
    )]
    pub(super) async fn datakey_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        bytes: usize,
        context: &EncryptionContext,
        track_id: Option<&str>,
        actor: &Actor,
        presented: &Presented<'_>,
    ) -> KmsResult<(SecretBytes, Sealed, Option<Vec<u8>>)> {
        let entry = self.key_for(caller, Operation::Datakey, reference).await?;
        if !DATAKEY_BYTES.contains(&bytes) {
            return Err(KmsError::Invalid(format!(
                "bytes must be 1 to 1024, not {bytes}"
            )));
        }
        require_usable(&entry, KeyPurpose::Encrypt, "encrypt")?;
        let attested = self.attested(&entry, AttestedOp::Datakey, presented)?;
        // Only a tracked data key is rewrapped by rotations; any other stays with the
        // caller, sealed under this version.
        let kind = match track_id {
            Some(_) => UseKind::TrackedDatakey,
            None => UseKind::Encrypt,
        };
        let _in_flight = entry
            .primary
            .map(|v| self.in_flight(caller, &entry.key, v, kind));
        let key = SecretBytes::random(bytes)?;
        let sealed = self.seal_primary(&entry, key.expose_secret(), context)?;
        // Encrypted to the attested workload before anything is registered, so a key
        // that cannot be is neither tracked nor answered.
        let for_recipient =
            super::unwrap::for_recipient(attested, key.expose_secret(), presented.format())?;
        if let Some(track_id) = track_id {
            super::wrap_tracked::check_track_id(track_id)?;
            let tracked = super::wrap_tracked::tracked_row(&entry, track_id, &sealed, context)?;
            let audit = actor.entry(
                Some(entry.key.tenant),
                (Some(entry.key.id), Some(sealed.version)),
                self.keys.clock().now(),
                presented.detail_with(Some(format!("tracked as {track_id}"))),
            );
            self.keys
                .store()
                .track_key(&tracked, &crate::store::Record::audit(audit))
                .await?;
        }
        match for_recipient {
            Some(ciphertext) => Ok((SecretBytes::new(Vec::new()), sealed, Some(ciphertext))),
            None => Ok((key, sealed, None)),
        }
    }
}
