//! [`VerifyingKey`]: a public key parsed once, ready to verify many signatures.

use std::fmt;

use aws_lc_rs::signature::{ED25519, ParsedPublicKey};

use super::mldsa_ffi::{MU_LEN, MlDsaHandle};
use super::{Curve, PqVerifyMode, SignatureAlgorithm, composite, ecdsa, ml_dsa_params};
use crate::{CryptoError, PublicKey, Result};

/// A parsed public key, ready to verify.
pub struct VerifyingKey {
    inner: VerifierInner,
    public: PublicKey,
}

enum VerifierInner {
    Ed25519(ParsedPublicKey),
    Ecdsa(ParsedPublicKey),
    MlDsa(MlDsaHandle),
    Composite(composite::CompositeVerifier),
    /// RSA verification parameters name the algorithm, so the SPKI is parsed per call.
    Rsa(Vec<u8>),
}

impl VerifyingKey {
    /// Parses `public` once so each verification skips decoding.
    pub fn new(public: PublicKey) -> Result<Self> {
        let spec = public.spec();
        let inner = match &public {
            PublicKey::Ed25519(pk) => VerifierInner::Ed25519(
                ParsedPublicKey::new(&ED25519, pk)
                    .map_err(|_| CryptoError::KeyRejected("Ed25519 public key"))?,
            ),
            PublicKey::EcdsaP256(_)
            | PublicKey::EcdsaP384(_)
            | PublicKey::EcdsaP521(_)
            | PublicKey::EcdsaSecp256k1(_) => {
                let curve = Curve::of(spec).ok_or(CryptoError::KeyRejected("EC public key"))?;
                VerifierInner::Ecdsa(
                    ParsedPublicKey::new(curve.verifying, public.raw())
                        .map_err(|_| CryptoError::KeyRejected("EC public key"))?,
                )
            }
            PublicKey::MlDsa44(pk) | PublicKey::MlDsa65(pk) | PublicKey::MlDsa87(pk) => {
                let params = ml_dsa_params(spec).ok_or(CryptoError::KeyRejected("ML-DSA"))?;
                VerifierInner::MlDsa(MlDsaHandle::from_public_key(params, pk)?)
            }
            PublicKey::Composite { ml_dsa, ed25519 } => {
                VerifierInner::Composite(composite::CompositeVerifier::new(ml_dsa, ed25519)?)
            }
            PublicKey::Rsa { .. } => {
                let spki = public.to_spki_der();
                // Parse now so a bad key fails here, not at the first verification.
                ParsedPublicKey::new(&aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256, &spki)
                    .map_err(|_| CryptoError::KeyRejected("RSA public key"))?;
                VerifierInner::Rsa(spki)
            }
        };
        Ok(Self { inner, public })
    }

    /// The public key this verifier checks against.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Verifies `signature` over `message` with the spec's default algorithm. `mode`
    /// applies to composite keys only.
    pub fn verify(&self, message: &[u8], signature: &[u8], mode: PqVerifyMode) -> Result<()> {
        let algorithm = SignatureAlgorithm::choose(self.public.spec(), None)?;
        self.verify_with(algorithm, message, signature, mode)
    }

    /// Verifies with `algorithm`, which the key's spec must offer.
    pub fn verify_with(
        &self,
        algorithm: SignatureAlgorithm,
        message: &[u8],
        signature: &[u8],
        mode: PqVerifyMode,
    ) -> Result<()> {
        let algorithm = SignatureAlgorithm::choose(self.public.spec(), Some(algorithm))?;
        let valid = match &self.inner {
            VerifierInner::Ed25519(key) | VerifierInner::Ecdsa(key) => {
                key.verify_sig(message, signature).is_ok()
            }
            VerifierInner::MlDsa(key) => key.verify(&[], message, signature),
            VerifierInner::Composite(key) => key.verify(&[], message, signature, mode),
            VerifierInner::Rsa(spki) => rsa_key(spki, algorithm)?
                .verify_sig(message, signature)
                .is_ok(),
        };
        verdict(valid)
    }

