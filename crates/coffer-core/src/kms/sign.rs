//! sign: sign a message (or a digest, or an ML-DSA external μ) with the primary version.

use coffer_crypto::{KeyMaterial, KeySpec, SignatureAlgorithm, SigningKey};

use super::attested::Presented;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::attestation::AttestedOp;
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyPurpose;
use crate::token::Operation;
use crate::usage::UseKind;

/// What to sign.
#[derive(Debug, Clone, Copy)]
pub enum SignInput<'a> {
    /// The message itself.
    Message(&'a [u8]),
    /// A digest by the hash of the signing algorithm (ECDSA and RSA keys only).
    Digest(&'a [u8]),
    /// ML-DSA's μ, computed by the caller (AWS KMS's EXTERNAL_MU; ML-DSA keys only).
    MlDsaMu(&'a [u8]),
}

impl SignInput<'_> {
    /// Signs with `key` under `algorithm` (already checked against the key's spec).
    pub(super) fn sign(
        self,
        key: &SigningKey,
        algorithm: SignatureAlgorithm,
    ) -> coffer_crypto::Result<Vec<u8>> {
        match self {
            // A hybrid key's classical half, as its tenant's PQ policy chose (`pq_policy`).
            Self::Message(message)
                if algorithm == SignatureAlgorithm::Ed25519
                    && key.spec() == KeySpec::HybridEd25519MlDsa65 =>
            {
                key.sign_classical_half(message)
            }
            Self::Message(message) => key.sign_with(algorithm, message),
            Self::Digest(digest) => key.sign_digest(algorithm, digest),
            Self::MlDsaMu(mu) => key.sign_ml_dsa_external_mu(mu),
        }
    }
}

/// Signing is heavy (run on the bounded pool) for ML-DSA, the hybrid and RSA.
fn heavy(spec: KeySpec) -> bool {
    spec.is_rsa()
        || matches!(
            spec,
            KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 | KeySpec::HybridEd25519MlDsa65
        )
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
    /// Signs with `reference`'s primary version and the spec's default algorithm.
    pub async fn sign(
        &self,
        caller: &Caller,
        reference: &str,
        input: SignInput<'_>,
    ) -> KmsResult<Signed> {
        self.sign_with(caller, reference, None, input).await
    }

    /// Signs with `reference`'s primary version under `algorithm` (default: the spec's
    /// first, see [`SignatureAlgorithm::for_spec`]).
    pub async fn sign_with(
        &self,
        caller: &Caller,
        reference: &str,
        algorithm: Option<SignatureAlgorithm>,
        input: SignInput<'_>,
    ) -> KmsResult<Signed> {
        self.sign_attested(caller, reference, algorithm, input, None)
            .await
    }

    /// [`Kms::sign_with`] with the caller's attestation document, for keys whose
    /// policy asks for one.
    pub async fn sign_attested(
        &self,
        caller: &Caller,
        reference: &str,
        algorithm: Option<SignatureAlgorithm>,
        input: SignInput<'_>,
        attestation: Option<&[u8]>,
    ) -> KmsResult<Signed> {
        let among: &[SignatureAlgorithm] = match &algorithm {
            Some(one) => std::slice::from_ref(one),
            None => &[],
        };
        self.sign_checked(caller, reference, among, input, attestation)
            .await
    }

    /// Signs under the first of `among` the key's spec offers (the spec's default when
    /// empty); a key offering none of them is refused before anything is signed.
    pub async fn sign_among(
        &self,
        caller: &Caller,
        reference: &str,
        among: &[SignatureAlgorithm],
        input: SignInput<'_>,
    ) -> KmsResult<Signed> {
        self.sign_checked(caller, reference, among, input, None)
            .await
    }

    async fn sign_checked(
        &self,
        caller: &Caller,
        reference: &str,
        among: &[SignatureAlgorithm],
        input: SignInput<'_>,
        attestation: Option<&[u8]>,
    ) -> KmsResult<Signed> {
        let presented = Presented::new(attestation);
        let result = self
            .sign_unaudited(caller, reference, among, input, &presented)
            .await;
        let detail = presented.detail();
        self.audited_with(caller, "sign", Some(reference), detail, result)
            .await
    }

    /// Signs with `reference`'s primary version, refusing an expired or not-yet-valid
    /// one with its own error.
    pub(super) async fn sign_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        among: &[SignatureAlgorithm],
        input: SignInput<'_>,
        presented: &Presented<'_>,
    ) -> KmsResult<Signed> {
        let entry = self.key_for(caller, Operation::Sign, reference).await?;
        require_usable(&entry, KeyPurpose::Sign, "sign")?;
        self.attested(&entry, AttestedOp::Sign, presented)?;
        let (number, ready) = entry.ready_primary()?;
        let meta = entry
            .versions
            .get(&number)
            .ok_or(KmsError::Internal("primary missing".into()))?;
        let now = self.keys.clock().now();
        if now < meta.not_before || meta.not_after.is_some_and(|t| now >= t) {
            return Err(KmsError::KeyExpired(number.get()));
        }
        if let Some(location) = ready.hsm() {
            let spec = entry.key.spec;
            let algorithm = SignatureAlgorithm::choose_among(spec, among)?;
            let _in_flight = self.in_flight(caller, &entry.key, number, UseKind::Sign);
            let signature = self.hsm_sign(location, spec, algorithm, input)?;
            return Ok(Signed {
                signature,
                key_id: entry.key.id,
                version: number,
                algorithm,
            });
        }
        let Some(KeyMaterial::Signing(key)) = ready.software() else {
            return Err(KmsError::Internal(
                "sign key without signing material".into(),
            ));
        };
        let algorithm = if super::pq_policy::is_hybrid(key.spec()) {
            self.hybrid_signing_algorithm(&entry.key, among)?
        } else {
            SignatureAlgorithm::choose_among(key.spec(), among)?
        };
        let _in_flight = self.in_flight(caller, &entry.key, number, UseKind::Sign);
        let signature = if heavy(key.spec()) {
            // Off the async workers, on the bounded pool; the entry (and its material)
            // is shared, the input copied.
            let (entry, owned) = (entry.clone(), OwnedInput::from(input));
            let job: crate::offload::HeavyJob =
                Box::new(
                    move || match entry.ready.get(&number).and_then(|r| r.software()) {
                        Some(KeyMaterial::Signing(key)) => owned.borrow().sign(key, algorithm),
                        _ => Err(coffer_crypto::CryptoError::Backend("signing key vanished")),
                    },
                );
            self.offload.run(job).await?
        } else {
            input.sign(key, algorithm)?
        };
        Ok(Signed {
            signature,
            key_id: entry.key.id,
            version: number,
            algorithm,
        })
    }
}

/// A [`SignInput`] copied for the heavy-work pool.
enum OwnedInput {
    Message(Vec<u8>),
    Digest(Vec<u8>),
    MlDsaMu(Vec<u8>),
}

impl From<SignInput<'_>> for OwnedInput {
    fn from(input: SignInput<'_>) -> Self {
        match input {
            SignInput::Message(m) => Self::Message(m.to_vec()),
            SignInput::Digest(d) => Self::Digest(d.to_vec()),
            SignInput::MlDsaMu(mu) => Self::MlDsaMu(mu.to_vec()),
        }
    }
}

impl OwnedInput {
    fn borrow(&self) -> SignInput<'_> {
        match self {
            Self::Message(m) => SignInput::Message(m),
            Self::Digest(d) => SignInput::Digest(d),
            Self::MlDsaMu(mu) => SignInput::MlDsaMu(mu),
        }
    }
}
