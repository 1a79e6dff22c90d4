//! Public keys and their encodings: SubjectPublicKeyInfo DER, PEM and JWK.
//!
//! Every fixed-size signing spec has exactly one SPKI encoding (the algorithm identifier
//! with its one parameter form, as RFC 8410, RFC 5480, RFC 9881 and the composite draft
//! require), so the decoder matches the whole expected prefix and length instead of
//! parsing general ASN.1: there is no length field it could be tricked by. RSA keys vary
//! in length; aws-lc parses them, and the decoder accepts only the canonical DER it would
//! write back (rsaEncryption with NULL parameters, a 2048-, 3072- or 4096-bit modulus).

mod jwk;
mod pem;

pub use jwk::Jwk;

use crate::sign::{EncryptionAlgorithm, VerifyingKey, ml_dsa_params, rsa_oaep_encrypt};
use crate::spec::KeySpec;
use crate::{CryptoError, Result};

/// A public key of one of Coffer's signing specs (and of RSA encryption keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519, 32 bytes.
    Ed25519([u8; 32]),
    /// P-256, uncompressed point (65 bytes).
    EcdsaP256([u8; 65]),
    /// P-384, uncompressed point (97 bytes).
    EcdsaP384(Vec<u8>),
    /// P-521, uncompressed point (133 bytes).
    EcdsaP521(Vec<u8>),
    /// secp256k1, uncompressed point (65 bytes).
    EcdsaSecp256k1(Vec<u8>),
    /// ML-DSA-44, 1312 bytes.
    MlDsa44(Vec<u8>),
    /// ML-DSA-65, 1952 bytes.
    MlDsa65(Vec<u8>),
    /// ML-DSA-87, 2592 bytes.
    MlDsa87(Vec<u8>),
    /// Composite ML-DSA-65 + Ed25519.
    Composite {
        /// The ML-DSA-65 half.
        ml_dsa: Vec<u8>,
        /// The Ed25519 half.
        ed25519: [u8; 32],
    },
    /// RSA: RSAPublicKey DER (RFC 8017 A.1.1) and the spec its modulus size gives.
    Rsa {
        /// `rsa-2048`, `rsa-3072` or `rsa-4096`.
        spec: KeySpec,
        /// RSAPublicKey DER, the SPKI bit string's contents.
        der: Vec<u8>,
    },
}

/// id-ecPublicKey (1.2.840.10045.2.1) followed by a named-curve OID.
const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// AlgorithmIdentifier DER per spec (OIDs: 1.3.101.112 Ed25519; id-ecPublicKey with
/// prime256v1, secp384r1, secp521r1 or secp256k1; 2.16.840.1.101.3.4.3.17/18/19 ML-DSA;
/// 1.3.6.1.5.5.7.6.48 composite; 1.2.840.113549.1.1.1 rsaEncryption with NULL).
fn algorithm_identifier(spec: KeySpec) -> Option<Vec<u8>> {
    let ec = |curve: &[u8]| {
        let mut out = vec![0x30, (EC_PUBLIC_KEY.len() + curve.len()) as u8];
        out.extend_from_slice(EC_PUBLIC_KEY);
        out.extend_from_slice(curve);
        out
    };
    let ml_dsa = |last: u8| {
        vec![
            0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, last,
        ]
    };
    Some(match spec {
        KeySpec::Ed25519 => vec![0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
        KeySpec::EcdsaP256 => ec(&[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        KeySpec::EcdsaP384 => ec(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]),
        KeySpec::EcdsaP521 => ec(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23]),
        KeySpec::EcdsaSecp256k1 => ec(&[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]),
        KeySpec::MlDsa44 => ml_dsa(0x11),
        KeySpec::MlDsa65 => ml_dsa(0x12),
        KeySpec::MlDsa87 => ml_dsa(0x13),
        KeySpec::HybridEd25519MlDsa65 => vec![
            0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x06, 0x30,
        ],
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => vec![
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ],
        KeySpec::Aes256
        | KeySpec::HmacSha224
        | KeySpec::HmacSha256
        | KeySpec::HmacSha384
        | KeySpec::HmacSha512 => return None,
    })
}

/// The fixed raw key length of a spec; `None` for RSA (variable) and non-signing specs.
fn key_len(spec: KeySpec) -> Option<usize> {
    Some(match spec {
        KeySpec::Ed25519 => 32,
        KeySpec::EcdsaP256 | KeySpec::EcdsaSecp256k1 => 65,
        KeySpec::EcdsaP384 => 97,
        KeySpec::EcdsaP521 => 133,
        KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => {
            ml_dsa_params(spec)?.public_key_len
        }
        KeySpec::HybridEd25519MlDsa65 => ml_dsa_params(KeySpec::MlDsa65)?.public_key_len + 32,
        _ => return None,
    })
}

fn der_length(len: usize, out: &mut Vec<u8>) {
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
        _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
    }
}

