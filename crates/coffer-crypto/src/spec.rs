//! Key specs: which algorithm a key is for. Spelled on the wire as in DESIGN §2.

use std::fmt;
use std::str::FromStr;

use crate::CryptoError;

/// The algorithm family of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeySpec {
    /// XAES-256-GCM envelope encryption and key wrapping.
    Aes256,
    /// Ed25519 signatures.
    Ed25519,
    /// ECDSA P-256 SHA-256 signatures.
    EcdsaP256,
    /// ML-DSA-65 signatures.
    MlDsa65,
    /// Composite ML-DSA-65 + Ed25519 signatures.
    HybridEd25519MlDsa65,
    /// HMAC-SHA256 MACs.
    HmacSha256,
    /// RSA with a 2048-bit modulus: PSS or PKCS #1 v1.5 signatures, or OAEP encryption.
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    Rsa4096,
    /// ECDSA P-384 SHA-384 signatures.
    EcdsaP384,
    /// ECDSA P-521 SHA-512 signatures.
    EcdsaP521,
    /// ECDSA secp256k1 SHA-256 signatures.
    EcdsaSecp256k1,
    /// ML-DSA-44 signatures.
    MlDsa44,
    /// ML-DSA-87 signatures.
    MlDsa87,
    /// HMAC-SHA224 MACs.
    HmacSha224,
    /// HMAC-SHA384 MACs.
    HmacSha384,
    /// HMAC-SHA512 MACs.
    HmacSha512,
}

impl KeySpec {
    /// Every spec, for tests and listings.
    pub const ALL: [Self; 17] = [
        Self::Aes256,
        Self::Ed25519,
        Self::EcdsaP256,
        Self::MlDsa65,
        Self::HybridEd25519MlDsa65,
        Self::HmacSha256,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
        Self::EcdsaP384,
        Self::EcdsaP521,
        Self::EcdsaSecp256k1,
        Self::MlDsa44,
        Self::MlDsa87,
        Self::HmacSha224,
        Self::HmacSha384,
        Self::HmacSha512,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Aes256 => "aes-256",
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
            Self::MlDsa65 => "ml-dsa-65",
            Self::HybridEd25519MlDsa65 => "hybrid-ed25519-ml-dsa-65",
            Self::HmacSha256 => "hmac-sha256",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::EcdsaP521 => "ecdsa-p521",
            Self::EcdsaSecp256k1 => "ecdsa-secp256k1",
            Self::MlDsa44 => "ml-dsa-44",
            Self::MlDsa87 => "ml-dsa-87",
            Self::HmacSha224 => "hmac-sha224",
            Self::HmacSha384 => "hmac-sha384",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    /// The one-byte code used in stored material. Never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::Aes256 => 1,
            Self::Ed25519 => 2,
            Self::EcdsaP256 => 3,
            Self::MlDsa65 => 4,
            Self::HybridEd25519MlDsa65 => 5,
            Self::HmacSha256 => 6,
            Self::Rsa2048 => 7,
            Self::Rsa3072 => 8,
            Self::Rsa4096 => 9,
            Self::EcdsaP384 => 10,
            Self::EcdsaP521 => 11,
            Self::EcdsaSecp256k1 => 12,
            Self::MlDsa44 => 13,
            Self::MlDsa87 => 14,
            Self::HmacSha224 => 15,
            Self::HmacSha384 => 16,
            Self::HmacSha512 => 17,
        }
    }

    /// The spec with this stored code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|spec| spec.code() == code)
    }

    /// True for specs that sign and verify.
    pub const fn is_signing(self) -> bool {
        !matches!(self, Self::Aes256) && !self.is_hmac()
    }

    /// True for the HMAC specs (SHA-224, SHA-256, SHA-384, SHA-512).
    pub const fn is_hmac(self) -> bool {
        matches!(
            self,
            Self::HmacSha224 | Self::HmacSha256 | Self::HmacSha384 | Self::HmacSha512
        )
    }

    /// True for RSA specs, the only ones with asymmetric encryption (OAEP).
    pub const fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    /// The RSA modulus size in bits, for RSA specs.
    pub const fn rsa_bits(self) -> Option<usize> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeySpec {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|spec| spec.as_str() == s)
            .ok_or(CryptoError::malformed("key spec", "unknown spec name"))
    }
}
