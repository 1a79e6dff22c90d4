//! The Coffer test format: an attestation made by an attestation authority Coffer is
//! configured to trust, for exercising attestation policies without an enclave (and for
//! platforms whose own evidence a gateway has already checked).
//!
//! A document is ASCII text (docs/attestation.md):
//!
//! ```text
//! coffer-attest-v1.<claims>.<signature>
//! ```
//!
//! `<claims>` is base64url (no padding) of a JSON object with exactly these members:
//! `measurement` (hex, 16–64 bytes), `nonce` (base64url, 8–512 bytes), `timestamp`
//! (Unix milliseconds) and optionally `public_key` (base64url of a SubjectPublicKeyInfo,
//! DER). `<signature>` is base64url of the authority's signature over the ASCII bytes
//! `coffer-attest-v1.<claims>`: Ed25519 (64 bytes), or ECDSA P-256 with SHA-256
//! (DER `Ecdsa-Sig-Value`). The authority's public key is configured as a PEM
//! SubjectPublicKeyInfo (`attestation.authority_public_key_file`).

use aws_lc_rs::signature::{self, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{AttestError, Attested, Format, Measurement, Verifier};

/// The document's first bytes.
pub const PREFIX: &str = "coffer-attest-v1.";

const ED25519_OID: &str = "1.3.101.112";
const EC_PUBLIC_KEY_OID: &str = "1.2.840.10045.2.1";
const P256_OID: &str = "1.2.840.10045.3.1.7";

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The claims of a test-format document, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// Hex of the measurement.
    pub measurement: String,
    /// base64url of the nonce.
    pub nonce: String,
    /// Unix milliseconds.
    pub timestamp: i64,
    /// base64url of the workload's SubjectPublicKeyInfo (DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// The attestation authority's public key.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorityKey {
    kind: AuthorityKind,
    /// Ed25519: the 32 bytes; P-256: the uncompressed point.
    raw: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthorityKind {
    Ed25519,
    EcdsaP256,
}

impl AuthorityKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) of Ed25519 or P-256.
    pub fn from_pem(pem: &str) -> Result<Self, AttestError> {
        let bad = AttestError::Malformed("the authority key is not a PEM public key");
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PUBLIC KEY-----")
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| bad)?;
        Self::from_spki_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo of Ed25519 or P-256.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, AttestError> {
        use x509_parser::prelude::FromDer;
        let bad = AttestError::Malformed("the authority key is not an Ed25519 or P-256 key");
        let (rest, spki) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(der).map_err(|_| bad)?;
        if !rest.is_empty() {
            return Err(bad);
        }
        let raw = spki.subject_public_key.data.to_vec();
        let kind = match spki.algorithm.algorithm.to_id_string().as_str() {
            ED25519_OID if raw.len() == 32 => AuthorityKind::Ed25519,
            EC_PUBLIC_KEY_OID => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                if curve.as_deref() != Some(P256_OID) || raw.len() != 65 {
                    return Err(bad);
                }
                AuthorityKind::EcdsaP256
            }
            _ => return Err(bad),
        };
        Ok(Self { kind, raw })
    }

    /// `ed25519` or `ecdsa-p256`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            AuthorityKind::Ed25519 => "ed25519",
            AuthorityKind::EcdsaP256 => "ecdsa-p256",
        }
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn signature::VerificationAlgorithm = match self.kind {
            AuthorityKind::Ed25519 => &signature::ED25519,
            AuthorityKind::EcdsaP256 => &signature::ECDSA_P256_SHA256_ASN1,
        };
        UnparsedPublicKey::new(algorithm, &self.raw)
            .verify(message, signature)
            .is_ok()
    }
}

impl std::fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthorityKey({})", self.kind())
    }
}

/// Reads test-format documents.
pub(crate) struct TestFormatVerifier {
    authority: Option<AuthorityKey>,
}

impl TestFormatVerifier {
    pub(crate) fn new(authority: Option<AuthorityKey>) -> Self {
        Self { authority }
    }
}

impl Verifier for TestFormatVerifier {
    fn format(&self) -> Format {
        Format::CofferTest
    }

    fn recognises(&self, document: &[u8]) -> bool {
        document.starts_with(PREFIX.as_bytes())
    }

