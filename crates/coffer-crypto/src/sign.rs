//! Signing and verification: Ed25519, ECDSA P-256, ML-DSA-65 and the composite
//! ML-DSA-65 + Ed25519 hybrid.
//!
//! [`SigningKey`] holds parsed private keys ready to sign (no per-call parsing on the hot
//! path); [`VerifyingKey`] holds parsed public keys. Both come from
//! [`crate::KeyMaterial`] / [`crate::PublicKey`], never from loose bytes.

mod composite;
mod ecdsa;
mod ed25519;
mod mldsa;
pub(crate) mod mldsa_ffi;

pub use composite::{COMPOSITE_LABEL, COMPOSITE_PREFIX};
pub use mldsa_ffi::MAX_CONTEXT_LEN;

use std::fmt;
use std::str::FromStr;

use crate::spec::KeySpec;
use crate::{CryptoError, PublicKey, Result};

pub(crate) use composite::CompositeKey;
pub(crate) use ecdsa::EcdsaP256Key;
pub(crate) use ed25519::Ed25519Key;
pub(crate) use mldsa::MlDsa65Key;

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

/// The algorithm a signature was made with, as named in API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// Ed25519 (RFC 8032), raw 64-byte signatures.
    Ed25519,
    /// ECDSA over P-256 with SHA-256, DER-encoded signatures.
    EcdsaP256Sha256,
    /// ML-DSA-65 (FIPS 204), raw 3309-byte signatures, empty context.
    MlDsa65,
    /// Composite ML-DSA-65 + Ed25519 with SHA-512 pre-hash (draft-ietf-lamps-pq-composite-sigs).
    MlDsa65Ed25519,
}

impl SignatureAlgorithm {
    /// Stable name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::MlDsa65 => "ml-dsa-65",
            Self::MlDsa65Ed25519 => "ml-dsa-65-ed25519-sha512",
        }
    }
}

/// A private signing key, parsed and ready. Never printed, zeroized by its backend on drop.
pub enum SigningKey {
    /// Ed25519.
    Ed25519(Ed25519Key),
    /// ECDSA P-256.
    EcdsaP256(EcdsaP256Key),
    /// ML-DSA-65.
    MlDsa65(MlDsa65Key),
    /// Composite ML-DSA-65 + Ed25519.
    Composite(CompositeKey),
}

impl SigningKey {
    /// A new key of `spec` from the OS random generator.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        match spec {
            KeySpec::Ed25519 => Ok(Self::Ed25519(Ed25519Key::generate()?)),
            KeySpec::EcdsaP256 => Ok(Self::EcdsaP256(EcdsaP256Key::generate()?)),
            KeySpec::MlDsa65 => Ok(Self::MlDsa65(MlDsa65Key::generate()?)),
            KeySpec::HybridEd25519MlDsa65 => Ok(Self::Composite(CompositeKey::generate()?)),
            KeySpec::Aes256 | KeySpec::HmacSha256 => Err(CryptoError::WrongKeyType {
                operation: "sign",
                spec: spec.as_str(),
            }),
        }
    }

    /// The key's spec.
    pub fn spec(&self) -> KeySpec {
        match self {
            Self::Ed25519(_) => KeySpec::Ed25519,
            Self::EcdsaP256(_) => KeySpec::EcdsaP256,
            Self::MlDsa65(_) => KeySpec::MlDsa65,
            Self::Composite(_) => KeySpec::HybridEd25519MlDsa65,
        }
    }

    /// The algorithm its signatures use.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        match self {
            Self::Ed25519(_) => SignatureAlgorithm::Ed25519,
            Self::EcdsaP256(_) => SignatureAlgorithm::EcdsaP256Sha256,
            Self::MlDsa65(_) => SignatureAlgorithm::MlDsa65,
            Self::Composite(_) => SignatureAlgorithm::MlDsa65Ed25519,
        }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::Ed25519(k) => Ok(k.sign(message)),
            Self::EcdsaP256(k) => k.sign(message),
            Self::MlDsa65(k) => k.sign(&[], message),
            Self::Composite(k) => k.sign(&[], message),
        }
    }

    /// Signs a precomputed SHA-256 digest. Only ECDSA P-256 signs digests; the other
    /// algorithms sign whole messages by design.
    pub fn sign_sha256_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        match self {
            Self::EcdsaP256(k) => k.sign_digest(digest),
            other => Err(CryptoError::WrongKeyType {
                operation: "sign a digest",
                spec: other.spec().as_str(),
            }),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(k) => PublicKey::Ed25519(k.public_key()),
            Self::EcdsaP256(k) => PublicKey::EcdsaP256(k.public_key()),
            Self::MlDsa65(k) => PublicKey::MlDsa65(k.public_key().to_vec()),
            Self::Composite(k) => k.public_key(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, [secret elided])", self.spec().as_str())
    }
}

