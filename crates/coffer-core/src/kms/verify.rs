//! verify: check a signature against a version (default: the primary).

use super::sign::SignInput;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyPurpose;
use crate::token::Operation;
use crate::usage::UseKind;

/// A verification outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// True when valid.
    pub valid: bool,
    /// Key.
    pub key_id: KeyId,
    /// Version checked.
    pub version: VersionNumber,
}

impl Kms {
    /// Verifies a signature.
    pub async fn verify(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> KmsResult<Verified> {
        let result = self
            .verify_unaudited(caller, reference, version, input, signature)
            .await;
        self.audited(caller, "verify", Some(reference), result)
            .await
    }

    /// Verifies `signature` over `input` with `version` (default: the primary). Any
    /// active or retiring version verifies; a retired one is refused by name.
    pub(super) async fn verify_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> KmsResult<Verified> {
        let entry = self.key_for(caller, Operation::Verify, reference).await?;
        require_usable(&entry, KeyPurpose::Sign, "verify")?;
        let (number, ready) = entry.ready_to_check(version)?;
        let _in_flight = self.in_flight(caller, &entry.key, number, UseKind::Verify);
        let verifier = ready
            .verifier
            .as_ref()
            .ok_or(KmsError::Internal("no verifier".into()))?;
        let valid = match input {
            SignInput::Message(message) => verifier
                .verify(message, signature, self.options.pq_verify_mode)
                .is_ok(),
            SignInput::Sha256Digest(digest) => {
                verifier.verify_sha256_digest(digest, signature).is_ok()
            }
        };
        Ok(Verified {
            valid,
            key_id: entry.key.id,
            version: number,
        })
    }
}
