//! Signature algorithms: what a signature was made with, and which a key spec offers.
//!
//! Most specs sign one way; RSA keys offer PSS and PKCS #1 v1.5 over SHA-256/384/512,
//! so sign and verify take the algorithm as a parameter, defaulting to the spec's first.

use std::fmt;
use std::str::FromStr;

use crate::spec::KeySpec;
use crate::{CryptoError, Result};

/// The algorithm a signature was made with, as named in API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// Ed25519 (RFC 8032), raw 64-byte signatures.
    Ed25519,
    /// ECDSA over P-256 with SHA-256, DER-encoded signatures.
    EcdsaP256Sha256,
    /// ECDSA over P-384 with SHA-384, DER-encoded signatures.
    EcdsaP384Sha384,
    /// ECDSA over P-521 with SHA-512, DER-encoded signatures.
    EcdsaP521Sha512,
    /// ECDSA over secp256k1 with SHA-256, DER-encoded signatures.
    EcdsaSecp256k1Sha256,
    /// ML-DSA-44 (FIPS 204), empty context.
    MlDsa44,
    /// ML-DSA-65 (FIPS 204), raw 3309-byte signatures, empty context.
    MlDsa65,
    /// ML-DSA-87 (FIPS 204), empty context.
    MlDsa87,
    /// Composite ML-DSA-65 + Ed25519 with SHA-512 pre-hash (draft-ietf-lamps-pq-composite-sigs).
    MlDsa65Ed25519,
    /// RSASSA-PSS with SHA-256, MGF1 SHA-256, salt as long as the hash (RFC 8017).
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512.
    RsaPssSha512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
}

/// The hash a message is reduced with before signing, for algorithms that sign digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// SHA-256, 32 bytes.
    Sha256,
    /// SHA-384, 48 bytes.
    Sha384,
    /// SHA-512, 64 bytes.
    Sha512,
}

impl DigestAlgorithm {
    /// Digest length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The digest of `message` by this hash.
    pub fn hash(self, message: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(self.aws_lc(), message)
            .as_ref()
            .to_vec()
    }

    pub(crate) fn aws_lc(self) -> &'static aws_lc_rs::digest::Algorithm {
        match self {
            Self::Sha256 => &aws_lc_rs::digest::SHA256,
            Self::Sha384 => &aws_lc_rs::digest::SHA384,
            Self::Sha512 => &aws_lc_rs::digest::SHA512,
        }
    }

    /// Imports a precomputed digest, checking its length.
    pub(crate) fn import(self, digest: &[u8]) -> Result<aws_lc_rs::digest::Digest> {
        aws_lc_rs::digest::Digest::import_less_safe(digest, self.aws_lc())
            .map_err(|_| CryptoError::malformed("message digest", "wrong length for its hash"))
    }
}

const ALL: [SignatureAlgorithm; 15] = [
    SignatureAlgorithm::Ed25519,
    SignatureAlgorithm::EcdsaP256Sha256,
    SignatureAlgorithm::EcdsaP384Sha384,
    SignatureAlgorithm::EcdsaP521Sha512,
    SignatureAlgorithm::EcdsaSecp256k1Sha256,
    SignatureAlgorithm::MlDsa44,
    SignatureAlgorithm::MlDsa65,
    SignatureAlgorithm::MlDsa87,
    SignatureAlgorithm::MlDsa65Ed25519,
    SignatureAlgorithm::RsaPssSha256,
    SignatureAlgorithm::RsaPssSha384,
    SignatureAlgorithm::RsaPssSha512,
    SignatureAlgorithm::RsaPkcs1Sha256,
    SignatureAlgorithm::RsaPkcs1Sha384,
    SignatureAlgorithm::RsaPkcs1Sha512,
];

const RSA: &[SignatureAlgorithm] = &[
    SignatureAlgorithm::RsaPssSha256,
    SignatureAlgorithm::RsaPssSha384,
    SignatureAlgorithm::RsaPssSha512,
    SignatureAlgorithm::RsaPkcs1Sha256,
    SignatureAlgorithm::RsaPkcs1Sha384,
    SignatureAlgorithm::RsaPkcs1Sha512,
];

