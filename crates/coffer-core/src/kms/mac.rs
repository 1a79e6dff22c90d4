//! mac and verify-mac: HMAC (SHA-224, SHA-256, SHA-384 or SHA-512, as the key's spec
//! says) with `mac` keys.

use coffer_crypto::{KeyMaterial, KeySpec};

use super::attested::Presented;
use super::cache::CachedKey;
use super::verify::Verified;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::attestation::AttestedOp;
use crate::key::KeyPurpose;
use crate::token::Operation;

/// Refuses a key of another HMAC spec than `expected` (when the caller names one),
/// before any MAC is computed or checked.
fn require_spec(
    entry: &CachedKey,
    expected: Option<KeySpec>,
    operation: &'static str,
) -> KmsResult<()> {
    match expected {
        Some(spec) if spec != entry.key.spec => Err(KmsError::WrongPurpose {
            purpose: entry.key.spec.as_str(),
            operation,
        }),
        _ => Ok(()),
    }
}

impl Kms {
    /// Computes an HMAC tag with the key's hash.
    pub async fn mac(
        &self,
        caller: &Caller,
        reference: &str,
        message: &[u8],
    ) -> KmsResult<(Vec<u8>, Verified)> {
        self.mac_checked(caller, reference, None, message, None)
            .await
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
        self.mac_checked(caller, reference, None, message, attestation)
            .await
    }

    /// Computes an HMAC tag, refusing a key of another spec than `expected`.
    pub async fn mac_as(
        &self,
        caller: &Caller,
        reference: &str,
        expected: Option<KeySpec>,
        message: &[u8],
    ) -> KmsResult<(Vec<u8>, Verified)> {
        self.mac_checked(caller, reference, expected, message, None)
            .await
    }

    async fn mac_checked(
        &self,
        caller: &Caller,
        reference: &str,
        expected: Option<KeySpec>,
        message: &[u8],
        attestation: Option<&[u8]>,
    ) -> KmsResult<(Vec<u8>, Verified)> {
        let presented = Presented::new(attestation);
        let result = self
            .mac_unaudited(caller, reference, expected, message, &presented)
            .await;
        let detail = presented.detail();
        self.audited_with(caller, "mac", Some(reference), detail, result)
            .await
    }

    /// The HMAC tag of `message` under the primary version.
    pub(super) async fn mac_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        expected: Option<KeySpec>,
        message: &[u8],
        presented: &Presented<'_>,
    ) -> KmsResult<(Vec<u8>, Verified)> {
        let entry = self.key_for(caller, Operation::Mac, reference).await?;
        require_usable(&entry, KeyPurpose::Mac, "compute a MAC")?;
        require_spec(&entry, expected, "compute a MAC with this algorithm")?;
        self.attested(&entry, AttestedOp::Mac, presented)?;
        let (number, ready) = entry.ready_primary()?;
        let Some(KeyMaterial::Hmac(key)) = ready.software() else {
            return Err(KmsError::Internal("mac key without HMAC material".into()));
        };
        let who = Verified {
            valid: true,
            key_id: entry.key.id,
            version: number,
        };
        Ok((key.sign(message), who))
    }

    /// Checks an HMAC tag.
    pub async fn verify_mac(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        message: &[u8],
        tag: &[u8],
    ) -> KmsResult<Verified> {
        self.verify_mac_as(caller, reference, None, version, message, tag)
            .await
    }

    /// Checks an HMAC tag, refusing a key of another spec than `expected`.
    pub async fn verify_mac_as(
        &self,
        caller: &Caller,
        reference: &str,
        expected: Option<KeySpec>,
        version: Option<u32>,
        message: &[u8],
        tag: &[u8],
    ) -> KmsResult<Verified> {
        let result = self
            .verify_mac_unaudited(caller, reference, expected, version, message, tag)
            .await;
        self.audited(caller, "verify_mac", Some(reference), result)
            .await
    }

    /// Checks a tag with `version` (default: the primary).
    pub(super) async fn verify_mac_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        expected: Option<KeySpec>,
        version: Option<u32>,
        message: &[u8],
        tag: &[u8],
    ) -> KmsResult<Verified> {
        let entry = self
            .key_for(caller, Operation::VerifyMac, reference)
            .await?;
        require_usable(&entry, KeyPurpose::Mac, "verify a MAC")?;
        require_spec(&entry, expected, "verify a MAC with this algorithm")?;
        let (number, ready) = entry.ready_to_check(version)?;
        let Some(KeyMaterial::Hmac(key)) = ready.software() else {
            return Err(KmsError::Internal("mac key without HMAC material".into()));
        };
        Ok(Verified {
            valid: key.verify(message, tag).is_ok(),
            key_id: entry.key.id,
            version: number,
        })
    }
}