/// SEQUENCE { algorithm, BIT STRING header } for a key of `spec` whose raw bytes are
/// `raw_len` long: everything before the raw key bytes.
fn spki_prefix(spec: KeySpec, raw_len: usize) -> Option<Vec<u8>> {
    let alg = algorithm_identifier(spec)?;
    let bit_string_len = raw_len + 1;
    let mut bit_string_header = vec![0x03];
    der_length(bit_string_len, &mut bit_string_header);
    bit_string_header.push(0x00); // no unused bits
    let body_len = alg.len() + bit_string_header.len() - 1 + bit_string_len;
    let mut out = vec![0x30];
    der_length(body_len, &mut out);
    out.extend_from_slice(&alg);
    out.extend_from_slice(&bit_string_header);
    Some(out)
}

impl PublicKey {
    /// The spec of the key.
    pub fn spec(&self) -> KeySpec {
        match self {
            Self::Ed25519(_) => KeySpec::Ed25519,
            Self::EcdsaP256(_) => KeySpec::EcdsaP256,
            Self::EcdsaP384(_) => KeySpec::EcdsaP384,
            Self::EcdsaP521(_) => KeySpec::EcdsaP521,
            Self::EcdsaSecp256k1(_) => KeySpec::EcdsaSecp256k1,
            Self::MlDsa44(_) => KeySpec::MlDsa44,
            Self::MlDsa65(_) => KeySpec::MlDsa65,
            Self::MlDsa87(_) => KeySpec::MlDsa87,
            Self::Composite { .. } => KeySpec::HybridEd25519MlDsa65,
            Self::Rsa { spec, .. } => *spec,
        }
    }

