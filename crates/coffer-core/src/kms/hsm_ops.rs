//! Operations with HSM-resident versions: the token signs and seals; Coffer hashes,
//! frames and checks what goes in and out.

use std::sync::Arc;

use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};
use coffer_crypto::{KeySpec, SecretBytes, SignatureAlgorithm};

use super::sign::SignInput;
use super::{Kms, KmsError, KmsResult};
use crate::hsm::{HsmInput, HsmKeyRef, KeyHsm};

impl Kms {
    fn hsm(&self) -> KmsResult<&Arc<dyn KeyHsm>> {
        Ok(self.keys.hsm()?)
    }

    /// Signs with an HSM-resident version: Ed25519 over the message, ECDSA and RSA
    /// over the digest Coffer computes (or the caller gave).
    pub(super) fn hsm_sign(
        &self,
        location: &HsmKeyRef,
        spec: KeySpec,
        algorithm: SignatureAlgorithm,
        input: SignInput<'_>,
    ) -> KmsResult<Vec<u8>> {
        let digest;
        let input = match (input, algorithm.digest()) {
            (SignInput::Message(message), None) => HsmInput::Message(message),
            (SignInput::Message(message), Some(hash)) => {
                digest = hash.hash(message);
                HsmInput::Digest(&digest)
            }
            (SignInput::Digest(given), Some(hash)) if given.len() == hash.output_len() => {
                HsmInput::Digest(given)
            }
            (SignInput::Digest(_), Some(_)) => {
                return Err(KmsError::Invalid(
                    "the digest's length is not its algorithm's".into(),
                ));
            }
            (SignInput::Digest(_) | SignInput::MlDsaMu(_), _) => {
                return Err(KmsError::Invalid(format!(
                    "a {} key signs whole messages only",
                    spec.as_str()
                )));
            }
        };
        Ok(self.hsm()?.sign(location, spec, algorithm, input)?)
    }

    /// Seals into an envelope with an HSM-resident AES version (format 0x02: the token
    /// makes the AES-256-GCM seal, with the same associated data as envelope v1).
    pub(super) fn hsm_seal(
        &self,
        location: &HsmKeyRef,
        header: EnvelopeHeader,
        binding: Binding<'_>,
        plaintext: &[u8],
    ) -> KmsResult<Vec<u8>> {
        let aad = envelope::token_associated_data(header, binding)?;
        let sealed = self.hsm()?.seal(location, &aad, plaintext)?;
        Ok(envelope::token_assemble(header, &sealed)?)
    }

    /// Opens an envelope sealed by [`Kms::hsm_seal`]; any other format is refused.
    pub(super) fn hsm_open(
        &self,
        location: &HsmKeyRef,
        ciphertext: &[u8],
        binding: Binding<'_>,
    ) -> KmsResult<SecretBytes> {
        let (header, sealed) = envelope::token_parts(ciphertext)?;
        let aad = envelope::token_associated_data(header, binding)?;
        Ok(self.hsm()?.open(location, &aad, sealed)?)
    }
}
