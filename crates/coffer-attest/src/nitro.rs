//! AWS Nitro Enclaves attestation documents.
//!
//! A document is a COSE_Sign1 (RFC 9052), optionally under CBOR tag 18:
//! `[protected: bstr, unprotected: map, payload: bstr, signature: bstr]`. The protected
//! header must say ES384 (`{1: -35}`); the signature (96 bytes, `r ‖ s`) is over the
//! `Sig_structure` `["Signature1", protected, h'', payload]` with the leaf
//! certificate's P-384 key. The payload is a CBOR map (AWS, "Verifying the root of trust"):
//! `module_id`, `digest` (`"SHA384"`), `timestamp` (Unix ms), `pcrs` (index → digest),
//! `certificate` (the leaf, DER), `cabundle` (root first, then intermediates), and the
//! optional `public_key`, `user_data`, `nonce`.
//!
//! Trust: `cabundle[0]` must be the configured root byte for byte (by default AWS's,
//! [`AWS_ROOT_PEM`]); each further certificate, and the leaf, must be signed by the one
//! before (ECDSA P-384 SHA-384), name it as issuer, and be valid now; every issuer must
//! be a CA. The measurement is PCR0 (the enclave image's SHA-384).

mod chain;
#[cfg(any(test, feature = "testing"))]
pub mod testkit;

use base64::Engine;
use ciborium::Value;

use crate::{AttestError, Attested, Format, Measurement, Verifier};

/// The AWS Nitro Enclaves root certificate (G1), as AWS publishes it at
/// <https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip> (page
/// "Verifying the root of trust",
/// <https://docs.aws.amazon.com/enclaves/latest/user/verify-root.html>). SHA-256 of its
/// DER: `641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b`, the
/// fingerprint AWS lists there (checked by a test).
pub const AWS_ROOT_PEM: &str = include_str!("nitro/aws_nitro_root_g1.pem");

/// The DER of [`AWS_ROOT_PEM`].
pub fn aws_root_der() -> Vec<u8> {
    pem_certificate_der(AWS_ROOT_PEM).unwrap_or_default()
}

/// The DER of the first `CERTIFICATE` block of `pem`.
pub fn pem_certificate_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN CERTIFICATE-----")
        .skip(1)
        .take_while(|l| *l != "-----END CERTIFICATE-----")
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// COSE's algorithm label, and ES384's value.
const ALG: i128 = 1;
const ES384: i128 = -35;

/// Reads Nitro documents.
pub(crate) struct NitroVerifier {
    root: Vec<u8>,
}

impl NitroVerifier {
    pub(crate) fn new(root: Vec<u8>) -> Self {
        Self { root }
    }
}

/// The payload's fields Coffer reads.
struct Payload {
    timestamp_ms: i64,
    pcr0: Vec<u8>,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
}

fn malformed(what: &'static str) -> AttestError {
    AttestError::Malformed(what)
}

fn decode(bytes: &[u8], what: &'static str) -> Result<Value, AttestError> {
    let mut reader = bytes;
    let value: Value = ciborium::from_reader(&mut reader).map_err(|_| malformed(what))?;
    if !reader.is_empty() {
        return Err(malformed(what));
    }
    Ok(value)
}

fn bytes(value: Value, what: &'static str) -> Result<Vec<u8>, AttestError> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(malformed(what)),
    }
}

/// An optional byte string: absent, null and empty all mean none.
fn optional_bytes(
    value: Option<Value>,
    what: &'static str,
) -> Result<Option<Vec<u8>>, AttestError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bytes(b)) if b.is_empty() => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(malformed(what)),
    }
}

