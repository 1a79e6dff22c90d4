//! verify: check a signature against a version (default: the primary).

use coffer_crypto::{PqVerifyMode, SignatureAlgorithm};

use super::sign::SignInput;
use super::verify_cache::{Lookup, Question};
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
    /// Verifies a signature made with the spec's default algorithm.
    pub async fn verify(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> KmsResult<Verified> {
        self.verify_with(caller, reference, version, None, input, signature)
            .await
    }

    /// Verifies a signature made with `algorithm` (default: the spec's first).
    pub async fn verify_with(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        algorithm: Option<SignatureAlgorithm>,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> KmsResult<Verified> {
        let among: &[SignatureAlgorithm] = match &algorithm {
            Some(one) => std::slice::from_ref(one),
            None => &[],
        };
        self.verify_among(caller, reference, version, among, input, signature)
            .await
    }

    /// Verifies a signature made with the first of `among` the key's spec offers (the
    /// spec's default when empty); a key offering none of them is refused.
    pub async fn verify_among(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        among: &[SignatureAlgorithm],
        input: SignInput<'_>,
        signature: &[u8],
    ) -> KmsResult<Verified> {
        let result = self
            .verify_unaudited(caller, reference, version, among, input, signature)
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
        among: &[SignatureAlgorithm],
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
        let hybrid = super::pq_policy::is_hybrid(entry.key.spec);
        let hybrid_form = hybrid
            .then(|| super::pq_policy::hybrid_verify_algorithm(among, signature))
            .flatten();
        let algorithm = match hybrid_form {
            Some(form) => form,
            None => SignatureAlgorithm::choose_among(entry.key.spec, among)?,
        };
        // Every check above ran without the cache; the verdict is a pure function of
        // what the question names (`verify_cache`).
        let mode = self.pq_policy(entry.key.tenant).verify_mode.value;
        let verdicts = &self.cache.verdicts;
        let epoch = verdicts.epoch_of(entry.key.id);
        let question = Question {
            tenant: entry.key.tenant,
            key: entry.key.id,
            version: number,
            algorithm,
            mode,
            input: &input,
            signature,
        };
        let (found, id) = verdicts.get(&question);
        if let Lookup::Hit(valid) = found {
            return Ok(Verified {
                valid,
                key_id: entry.key.id,
                version: number,
            });
        }
        // A refused combination (a digest for Ed25519, a μ for ECDSA, a digest of the
        // wrong length) is the caller's error, not an invalid signature.
        let outcome = match input {
            SignInput::Message(message) => {
                let check = |mode| {
                    if hybrid && algorithm == SignatureAlgorithm::Ed25519 {
                        verifier.verify_classical_half(message, signature, mode)
                    } else {
                        verifier.verify_with(algorithm, message, signature, mode)
                    }
                };
                let outcome = check(mode);
                // Refused by the mode alone (`and`, `pq_only`) where `or` accepts: the
                // policy at work, not a forgery (`pq_policy`).
                if matches!(outcome, Err(coffer_crypto::CryptoError::InvalidSignature))
                    && mode != PqVerifyMode::Or
                    && hybrid
                    && check(PqVerifyMode::Or).is_ok()
                {
                    super::count_reject("pq_policy");
                }
                outcome
            }
            SignInput::Digest(digest) => verifier.verify_digest(algorithm, digest, signature),
            SignInput::MlDsaMu(mu) => verifier.verify_ml_dsa_external_mu(mu, signature),
        };
        let valid = match outcome {
            Ok(()) => true,
            Err(coffer_crypto::CryptoError::InvalidSignature) => false,
            Err(other) => return Err(other.into()),
        };
        if let Some(id) = id {
            verdicts.put(id, epoch, valid);
        }
        Ok(Verified {
            valid,
            key_id: entry.key.id,
            version: number,
        })
    }
}
