//! Signing and verification: Ed25519, ECDSA (P-256, P-384, P-521, secp256k1), RSA
//! (PSS and PKCS #1 v1.5), ML-DSA-44/65/87 and the composite ML-DSA-65 + Ed25519 hybrid.
//!
//! [`SigningKey`] holds parsed private keys ready to sign (no per-call parsing on the hot
//! path); [`VerifyingKey`] holds parsed public keys. Both come from
//! [`crate::KeyMaterial`] / [`crate::PublicKey`], never from loose bytes.

mod algorithm;
mod composite;
mod ecdsa;
mod ed25519;
mod mldsa;
pub(crate) mod mldsa_ffi;
mod rsa;
mod verifier;

pub use algorithm::{DigestAlgorithm, SignatureAlgorithm};
pub use composite::{COMPOSITE_LABEL, COMPOSITE_PREFIX};
pub use mldsa_ffi::{MAX_CONTEXT_LEN, MU_LEN};
pub use rsa::EncryptionAlgorithm;
pub use verifier::VerifyingKey;

use std::fmt;
use std::str::FromStr;

use crate::secret::SecretBytes;
use crate::spec::KeySpec;
use crate::{CryptoError, PublicKey, Result};

pub(crate) use composite::CompositeKey;
pub(crate) use ecdsa::{Curve, EcdsaKey};
pub(crate) use ed25519::Ed25519Key;
pub(crate) use mldsa::{MlDsaKey, params as ml_dsa_params};
pub(crate) use rsa::{RsaKey, encrypt as rsa_oaep_encrypt};

/// How a hybrid (composite) signature is accepted; seed 002's `KMS_PQ_VERIFY_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PqVerifyMode {
    /// Both halves must verify: the composite construction's own rule, and the default.
    #[default]
    And,
    /// Either half suffices: a migration escape hatch while verifiers roll out.
    Or,
    /// Only the ML-DSA half is checked.
    PqOnly,
}

impl PqVerifyMode {
    /// The configuration spelling (`and`, `or`, `pq_only`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::And => "and",
            Self::Or => "or",
            Self::PqOnly => "pq_only",
        }
    }
}

impl FromStr for PqVerifyMode {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "and" => Ok(Self::And),
            "or" => Ok(Self::Or),
            "pq_only" => Ok(Self::PqOnly),
            _ => Err(CryptoError::malformed(
                "PQ verify mode",
                "expected and, or or pq_only",
            )),
        }
    }
}

/// A private signing key, parsed and ready. Never printed, zeroized by its backend on drop.
pub enum SigningKey {
    /// Ed25519.
    Ed25519(Ed25519Key),
    /// ECDSA on one of the supported curves.
    Ecdsa(EcdsaKey),
    /// ML-DSA-44, -65 or -87.
    MlDsa(MlDsaKey),
    /// Composite ML-DSA-65 + Ed25519.
    Composite(CompositeKey),
    /// RSA (signs, or decrypts OAEP, as its key's purpose allows).
    Rsa(RsaKey),
}

