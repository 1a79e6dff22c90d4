//! mac and verify-mac: HMAC-SHA256 with `mac` keys.

use coffer_crypto::KeyMaterial;

use super::attested::Presented;
use super::verify::Verified;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::attestation::AttestedOp;
use crate::key::KeyPurpose;
use crate::token::Operation;

impl Kms {
    /// Computes an HMAC-SHA256 tag.
    pub async fn mac(
        &self,
        caller: &Caller,
        reference: &str,
        message: &[u8],
    ) -> KmsResult<(Vec<u8>, Verified)> {
        self.mac_attested(caller, reference, message, None).await
    }

    /// [`Kms::mac`] with the caller's attestation document, for keys whose policy asks
    /// for one.
    pub async fn mac_attested(
        &self,
        caller: &Caller,
        reference: &str,
        message: &[u8],
        attestation: Option<&[u8]>,
    ) -> KmsResult<(Vec<u8>, Verified)> {
        let presented = Presented::new(attestation);
        let result = self
            .mac_unaudited(caller, reference, message, &presented)
            .await;
        let detail = presented.detail();
        self.audited_with(caller, "mac", Some(reference), detail, result)
            .await
    }

    /// The HMAC-SHA256 tag of `message` under the primary version.
    pub(super) async fn mac_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        message: &[u8],
        presented: &Presented<'_>,
    ) -> KmsResult<(Vec<u8>, Verified)> {
        let entry = self.key_for(caller, Operation::Mac, reference).await?;
        require_usable(&entry, KeyPurpose::Mac, "compute a MAC")?;
        self.attested(&entry, AttestedOp::Mac, presented)?;
        let (number, ready) = entry.ready_primary()?;
        let Some(KeyMaterial::HmacSha256(key)) = ready.software() else {
            return Err(KmsError::Internal("mac key without HMAC material".into()));
        };
        let who = Verified {
            valid: true,
            key_id: entry.key.id,
            version: number,
        };
        Ok((key.sign(message).to_vec(), who))
    }

    /// Checks an HMAC-SHA256 tag.
    pub async fn verify_mac(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        message: &[u8],
        tag: &[u8],
    ) -> KmsResult<Verified> {
        let result = self
            .verify_mac_unaudited(caller, reference, version, message, tag)
            .await;
        self.audited(caller, "verify_mac", Some(reference), result)
            .await
    }

    /// Checks a tag with `version` (default: the primary).
    pub(super) async fn verify_mac_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        message: &[u8],
        tag: &[u8],
    ) -> KmsResult<Verified> {
        let entry = self
            .key_for(caller, Operation::VerifyMac, reference)
            .await?;
        require_usable(&entry, KeyPurpose::Mac, "verify a MAC")?;
        let (number, ready) = entry.ready_to_check(version)?;
        let Some(KeyMaterial::HmacSha256(key)) = ready.software() else {
            return Err(KmsError::Internal("mac key without HMAC material".into()));
        };
        Ok(Verified {
            valid: key.verify(message, tag).is_ok(),
            key_id: entry.key.id,
            version: number,
        })
    }
}
