//! sign: sign a message (or an ECDSA SHA-256 digest) with the primary version.

use coffer_crypto::{KeyMaterial, KeySpec, SignatureAlgorithm};

use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyPurpose;
use crate::token::Operation;
use crate::usage::UseKind;

/// What to sign.
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    /// The message itself.
    Message(&'a [u8]),
    /// A SHA-256 digest (ECDSA P-256 keys only).
    Sha256Digest(&'a [u8; 32]),
}

/// A signature and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The signature bytes.
    pub signature: Vec<u8>,
    /// Key.
    pub key_id: KeyId,
    /// Version.
    pub version: VersionNumber,
    /// Algorithm.
    pub algorithm: SignatureAlgorithm,
}

impl Kms {
    /// Signs with `reference`'s primary version.
    pub async fn sign(
        &self,
        caller: &Caller,
        reference: &str,
        input: SignInput<'_>,
    ) -> KmsResult<Signed> {
        let result = self.sign_unaudited(caller, reference, input).await;
        self.audited(caller, "sign", Some(reference), result).await
    }

    /// Signs with `reference`'s primary version, refusing an expired or not-yet-valid
    /// one with its own error.
    pub(super) async fn sign_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        input: SignInput<'_>,
    ) -> KmsResult<Signed> {
        let entry = self.key_for(caller, Operation::Sign, reference).await?;
        require_usable(&entry, KeyPurpose::Sign, "sign")?;
        let (number, ready) = entry.ready_primary()?;
        let meta = entry
            .versions
            .get(&number)
            .ok_or(KmsError::Internal("primary missing".into()))?;
        let now = self.keys.clock().now();
        if now < meta.not_before || meta.not_after.is_some_and(|t| now >= t) {
            return Err(KmsError::KeyExpired(number.get()));
        }
        let KeyMaterial::Signing(key) = &ready.material else {
            return Err(KmsError::Internal(
                "sign key without signing material".into(),
            ));
        };
        let _in_flight = self.in_flight(caller, &entry.key, number, UseKind::Sign);
        let heavy = matches!(key.spec(), KeySpec::MlDsa65 | KeySpec::HybridEd25519MlDsa65);
        let signature = match input {
            SignInput::Message(message) if heavy => {
                // Off the async workers, on the bounded pool; the entry (and its
                // material) is shared, the message copied.
                let (entry, message) = (entry.clone(), message.to_vec());
                let job: crate::offload::HeavyJob =
                    Box::new(
                        move || match entry.ready.get(&number).map(|r| &r.material) {
                            Some(KeyMaterial::Signing(key)) => key.sign(&message),
                            _ => Err(coffer_crypto::CryptoError::Backend("signing key vanished")),
                        },
                    );
                self.offload.run(job).await?
            }
            SignInput::Message(message) => key.sign(message)?,
            SignInput::Sha256Digest(digest) => key.sign_sha256_digest(digest)?,
        };
        Ok(Signed {
            signature,
            key_id: entry.key.id,
            version: number,
            algorithm: key.algorithm(),
        })
    }
}