    /// Verifies a hybrid key's classical-half signature
    /// ([`SigningKey::sign_classical_half`](crate::SigningKey::sign_classical_half)):
    /// valid under [`PqVerifyMode::Or`] only, as it carries no ML-DSA half. Only
    /// composite keys have one.
    pub fn verify_classical_half(
        &self,
        message: &[u8],
        signature: &[u8],
        mode: PqVerifyMode,
    ) -> Result<()> {
        match &self.inner {
            VerifierInner::Composite(key) => {
                verdict(key.verify_classical_half(message, signature, mode))
            }
            _ => Err(CryptoError::WrongKeyType {
                operation: "verify with the classical half",
                spec: self.public.spec().as_str(),
            }),
        }
    }

    /// Verifies a signature over a precomputed digest of `algorithm`'s hash (ECDSA and
    /// RSA only).
    pub fn verify_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        let algorithm = SignatureAlgorithm::choose(self.public.spec(), Some(algorithm))?;
        let hash = algorithm.digest();
        match (&self.inner, hash) {
            (VerifierInner::Ecdsa(key), Some(hash)) => {
                ecdsa::verify_digest(key, hash, digest, signature)
            }
            (VerifierInner::Rsa(spki), Some(hash)) => {
                ecdsa::verify_digest(&rsa_key(spki, algorithm)?, hash, digest, signature)
            }
            _ => Err(CryptoError::WrongKeyType {
                operation: "verify a digest",
                spec: self.public.spec().as_str(),
            }),
        }
    }

    /// Verifies a signature over a precomputed SHA-256 digest with the spec's default
    /// algorithm (ECDSA P-256 and secp256k1; RSA, whose default hashes with SHA-256).
    pub fn verify_sha256_digest(&self, digest: &[u8; 32], signature: &[u8]) -> Result<()> {
        let algorithm = SignatureAlgorithm::choose(self.public.spec(), None)?;
        if algorithm.digest() != Some(super::DigestAlgorithm::Sha256) {
            return Err(CryptoError::WrongKeyType {
                operation: "verify a SHA-256 digest",
                spec: self.public.spec().as_str(),
            });
        }
        self.verify_digest(algorithm, digest, signature)
    }

    /// Verifies an ML-DSA signature made with a FIPS 204 context string.
    pub fn verify_ml_dsa_with_context(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        match &self.inner {
            VerifierInner::MlDsa(key) => verdict(key.verify(context, message, signature)),
            _ => Err(CryptoError::WrongKeyType {
                operation: "verify with an ML-DSA context",
                spec: self.public.spec().as_str(),
            }),
        }
    }

    /// Verifies an ML-DSA signature over an external μ (64 bytes).
    pub fn verify_ml_dsa_external_mu(&self, mu: &[u8], signature: &[u8]) -> Result<()> {
        let mu: &[u8; MU_LEN] = mu
            .try_into()
            .map_err(|_| CryptoError::malformed("ML-DSA mu", "must be 64 bytes"))?;
        match &self.inner {
            VerifierInner::MlDsa(key) => verdict(key.verify_mu(mu, signature)),
            _ => Err(CryptoError::WrongKeyType {
                operation: "verify an external mu",
                spec: self.public.spec().as_str(),
            }),
        }
    }
}

fn verdict(valid: bool) -> Result<()> {
    if valid {
        Ok(())
    } else {
        Err(CryptoError::InvalidSignature)
    }
}

fn rsa_key(spki: &[u8], algorithm: SignatureAlgorithm) -> Result<ParsedPublicKey> {
    let params = algorithm
        .rsa_parameters()
        .ok_or(CryptoError::KeyRejected("RSA algorithm"))?;
    ParsedPublicKey::new(params, spki).map_err(|_| CryptoError::KeyRejected("RSA public key"))
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.public.spec().as_str())
    }
}