    /// The raw key bytes as carried in the SPKI bit string.
    pub fn raw(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(pk) => pk.to_vec(),
            Self::EcdsaP256(pk) => pk.to_vec(),
            Self::EcdsaP384(pk)
            | Self::EcdsaP521(pk)
            | Self::EcdsaSecp256k1(pk)
            | Self::MlDsa44(pk)
            | Self::MlDsa65(pk)
            | Self::MlDsa87(pk) => pk.clone(),
            Self::Composite { ml_dsa, ed25519 } => [ml_dsa.as_slice(), ed25519].concat(),
            Self::Rsa { der, .. } => der.clone(),
        }
    }

    /// An EC public key from a point the backend produced for `spec`.
    pub(crate) fn ec_unchecked(spec: KeySpec, point: &[u8]) -> Self {
        match spec {
            KeySpec::EcdsaP384 => Self::EcdsaP384(point.to_vec()),
            KeySpec::EcdsaP521 => Self::EcdsaP521(point.to_vec()),
            KeySpec::EcdsaSecp256k1 => Self::EcdsaSecp256k1(point.to_vec()),
            // aws-lc writes a P-256 point as exactly 65 bytes.
            _ => Self::EcdsaP256(point.try_into().unwrap_or([0; 65])),
        }
    }

    /// An ML-DSA public key the backend produced for `spec`.
    pub(crate) fn ml_dsa_unchecked(spec: KeySpec, raw: &[u8]) -> Self {
        match spec {
            KeySpec::MlDsa44 => Self::MlDsa44(raw.to_vec()),
            KeySpec::MlDsa87 => Self::MlDsa87(raw.to_vec()),
            _ => Self::MlDsa65(raw.to_vec()),
        }
    }

    /// A public key of `spec` from its raw bytes, checked by the backend.
    pub fn from_raw(spec: KeySpec, raw: &[u8]) -> Result<Self> {
        let wrong_len = || CryptoError::malformed("public key", "wrong length for its spec");
        if spec.is_rsa() {
            return rsa_from_der(raw, Some(spec));
        }
        let expected = key_len(spec).ok_or(CryptoError::WrongKeyType {
            operation: "public key",
            spec: spec.as_str(),
        })?;
        if raw.len() != expected {
            return Err(wrong_len());
        }
        let key = match spec {
            KeySpec::Ed25519 => Self::Ed25519(raw.try_into().map_err(|_| wrong_len())?),
            KeySpec::EcdsaP256 => Self::EcdsaP256(raw.try_into().map_err(|_| wrong_len())?),
            KeySpec::EcdsaP384 | KeySpec::EcdsaP521 | KeySpec::EcdsaSecp256k1 => {
                Self::ec_unchecked(spec, raw)
            }
            KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => {
                Self::ml_dsa_unchecked(spec, raw)
            }
            _ => {
                let (ml_dsa, ed25519) = raw.split_at(expected - 32);
                Self::Composite {
                    ml_dsa: ml_dsa.to_vec(),
                    ed25519: ed25519.try_into().map_err(|_| wrong_len())?,
                }
            }
        };
        // Parsing into a verifier runs the backend's checks (point on curve, ...).
        VerifyingKey::new(key.clone())?;
        Ok(key)
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let raw = self.raw();
        let mut out = spki_prefix(self.spec(), raw.len()).unwrap_or_default();
        out.extend_from_slice(&raw);
        out
    }

    /// Parses SubjectPublicKeyInfo DER of any supported signing spec.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        for spec in KeySpec::ALL.into_iter().filter(|spec| spec.is_signing()) {
            let Some(len) = key_len(spec) else { continue };
            let Some(prefix) = spki_prefix(spec, len) else {
                continue;
            };
            if der.len() == prefix.len() + len && der.starts_with(&prefix) {
                return Self::from_raw(spec, &der[prefix.len()..]);
            }
        }
        if let Ok(key) = aws_lc_rs::rsa::PublicKey::from_der(der) {
            let key = rsa_from_der(key.as_ref(), None)?;
            // Only the canonical encoding, so one key has one SPKI.
            if key.to_spki_der() == der {
                return Ok(key);
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

    /// RSA-OAEP encryption to this key (RSA keys only): what any holder of the public
    /// key can do without Coffer; the service offers it for convenience.
    pub fn encrypt(&self, algorithm: EncryptionAlgorithm, plaintext: &[u8]) -> Result<Vec<u8>> {
        if !self.spec().is_rsa() {
            return Err(CryptoError::WrongKeyType {
                operation: "encrypt",
                spec: self.spec().as_str(),
            });
        }
        rsa_oaep_encrypt(&self.to_spki_der(), algorithm, plaintext)
    }
}

/// An RSA public key from RSAPublicKey DER, checked by aws-lc (RSA_check_key), in its
/// canonical re-encoding; its modulus must be 2048, 3072 or 4096 bits (and `spec`'s size
/// when given).
fn rsa_from_der(der: &[u8], spec: Option<KeySpec>) -> Result<PublicKey> {
    const WHAT: &str = "RSA public key";
    let key =
        aws_lc_rs::rsa::PublicKey::from_der(der).map_err(|_| CryptoError::KeyRejected(WHAT))?;
    let by_size = match key.modulus_len() * 8 {
        2048 => KeySpec::Rsa2048,
        3072 => KeySpec::Rsa3072,
        4096 => KeySpec::Rsa4096,
        _ => {
            return Err(CryptoError::malformed(
                WHAT,
                "modulus is not 2048, 3072 or 4096 bits",
            ));
        }
    };
    if spec.is_some_and(|spec| spec != by_size) {
        return Err(CryptoError::malformed(
            WHAT,
            "modulus size does not match the spec",
        ));
    }
    if key.as_ref() != der {
        return Err(CryptoError::malformed(
            WHAT,
            "not canonical RSAPublicKey DER",
        ));
    }
    Ok(PublicKey::Rsa {
        spec: by_size,
        der: der.to_vec(),
    })
}
