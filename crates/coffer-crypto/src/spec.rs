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
}

impl KeySpec {
    /// Every spec, for tests and listings.
    pub const ALL: [Self; 6] = [
        Self::Aes256,
        Self::Ed25519,
        Self::EcdsaP256,
        Self::MlDsa65,
        Self::HybridEd25519MlDsa65,
        Self::HmacSha256,
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
        }
    }

    /// The one-byte code used in stored material. Never renumber.
    pub(crate) const fn code(self) -> u8 {
        match self {
            Self::Aes256 => 1,
            Self::Ed25519 => 2,
            Self::EcdsaP256 => 3,
            Self::MlDsa65 => 4,
            Self::HybridEd25519MlDsa65 => 5,
            Self::HmacSha256 => 6,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|spec| spec.code() == code)
    }

    /// True for specs that sign and verify.
    pub const fn is_signing(self) -> bool {
        matches!(
            self,
            Self::Ed25519 | Self::EcdsaP256 | Self::MlDsa65 | Self::HybridEd25519MlDsa65
        )
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
