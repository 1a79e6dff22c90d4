//! verify: check a signature against a version (default: the primary).

use super::cache::count_use;
use super::sign::SignInput;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyPurpose;
use crate::lifecycle::VersionState;
use crate::token::Operation;

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
        let number = match version {
            Some(n) => VersionNumber::new(n).map_err(|e| KmsError::Invalid(e.to_string()))?,
            None => entry
                .primary
                .ok_or(KmsError::Internal("key has no primary version".into()))?,
        };
        let Some(ready) = entry.ready.get(&number) else {
            return Err(match entry.versions.get(&number).map(|v| v.state) {
                Some(VersionState::Retired | VersionState::Destroyed) => {
                    KmsError::VersionRetired(number.get())
                }
                Some(_) => KmsError::Conflict(format!("key version {number} is not active")),
                None => KmsError::NotFound("key version"),
            });
        };
        let _in_flight = self.in_flight(caller, entry.key.id, number);
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
        count_use(ready);
        Ok(Verified {
            valid,
            key_id: entry.key.id,
            version: number,
        })
    }
}