    fn verify(&self, document: &[u8], _now_ms: i64) -> Result<Attested, AttestError> {
        let authority = self.authority.as_ref().ok_or(AttestError::NotConfigured(
            "the Coffer test format needs attestation.authority_public_key_file",
        ))?;
        let text = std::str::from_utf8(document)
            .map_err(|_| AttestError::Malformed("the document is not ASCII"))?;
        let (signed, signature) = text
            .rsplit_once('.')
            .ok_or(AttestError::Malformed("the document has no signature"))?;
        let claims_b64 = signed
            .strip_prefix(PREFIX)
            .filter(|c| !c.contains('.'))
            .ok_or(AttestError::Malformed("the document has three parts"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AttestError::Malformed("the signature is not base64url"))?;
        // The signature first: nothing of an unsigned document is read.
        if !authority.verifies(signed.as_bytes(), &signature) {
            return Err(AttestError::BadSignature);
        }
        let claims = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| AttestError::Malformed("the claims are not base64url"))?;
        let claims: Claims = serde_json::from_slice(&claims)
            .map_err(|_| AttestError::Malformed("the claims are not the expected JSON"))?;
        let b64 = |field: &str, what: &'static str| {
            URL_SAFE_NO_PAD
                .decode(field)
                .map_err(|_| AttestError::Malformed(what))
        };
        Ok(Attested {
            format: Format::CofferTest,
            measurement: claims.measurement.parse()?,
            nonce: b64(&claims.nonce, "the nonce is not base64url")?,
            timestamp_ms: claims.timestamp,
            public_key: claims
                .public_key
                .as_deref()
                .map(|k| b64(k, "the public key is not base64url"))
                .transpose()?,
        })
    }
}

/// An attestation authority's signing key: makes test-format documents (`coffer rotate
/// validate`, tests). Never part of the server.
pub struct Authority {
    signer: AuthoritySigner,
}

enum AuthoritySigner {
    Ed25519(signature::Ed25519KeyPair),
    EcdsaP256(signature::EcdsaKeyPair),
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority([secret key elided])")
    }
}

impl Authority {
    /// A new Ed25519 authority and its PKCS #8 document.
    pub fn generate_ed25519() -> Result<(Self, Vec<u8>), AttestError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| AttestError::Malformed("cannot generate a key"))?;
        let der = pkcs8.as_ref().to_vec();
        Ok((Self::from_pkcs8(&der)?, der))
    }

    /// An authority from a PKCS #8 private key (Ed25519 or P-256).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, AttestError> {
        if let Ok(key) = signature::Ed25519KeyPair::from_pkcs8(der) {
            return Ok(Self {
                signer: AuthoritySigner::Ed25519(key),
            });
        }
        signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map(|key| Self {
                signer: AuthoritySigner::EcdsaP256(key),
            })
            .map_err(|_| AttestError::Malformed("not an Ed25519 or P-256 PKCS #8 key"))
    }

    /// The authority's public key as a PEM SubjectPublicKeyInfo (what the server is
    /// configured with).
    pub fn public_key_pem(&self) -> String {
        let der = match &self.signer {
            AuthoritySigner::Ed25519(key) => {
                [&ED25519_SPKI_PREFIX[..], key.public_key().as_ref()].concat()
            }
            AuthoritySigner::EcdsaP256(key) => {
                [&P256_SPKI_PREFIX[..], key.public_key().as_ref()].concat()
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// A signed document carrying `claims`.
    pub fn attest(&self, claims: &Claims) -> Result<String, AttestError> {
        let json = serde_json::to_vec(claims)
            .map_err(|_| AttestError::Malformed("the claims do not encode"))?;
        let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
        let signature = match &self.signer {
            AuthoritySigner::Ed25519(key) => key.sign(signed.as_bytes()).as_ref().to_vec(),
            AuthoritySigner::EcdsaP256(key) => key
                .sign(&aws_lc_rs::rand::SystemRandom::new(), signed.as_bytes())
                .map_err(|_| AttestError::Malformed("cannot sign"))?
                .as_ref()
                .to_vec(),
        };
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// A document for `measurement` made at `timestamp_ms` with a fresh random nonce
    /// and, optionally, the workload's public key (SubjectPublicKeyInfo, DER).
    pub fn attest_now(
        &self,
        measurement: &Measurement,
        timestamp_ms: i64,
        public_key: Option<&[u8]>,
    ) -> Result<String, AttestError> {
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| AttestError::Malformed("no randomness"))?;
        self.attest(&Claims {
            measurement: measurement.to_string(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            timestamp: timestamp_ms,
            public_key: public_key.map(|k| URL_SAFE_NO_PAD.encode(k)),
        })
    }
}

#[cfg(test)]
mod tests;