impl SignatureAlgorithm {
    /// Stable name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::EcdsaP384Sha384 => "ecdsa-p384-sha384",
            Self::EcdsaP521Sha512 => "ecdsa-p521-sha512",
            Self::EcdsaSecp256k1Sha256 => "ecdsa-secp256k1-sha256",
            Self::MlDsa44 => "ml-dsa-44",
            Self::MlDsa65 => "ml-dsa-65",
            Self::MlDsa87 => "ml-dsa-87",
            Self::MlDsa65Ed25519 => "ml-dsa-65-ed25519-sha512",
            Self::RsaPssSha256 => "rsa-pss-sha256",
            Self::RsaPssSha384 => "rsa-pss-sha384",
            Self::RsaPssSha512 => "rsa-pss-sha512",
            Self::RsaPkcs1Sha256 => "rsa-pkcs1-sha256",
            Self::RsaPkcs1Sha384 => "rsa-pkcs1-sha384",
            Self::RsaPkcs1Sha512 => "rsa-pkcs1-sha512",
        }
    }

    /// The algorithms a key of `spec` signs with, its default first. Empty for specs
    /// that do not sign.
    pub fn for_spec(spec: KeySpec) -> &'static [Self] {
        match spec {
            KeySpec::Ed25519 => &[Self::Ed25519],
            KeySpec::EcdsaP256 => &[Self::EcdsaP256Sha256],
            KeySpec::EcdsaP384 => &[Self::EcdsaP384Sha384],
            KeySpec::EcdsaP521 => &[Self::EcdsaP521Sha512],
            KeySpec::EcdsaSecp256k1 => &[Self::EcdsaSecp256k1Sha256],
            KeySpec::MlDsa44 => &[Self::MlDsa44],
            KeySpec::MlDsa65 => &[Self::MlDsa65],
            KeySpec::MlDsa87 => &[Self::MlDsa87],
            KeySpec::HybridEd25519MlDsa65 => &[Self::MlDsa65Ed25519],
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => RSA,
            KeySpec::Aes256
            | KeySpec::HmacSha224
            | KeySpec::HmacSha256
            | KeySpec::HmacSha384
            | KeySpec::HmacSha512 => &[],
        }
    }

    /// The first of `among` that `spec` offers (the spec's default when `among` is
    /// empty): for callers whose algorithm names stand for several of Coffer's (AWS's
    /// `ECDSA_SHA_256` is P-256's or secp256k1's). None offered is refused, before any
    /// signing.
    pub fn choose_among(spec: KeySpec, among: &[Self]) -> Result<Self> {
        let offered = Self::for_spec(spec);
        match among {
            [] => Self::choose(spec, None),
            _ => among
                .iter()
                .find(|wanted| offered.contains(wanted))
                .copied()
                .ok_or(CryptoError::WrongKeyType {
                    operation: "sign with this algorithm",
                    spec: spec.as_str(),
                }),
        }
    }

    /// `algorithm` if `spec` offers it, else the spec's default when none was asked for.
    pub fn choose(spec: KeySpec, algorithm: Option<Self>) -> Result<Self> {
        let offered = Self::for_spec(spec);
        match algorithm {
            Some(wanted) if offered.contains(&wanted) => Ok(wanted),
            Some(_) => Err(CryptoError::WrongKeyType {
                operation: "sign with this algorithm",
                spec: spec.as_str(),
            }),
            None => offered.first().copied().ok_or(CryptoError::WrongKeyType {
                operation: "sign",
                spec: spec.as_str(),
            }),
        }
    }

    /// The hash of algorithms that can sign a precomputed digest (ECDSA and RSA);
    /// `None` for those that sign whole messages by design (EdDSA, ML-DSA, composite).
    pub const fn digest(self) -> Option<DigestAlgorithm> {
        match self {
            Self::EcdsaP256Sha256
            | Self::EcdsaSecp256k1Sha256
            | Self::RsaPssSha256
            | Self::RsaPkcs1Sha256 => Some(DigestAlgorithm::Sha256),
            Self::EcdsaP384Sha384 | Self::RsaPssSha384 | Self::RsaPkcs1Sha384 => {
                Some(DigestAlgorithm::Sha384)
            }
            Self::EcdsaP521Sha512 | Self::RsaPssSha512 | Self::RsaPkcs1Sha512 => {
                Some(DigestAlgorithm::Sha512)
            }
            Self::Ed25519
            | Self::MlDsa44
            | Self::MlDsa65
            | Self::MlDsa87
            | Self::MlDsa65Ed25519 => None,
        }
    }

    /// aws-lc-rs's RSA verification parameters, for RSA algorithms.
    pub(crate) fn rsa_parameters(self) -> Option<&'static aws_lc_rs::signature::RsaParameters> {
        use aws_lc_rs::signature as s;
        Some(match self {
            Self::RsaPssSha256 => &s::RSA_PSS_2048_8192_SHA256,
            Self::RsaPssSha384 => &s::RSA_PSS_2048_8192_SHA384,
            Self::RsaPssSha512 => &s::RSA_PSS_2048_8192_SHA512,
            Self::RsaPkcs1Sha256 => &s::RSA_PKCS1_2048_8192_SHA256,
            Self::RsaPkcs1Sha384 => &s::RSA_PKCS1_2048_8192_SHA384,
            Self::RsaPkcs1Sha512 => &s::RSA_PKCS1_2048_8192_SHA512,
            _ => return None,
        })
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignatureAlgorithm {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self> {
        ALL.into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or(CryptoError::malformed(
                "signature algorithm",
                "unknown algorithm name",
            ))
    }
}
