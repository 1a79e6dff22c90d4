//! Key material: one key version's secret, generated here and serialised for custody.
//!
//! Stored form (secret; custody wraps it before it reaches a store):
//!
//! ```text
//! 0x01 (format) ‖ spec code (1 byte) ‖ body
//! body: aes-256, hmac-sha256   32-byte key
//!       ed25519, ml-dsa-65     32-byte seed
//!       ecdsa-p256             32-byte scalar ‖ 65-byte uncompressed point
//!       hybrid                 ML-DSA seed (32) ‖ Ed25519 seed (32)
//! ```
//!
//! Seeds rather than expanded keys keep the stored form small and let aws-lc re-derive
//! and check every public value on load.

use std::fmt;

use crate::mac::MacKey;
use crate::secret::SecretBytes;
use crate::sign::{CompositeKey, EcdsaP256Key, Ed25519Key, MlDsa65Key, SigningKey};
use crate::spec::KeySpec;
use crate::xaes::AeadKey;
use crate::{CryptoError, PublicKey, Result};

const MATERIAL_FORMAT_V1: u8 = 0x01;
const WHAT: &str = "stored key material";

/// The secret of one key version.
#[expect(
    clippy::large_enum_variant,
    reason = "one per cached key version; boxing would add an indirection to every hot-path use"
)]
pub enum KeyMaterial {
    /// An XAES-256-GCM key.
    Aes256(AeadKey),
    /// An HMAC-SHA256 key.
    HmacSha256(MacKey),
    /// A signing key.
    Signing(SigningKey),
}

impl KeyMaterial {
    /// Fresh material of `spec` from the OS random generator.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        match spec {
            KeySpec::Aes256 => Ok(Self::Aes256(AeadKey::generate()?)),
            KeySpec::HmacSha256 => Ok(Self::HmacSha256(MacKey::generate()?)),
            _ => Ok(Self::Signing(SigningKey::generate(spec)?)),
        }
    }

    /// The spec of this material.
    pub fn spec(&self) -> KeySpec {
        match self {
            Self::Aes256(_) => KeySpec::Aes256,
            Self::HmacSha256(_) => KeySpec::HmacSha256,
            Self::Signing(key) => key.spec(),
        }
    }

    /// The public key, for signing material.
    pub fn public_key(&self) -> Option<PublicKey> {
        match self {
            Self::Signing(key) => Some(key.public_key()),
            _ => None,
        }
    }

    /// Serialises into the stored form (see the module docs).
    pub fn to_stored(&self) -> Result<SecretBytes> {
        let mut out = vec![MATERIAL_FORMAT_V1, self.spec().code()];
        match self {
            Self::Aes256(key) => out.extend_from_slice(key.expose_secret()),
            Self::HmacSha256(key) => out.extend_from_slice(key.expose_secret()),
            Self::Signing(SigningKey::Ed25519(key)) => out.extend_from_slice(key.seed()),
            Self::Signing(SigningKey::MlDsa65(key)) => out.extend_from_slice(key.seed()),
            Self::Signing(SigningKey::EcdsaP256(key)) => {
                out.extend_from_slice(key.to_stored()?.expose_secret())
            }
            Self::Signing(SigningKey::Composite(key)) => key.write_seeds(&mut out),
        }
        Ok(SecretBytes::new(out))
    }

    /// Parses the stored form. Any input gives a typed error, never a panic.
    pub fn from_stored(bytes: &[u8]) -> Result<Self> {
        let [format, code, body @ ..] = bytes else {
            return Err(CryptoError::malformed(WHAT, "shorter than its header"));
        };
        if *format != MATERIAL_FORMAT_V1 {
            return Err(CryptoError::malformed(WHAT, "unknown format version"));
        }
        let spec =
            KeySpec::from_code(*code).ok_or(CryptoError::malformed(WHAT, "unknown key spec"))?;
        Ok(match spec {
            KeySpec::Aes256 => Self::Aes256(AeadKey::from_bytes(body)?),
            KeySpec::HmacSha256 => Self::HmacSha256(MacKey::from_bytes(body)?),
            KeySpec::Ed25519 => {
                Self::Signing(SigningKey::Ed25519(Ed25519Key::from_seed_bytes(body)?))
            }
            KeySpec::EcdsaP256 => {
                Self::Signing(SigningKey::EcdsaP256(EcdsaP256Key::from_stored(body)?))
            }
            KeySpec::MlDsa65 => {
                Self::Signing(SigningKey::MlDsa65(MlDsa65Key::from_seed_bytes(body)?))
            }
            KeySpec::HybridEd25519MlDsa65 => {
                Self::Signing(SigningKey::Composite(CompositeKey::from_seeds(body)?))
            }
        })
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial({}, [secret elided])", self.spec().as_str())
    }
}