/// A parsed public key, ready to verify.
pub struct VerifyingKey {
    inner: VerifierInner,
    public: PublicKey,
}

enum VerifierInner {
    Classical(aws_lc_rs::signature::ParsedPublicKey),
    MlDsa65(mldsa_ffi::MlDsaHandle),
    Composite(composite::CompositeVerifier),
}

impl VerifyingKey {
    /// Parses `public` once so each verification skips decoding.
    pub fn new(public: PublicKey) -> Result<Self> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ED25519, ParsedPublicKey};
        let inner = match &public {
            PublicKey::Ed25519(pk) => VerifierInner::Classical(
                ParsedPublicKey::new(&ED25519, pk)
                    .map_err(|_| CryptoError::KeyRejected("Ed25519 public key"))?,
            ),
            PublicKey::EcdsaP256(pk) => VerifierInner::Classical(
                ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, pk)
                    .map_err(|_| CryptoError::KeyRejected("P-256 public key"))?,
            ),
            PublicKey::MlDsa65(pk) => {
                VerifierInner::MlDsa65(mldsa_ffi::MlDsaHandle::from_public_key(pk)?)
            }
            PublicKey::Composite { ml_dsa, ed25519 } => {
                VerifierInner::Composite(composite::CompositeVerifier::new(ml_dsa, ed25519)?)
            }
        };
        Ok(Self { inner, public })
    }

    /// The public key this verifier checks against.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Verifies `signature` over `message`. `mode` applies to composite keys only.
    pub fn verify(&self, message: &[u8], signature: &[u8], mode: PqVerifyMode) -> Result<()> {
        let valid = match &self.inner {
            VerifierInner::Classical(key) => key.verify_sig(message, signature).is_ok(),
            VerifierInner::MlDsa65(key) => key.verify(&[], message, signature),
            VerifierInner::Composite(key) => key.verify(&[], message, signature, mode),
        };
        if valid {
            Ok(())
        } else {
            Err(CryptoError::InvalidSignature)
        }
    }

    /// Verifies an ML-DSA-65 signature made with a FIPS 204 context string.
    pub fn verify_ml_dsa_with_context(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        match &self.inner {
            VerifierInner::MlDsa65(key) if key.verify(context, message, signature) => Ok(()),
            VerifierInner::MlDsa65(_) => Err(CryptoError::InvalidSignature),
            _ => Err(CryptoError::WrongKeyType {
                operation: "verify with an ML-DSA context",
                spec: self.public.spec().as_str(),
            }),
        }
    }

    /// Verifies a signature over a precomputed SHA-256 digest (ECDSA P-256 only).
    pub fn verify_sha256_digest(&self, digest: &[u8; 32], signature: &[u8]) -> Result<()> {
        match &self.inner {
            VerifierInner::Classical(key) if matches!(self.public, PublicKey::EcdsaP256(_)) => {
                ecdsa::verify_digest(key, digest, signature)
            }
            _ => Err(CryptoError::WrongKeyType {
                operation: "verify a digest",
                spec: self.public.spec().as_str(),
            }),
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.public.spec().as_str())
    }
}