/// A COSE_Sign1's parts: the protected header as sent, the payload, the signature.
struct Sign1 {
    protected: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// Splits the COSE_Sign1 into its protected header bytes, payload and signature.
fn cose_sign1(document: &[u8]) -> Result<Sign1, AttestError> {
    let value = match decode(document, "not CBOR")? {
        Value::Tag(18, inner) => *inner,
        Value::Tag(..) => return Err(malformed("not a COSE_Sign1")),
        other => other,
    };
    let Value::Array(items) = value else {
        return Err(malformed("not a COSE_Sign1"));
    };
    let [protected, unprotected, payload, signature]: [Value; 4] = items
        .try_into()
        .map_err(|_| malformed("a COSE_Sign1 has four items"))?;
    if !matches!(unprotected, Value::Map(_)) {
        return Err(malformed("the unprotected header is not a map"));
    }
    let protected = bytes(protected, "the protected header is not a byte string")?;
    let Value::Map(header) = decode(&protected, "the protected header is not CBOR")? else {
        return Err(malformed("the protected header is not a map"));
    };
    let alg = header.iter().find_map(|(k, v)| match (k, v) {
        (Value::Integer(k), Value::Integer(v)) if i128::from(*k) == ALG => Some(i128::from(*v)),
        _ => None,
    });
    if alg != Some(ES384) {
        return Err(AttestError::Untrusted(
            "the document is not signed with ES384",
        ));
    }
    Ok(Sign1 {
        protected,
        payload: bytes(payload, "the payload is not a byte string")?,
        signature: bytes(signature, "the signature is not a byte string")?,
    })
}

fn payload(bytes_: &[u8]) -> Result<Payload, AttestError> {
    let Value::Map(entries) = decode(bytes_, "the payload is not CBOR")? else {
        return Err(malformed("the payload is not a map"));
    };
    let mut fields = std::collections::BTreeMap::new();
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(malformed("a payload key is not text"));
        };
        if fields.insert(key, value).is_some() {
            return Err(malformed("a payload key appears twice"));
        }
    }
    let mut take = |name: &str| fields.remove(name);
    if !matches!(take("digest"), Some(Value::Text(d)) if d == "SHA384") {
        return Err(malformed("the digest is not SHA384"));
    }
    let timestamp_ms = match take("timestamp") {
        Some(Value::Integer(t)) => i64::try_from(i128::from(t))
            .ok()
            .filter(|t| *t > 0)
            .ok_or(malformed("the timestamp is out of range"))?,
        _ => return Err(malformed("the timestamp is missing")),
    };
    let Some(Value::Map(pcrs)) = take("pcrs") else {
        return Err(malformed("the PCRs are missing"));
    };
    let pcr0 = pcrs
        .into_iter()
        .find_map(|(k, v)| match k {
            Value::Integer(i) if i128::from(i) == 0 => Some(v),
            _ => None,
        })
        .ok_or(malformed("PCR0 is missing"))
        .and_then(|v| bytes(v, "PCR0 is not a byte string"))?;
    if pcr0.len() != 48 {
        return Err(malformed("PCR0 is not a SHA-384 digest"));
    }
    let certificate = bytes(
        take("certificate").ok_or(malformed("the certificate is missing"))?,
        "the certificate is not a byte string",
    )?;
    let Some(Value::Array(bundle)) = take("cabundle") else {
        return Err(malformed("the CA bundle is missing"));
    };
    let cabundle = bundle
        .into_iter()
        .map(|c| bytes(c, "a CA bundle entry is not a byte string"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Payload {
        timestamp_ms,
        pcr0,
        certificate,
        cabundle,
        public_key: optional_bytes(take("public_key"), "the public key is not a byte string")?,
        nonce: optional_bytes(take("nonce"), "the nonce is not a byte string")?,
    })
}

/// The bytes the COSE signature covers.
fn sig_structure(protected: &[u8], payload: &[u8]) -> Result<Vec<u8>, AttestError> {
    let structure = Value::Array(vec![
        Value::Text("Signature1".to_owned()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]);
    let mut out = Vec::with_capacity(payload.len() + protected.len() + 32);
    ciborium::into_writer(&structure, &mut out).map_err(|_| malformed("cannot encode"))?;
    Ok(out)
}

impl Verifier for NitroVerifier {
    fn format(&self) -> Format {
        Format::Nitro
    }

    /// A CBOR array of four (`0x84`) or tag 18 (`0xd2`).
    fn recognises(&self, document: &[u8]) -> bool {
        matches!(document.first(), Some(0x84 | 0xd2))
    }

    fn verify(&self, document: &[u8], now_ms: i64) -> Result<Attested, AttestError> {
        let Sign1 {
            protected,
            payload: payload_bytes,
            signature,
        } = cose_sign1(document)?;
        let payload = payload(&payload_bytes)?;
        let leaf_key = chain::verify(&self.root, &payload.cabundle, &payload.certificate, now_ms)?;
        let signed = sig_structure(&protected, &payload_bytes)?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
            &leaf_key,
        )
        .verify(&signed, &signature)
        .map_err(|_| AttestError::BadSignature)?;
        Ok(Attested {
            format: Format::Nitro,
            measurement: Measurement::from_bytes(&payload.pcr0)?,
            nonce: payload.nonce.unwrap_or_default(),
            timestamp_ms: payload.timestamp_ms,
            public_key: payload.public_key,
        })
    }
}

#[cfg(test)]
mod tests;
