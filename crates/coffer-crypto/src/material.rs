//! Key material: one key version's secret, generated here and serialised for custody.
//!
//! Stored form (secret; custody wraps it before it reaches a store):
//!
//! ```text
//! 0x01 (format) ‖ spec code (1 byte) ‖ body
//! body: aes-256                     32-byte key
//!       hmac-sha224/256/384/512     28/32/48/64-byte key
//!       ed25519, ml-dsa-44/65/87    32-byte seed
//!       ecdsa-p256, -secp256k1      32-byte scalar ‖ 65-byte uncompressed point
//!       ecdsa-p384                  48-byte scalar ‖ 97-byte uncompressed point
//!       ecdsa-p521                  66-byte scalar ‖ 133-byte uncompressed point
//!       hybrid                      ML-DSA seed (32) ‖ Ed25519 seed (32)
//!       rsa-2048/3072/4096          PKCS #8 DER (RFC 5208) of the private key
//! ```
//!
//! Seeds rather than expanded keys keep the stored form small and let aws-lc re-derive
//! and check every public value on load.

use std::fmt;

use crate::mac::MacKey;
use crate::secret::SecretBytes;
use crate::sign::{CompositeKey, Curve, EcdsaKey, Ed25519Key, MlDsaKey, RsaKey, SigningKey};
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
    /// An HMAC key (SHA-224, SHA-256, SHA-384 or SHA-512, as its spec says).
    Hmac(MacKey),
    /// A signing key; for RSA specs also the key that decrypts, as the key's purpose says.
    Signing(SigningKey),
}

impl KeyMaterial {
    /// Fresh material of `spec` from the OS random generator.
    pub fn generate(spec: KeySpec) -> Result<Self> {
        match spec {
            KeySpec::Aes256 => Ok(Self::Aes256(AeadKey::generate()?)),
            spec if spec.is_hmac() => Ok(Self::Hmac(MacKey::generate_for(spec)?)),
            _ => Ok(Self::Signing(SigningKey::generate(spec)?)),
        }
    }

    /// The spec of this material.
    pub fn spec(&self) -> KeySpec {
        match self {
            Self::Aes256(_) => KeySpec::Aes256,
            Self::Hmac(key) => key.spec(),
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
        // Zeroizing from the first byte: a growing Vec would leave copies behind.
        let mut out = SecretBytes::new(Vec::with_capacity(8192));
        self.write_stored(out.expose_secret_mut())?;
        Ok(out)
    }

    fn write_stored(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[MATERIAL_FORMAT_V1, self.spec().code()]);
        match self {
            Self::Aes256(key) => out.extend_from_slice(key.expose_secret()),
            Self::Hmac(key) => out.extend_from_slice(key.expose_secret()),
            Self::Signing(SigningKey::Ed25519(key)) => out.extend_from_slice(key.seed()),
            Self::Signing(SigningKey::MlDsa(key)) => out.extend_from_slice(key.seed()),
            Self::Signing(SigningKey::Ecdsa(key)) => {
                out.extend_from_slice(key.to_stored()?.expose_secret())
            }
            Self::Signing(SigningKey::Rsa(key)) => {
                out.extend_from_slice(key.to_stored()?.expose_secret())
            }
            Self::Signing(SigningKey::Composite(key)) => key.write_seeds(out),
        }
        Ok(())
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
            KeySpec::HmacSha224
            | KeySpec::HmacSha256
            | KeySpec::HmacSha384
            | KeySpec::HmacSha512 => Self::Hmac(MacKey::from_spec_bytes(spec, body)?),
            KeySpec::Ed25519 => {
                Self::Signing(SigningKey::Ed25519(Ed25519Key::from_seed_bytes(body)?))
            }
            KeySpec::EcdsaP256
            | KeySpec::EcdsaP384
            | KeySpec::EcdsaP521
            | KeySpec::EcdsaSecp256k1 => {
                let curve = Curve::of(spec).ok_or(CryptoError::malformed(WHAT, "no curve"))?;
                Self::Signing(SigningKey::Ecdsa(EcdsaKey::from_stored(curve, body)?))
            }
            KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => {
                Self::Signing(SigningKey::MlDsa(MlDsaKey::from_seed_bytes(spec, body)?))
            }
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => {
                Self::Signing(SigningKey::Rsa(RsaKey::from_stored(spec, body)?))
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
