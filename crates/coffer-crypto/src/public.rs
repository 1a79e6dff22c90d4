//! Public keys and their encodings: SubjectPublicKeyInfo DER, PEM and JWK.
//!
//! Every signing spec has exactly one SPKI encoding (the algorithm identifier with
//! parameters absent, as RFC 8410, RFC 5480, RFC 9881 and the composite draft require),
//! so the decoder matches the whole expected prefix and length instead of parsing
//! general ASN.1: there is no length field it could be tricked by.

mod jwk;
mod pem;

pub use jwk::Jwk;

use crate::sign::VerifyingKey;
use crate::sign::mldsa_ffi::PUBLIC_KEY_LEN as ML_DSA_65_PUBLIC_KEY_LEN;
use crate::spec::KeySpec;
use crate::{CryptoError, Result};

/// A public key of one of Coffer's signing specs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519, 32 bytes.
    Ed25519([u8; 32]),
    /// P-256, uncompressed point (65 bytes).
    EcdsaP256([u8; 65]),
    /// ML-DSA-65, 1952 bytes.
    MlDsa65(Vec<u8>),
    /// Composite ML-DSA-65 + Ed25519.
    Composite {
        /// The ML-DSA-65 half.
        ml_dsa: Vec<u8>,
        /// The Ed25519 half.
        ed25519: [u8; 32],
    },
}

/// AlgorithmIdentifier DER per spec (OIDs: 1.3.101.112 Ed25519; 1.2.840.10045.2.1 with
/// prime256v1; 2.16.840.1.101.3.4.3.18 ML-DSA-65; 1.3.6.1.5.5.7.6.48 composite).
fn algorithm_identifier(spec: KeySpec) -> Option<&'static [u8]> {
    Some(match spec {
        KeySpec::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
        KeySpec::EcdsaP256 => &[
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
            0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ],
        KeySpec::MlDsa65 => &[
            0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x12,
        ],
        KeySpec::HybridEd25519MlDsa65 => &[
            0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x06, 0x30,
        ],
        KeySpec::Aes256 | KeySpec::HmacSha256 => return None,
    })
}

fn key_len(spec: KeySpec) -> usize {
    match spec {
        KeySpec::Ed25519 => 32,
        KeySpec::EcdsaP256 => 65,
        KeySpec::MlDsa65 => ML_DSA_65_PUBLIC_KEY_LEN,
        KeySpec::HybridEd25519MlDsa65 => ML_DSA_65_PUBLIC_KEY_LEN + 32,
        KeySpec::Aes256 | KeySpec::HmacSha256 => 0,
    }
}

fn der_length(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// SEQUENCE { algorithm, BIT STRING header } for a key of `spec`: everything before the
/// raw key bytes.
fn spki_prefix(spec: KeySpec) -> Option<Vec<u8>> {
    let alg = algorithm_identifier(spec)?;
    let bit_string_len = key_len(spec) + 1;
    let mut bit_string_header = vec![0x03];
    der_length(bit_string_len, &mut bit_string_header);
    bit_string_header.push(0x00); // no unused bits
    let body_len = alg.len() + bit_string_header.len() - 1 + bit_string_len;
    let mut out = vec![0x30];
    der_length(body_len, &mut out);
    out.extend_from_slice(alg);
    out.extend_from_slice(&bit_string_header);
    Some(out)
}

impl PublicKey {
    /// The spec of the key.
    pub fn spec(&self) -> KeySpec {
        match self {
            Self::Ed25519(_) => KeySpec::Ed25519,
            Self::EcdsaP256(_) => KeySpec::EcdsaP256,
            Self::MlDsa65(_) => KeySpec::MlDsa65,
            Self::Composite { .. } => KeySpec::HybridEd25519MlDsa65,
        }
    }

    /// The raw key bytes as carried in the SPKI bit string.
    pub fn raw(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(pk) => pk.to_vec(),
            Self::EcdsaP256(pk) => pk.to_vec(),
            Self::MlDsa65(pk) => pk.clone(),
            Self::Composite { ml_dsa, ed25519 } => [ml_dsa.as_slice(), ed25519].concat(),
        }
    }

    /// A public key of `spec` from its raw bytes, checked by the backend.
    pub fn from_raw(spec: KeySpec, raw: &[u8]) -> Result<Self> {
        const WHAT: &str = "public key";
        let wrong_len = || CryptoError::malformed(WHAT, "wrong length for its spec");
        let key = match spec {
            KeySpec::Ed25519 => Self::Ed25519(raw.try_into().map_err(|_| wrong_len())?),
            KeySpec::EcdsaP256 => Self::EcdsaP256(raw.try_into().map_err(|_| wrong_len())?),
            KeySpec::MlDsa65 if raw.len() == ML_DSA_65_PUBLIC_KEY_LEN => {
                Self::MlDsa65(raw.to_vec())
            }
            KeySpec::HybridEd25519MlDsa65 if raw.len() == ML_DSA_65_PUBLIC_KEY_LEN + 32 => {
                let (ml_dsa, ed25519) = raw.split_at(ML_DSA_65_PUBLIC_KEY_LEN);
                Self::Composite {
                    ml_dsa: ml_dsa.to_vec(),
                    ed25519: ed25519.try_into().map_err(|_| wrong_len())?,
                }
            }
            KeySpec::MlDsa65 | KeySpec::HybridEd25519MlDsa65 => return Err(wrong_len()),
            KeySpec::Aes256 | KeySpec::HmacSha256 => {
                return Err(CryptoError::WrongKeyType {
                    operation: "public key",
                    spec: spec.as_str(),
                });
            }
        };
        // Parsing into a verifier runs the backend's checks (point on curve, ...).
        VerifyingKey::new(key.clone())?;
        Ok(key)
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut out = spki_prefix(self.spec()).unwrap_or_default();
        out.extend_from_slice(&self.raw());
        out
    }

    /// Parses SubjectPublicKeyInfo DER of any supported signing spec.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        for spec in KeySpec::ALL.into_iter().filter(|spec| spec.is_signing()) {
            let Some(prefix) = spki_prefix(spec) else {
                continue;
            };
            if der.len() == prefix.len() + key_len(spec) && der.starts_with(&prefix) {
                return Self::from_raw(spec, &der[prefix.len()..]);
            }
        }
        Err(CryptoError::malformed(
            "SubjectPublicKeyInfo",
            "not a supported public key",
        ))
    }

    /// `-----BEGIN PUBLIC KEY-----` PEM (RFC 7468) of the SPKI.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// Parses a `PUBLIC KEY` PEM document.
    pub fn from_pem(text: &str) -> Result<Self> {
        Self::from_spki_der(&pem::decode("PUBLIC KEY", text)?)
    }
}