impl SigningKey {
    /// A new key of `spec` from the OS random generator.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        if let Some(curve) = Curve::of(spec) {
            return Ok(Self::Ecdsa(EcdsaKey::generate(curve)?));
        }
        match spec {
            KeySpec::Ed25519 => Ok(Self::Ed25519(Ed25519Key::generate()?)),
            KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => {
                Ok(Self::MlDsa(MlDsaKey::generate(spec)?))
            }
            KeySpec::HybridEd25519MlDsa65 => Ok(Self::Composite(CompositeKey::generate()?)),
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                Ok(Self::Rsa(RsaKey::generate(spec)?))
            }
            _ => Err(CryptoError::WrongKeyType {
                operation: "sign",
                spec: spec.as_str(),
            }),
        }
    }

    /// The private key as PKCS #8 DER (RFC 5208), for keys handed to a caller (AWS
    /// KMS's data key pairs): ECDSA and RSA only.
    pub fn to_pkcs8(&self) -> Result<SecretBytes> {
        match self {
            Self::Ecdsa(key) => key.to_pkcs8(),
            Self::Rsa(key) => key.to_pkcs8(),
            other => Err(CryptoError::WrongKeyType {
                operation: "export as PKCS #8",
                spec: other.spec().as_str(),
            }),
        }
    }

    /// Loads a PKCS #8 private key of `spec` (ECDSA or RSA), as [`Self::to_pkcs8`]
    /// writes it; a key of another curve or size is refused.
    pub fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<Self> {
        if let Some(curve) = Curve::of(spec) {
            return Ok(Self::Ecdsa(EcdsaKey::from_pkcs8(curve, der)?));
        }
        match spec {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                Ok(Self::Rsa(RsaKey::from_stored(spec, der)?))
            }
            _ => Err(CryptoError::WrongKeyType {
                operation: "load from PKCS #8",
                spec: spec.as_str(),
            }),
        }
    }

    /// The key's spec.
    pub fn spec(&self) -> KeySpec {
        match self {
            Self::Ed25519(_) => KeySpec::Ed25519,
            Self::Ecdsa(k) => k.spec(),
            Self::MlDsa(k) => k.spec(),
            Self::Composite(_) => KeySpec::HybridEd25519MlDsa65,
            Self::Rsa(k) => k.spec(),
        }
    }

    /// The algorithm its signatures use by default (the only one, except for RSA).
    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            Self::Ecdsa(k) => k.algorithm(),
            // Every signing spec offers at least one algorithm.
            other => SignatureAlgorithm::for_spec(other.spec())
                .first()
                .copied()
                .unwrap_or(SignatureAlgorithm::Ed25519),
        }
    }

    /// Signs `message` with the default algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.sign_with(self.algorithm(), message)
    }

    /// Signs `message` with `algorithm`, which the key's spec must offer.
    pub fn sign_with(&self, algorithm: SignatureAlgorithm, message: &[u8]) -> Result<Vec<u8>> {
        let algorithm = SignatureAlgorithm::choose(self.spec(), Some(algorithm))?;
        match self {
            Self::Ed25519(k) => Ok(k.sign(message)),
            Self::Ecdsa(k) => k.sign(message),
            Self::MlDsa(k) => k.sign(&[], message),
            Self::Composite(k) => k.sign(&[], message),
            Self::Rsa(k) => k.sign(algorithm, message),
        }
    }

    /// A hybrid key's classical half alone: a plain Ed25519 signature over `message`
    /// (named [`SignatureAlgorithm::Ed25519`]), for verifiers that are not PQ-ready. Only
    /// composite keys have one; a message beginning with the composite prefix is
    /// refused (`sign/composite.rs`).
    pub fn sign_classical_half(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::Composite(k) => k.sign_classical_half(message),
            other => Err(CryptoError::WrongKeyType {
                operation: "sign with the classical half",
                spec: other.spec().as_str(),
            }),
        }
    }

    /// Signs a precomputed digest of the hash `algorithm` names. Only ECDSA and RSA sign
    /// digests; the other algorithms sign whole messages by design.
    pub fn sign_digest(&self, algorithm: SignatureAlgorithm, digest: &[u8]) -> Result<Vec<u8>> {
        let algorithm = SignatureAlgorithm::choose(self.spec(), Some(algorithm))?;
        match self {
            Self::Ecdsa(k) => k.sign_digest(digest),
            Self::Rsa(k) => k.sign_digest(algorithm, digest),
            other => Err(CryptoError::WrongKeyType {
                operation: "sign a digest",
                spec: other.spec().as_str(),
            }),
        }
    }

    /// Signs a precomputed SHA-256 digest (ECDSA P-256 and secp256k1, RSA with its
    /// default algorithm).
    pub fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        let algorithm = self.algorithm();
        if algorithm.digest() != Some(DigestAlgorithm::Sha256) {
            return Err(CryptoError::WrongKeyType {
                operation: "sign a SHA-256 digest",
                spec: self.spec().as_str(),
            });
        }
        self.sign_digest(algorithm, digest)
    }

    /// RSA-OAEP decryption (RSA keys only). Any failure is [`CryptoError::DecryptFailed`].
    pub fn decrypt(
        &self,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<SecretBytes> {
        match self {
            Self::Rsa(k) => k.decrypt(algorithm, ciphertext),
            other => Err(CryptoError::WrongKeyType {
                operation: "decrypt",
                spec: other.spec().as_str(),
            }),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(k) => PublicKey::Ed25519(k.public_key()),
            // The backend's own point and encodings are always well-formed for the spec.
            Self::Ecdsa(k) => PublicKey::ec_unchecked(k.spec(), k.public_point()),
            Self::MlDsa(k) => PublicKey::ml_dsa_unchecked(k.spec(), k.public_key()),
            Self::Composite(k) => k.public_key(),
            Self::Rsa(k) => PublicKey::Rsa {
                spec: k.spec(),
                der: k.public_key_der(),
            },
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, [secret elided])", self.spec().as_str())
    }
}
