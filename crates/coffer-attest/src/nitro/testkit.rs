//! Nitro attestation documents of the real structure under a test root built here
//! (feature `testing`): a P-384 root, an intermediate CA and a leaf, as AWS's chain is
//! laid out, and documents signed by the leaf with ES384. The private keys never leave
//! this module; a test chooses the PCR0, nonce, timestamp and public key, or breaks one
//! link on purpose.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
};
use ciborium::Value;

/// A P-384 key that signs certificates for rcgen through aws-lc-rs.
struct P384 {
    asn1: EcdsaKeyPair,
    fixed: EcdsaKeyPair,
}

impl P384 {
    fn generate() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &SystemRandom::new())
                .expect("P-384 key");
        Self {
            asn1: EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8.as_ref())
                .expect("key"),
            fixed: EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref())
                .expect("key"),
        }
    }
}

impl rcgen::PublicKeyData for P384 {
    fn der_bytes(&self) -> &[u8] {
        self.asn1.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P384_SHA384
    }
}

impl rcgen::SigningKey for P384 {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.asn1
            .sign(&SystemRandom::new(), msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Validity of a test certificate, in Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Not before.
    pub from: i64,
    /// Not after.
    pub until: i64,
}

fn params(cn: &str, ca: bool, validity: Validity) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(validity.from).expect("time");
    params.not_after = time::OffsetDateTime::from_unix_timestamp(validity.until).expect("time");
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).expect("random serial");
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.is_ca = if ca {
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
    } else {
        rcgen::IsCa::ExplicitNoCa
    };
    params
}

/// A test root, an intermediate and a leaf key whose certificate they issue.
pub struct TestChain {
    /// The root certificate (DER): configure it as the trusted Nitro root.
    pub root: Vec<u8>,
    /// The intermediate (DER).
    pub intermediate: Vec<u8>,
    /// The leaf (DER).
    pub leaf: Vec<u8>,
    leaf_key: P384,
}

impl std::fmt::Debug for TestChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestChain([keys elided])")
    }
}

/// What a test document says.
#[derive(Debug, Clone)]
pub struct Claims {
    /// PCR0 (48 bytes).
    pub pcr0: [u8; 48],
    /// Unix milliseconds.
    pub timestamp_ms: i64,
    /// The nonce (none: the field is null).
    pub nonce: Option<Vec<u8>>,
    /// The enclave's public key.
    pub public_key: Option<Vec<u8>>,
}

impl TestChain {
    /// A chain valid over `validity` (every certificate), the intermediate a CA when
    /// `intermediate_is_ca` (a test of the CA check passes false).
    pub fn new(validity: Validity, intermediate_is_ca: bool) -> Self {
        let root_key = P384::generate();
        let root = params("test.nitro-enclaves", true, validity)
            .self_signed(&root_key)
            .expect("root");
        let intermediate_key = P384::generate();
        let root_issuer =
            rcgen::Issuer::new(params("test.nitro-enclaves", true, validity), &root_key);
        let intermediate = params("zonal.test.nitro-enclaves", intermediate_is_ca, validity)
            .signed_by(&intermediate_key, &root_issuer)
            .expect("intermediate");
        let intermediate_issuer = rcgen::Issuer::new(
            params("zonal.test.nitro-enclaves", intermediate_is_ca, validity),
            &intermediate_key,
        );
        let leaf_key = P384::generate();
        let leaf = params("i-0test-enc0.test.aws", false, validity)
            .signed_by(&leaf_key, &intermediate_issuer)
            .expect("leaf");
        Self {
            root: root.der().to_vec(),
            intermediate: intermediate.der().to_vec(),
            leaf: leaf.der().to_vec(),
            leaf_key,
        }
    }

    /// The root as PEM (what `attestation.nitro_root_file` holds).
    pub fn root_pem(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.root);
        let lines: Vec<String> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// The payload map of `claims` under this chain.
    pub fn payload(&self, claims: &Claims) -> Vec<(Value, Value)> {
        let pcrs = (0..16u8)
            .map(|i| {
                let digest = if i == 0 {
                    claims.pcr0.to_vec()
                } else {
                    vec![0; 48]
                };
                (Value::Integer(i.into()), Value::Bytes(digest))
            })
            .collect();
        let optional = |b: &Option<Vec<u8>>| b.clone().map_or(Value::Null, Value::Bytes);
        vec![
            (text("module_id"), text("i-0test-enc0")),
            (text("digest"), text("SHA384")),
            (
                text("timestamp"),
                Value::Integer(u64::try_from(claims.timestamp_ms).expect("ms").into()),
            ),
            (text("pcrs"), Value::Map(pcrs)),
            (text("certificate"), Value::Bytes(self.leaf.clone())),
            (
                text("cabundle"),
                Value::Array(vec![
                    Value::Bytes(self.root.clone()),
                    Value::Bytes(self.intermediate.clone()),
                ]),
            ),
            (text("public_key"), optional(&claims.public_key)),
            (text("user_data"), Value::Null),
            (text("nonce"), optional(&claims.nonce)),
        ]
    }

    /// A document carrying `claims`, signed by the leaf (ES384).
    pub fn document(&self, claims: &Claims) -> Vec<u8> {
        self.sign(self.payload(claims), -35)
    }

    /// A document of `payload` with `alg` in its protected header, signed by the leaf.
    pub fn sign(&self, payload: Vec<(Value, Value)>, alg: i64) -> Vec<u8> {
        let protected = cbor(&Value::Map(vec![(
            Value::Integer(1.into()),
            Value::Integer(alg.into()),
        )]));
        let payload = cbor(&Value::Map(payload));
        let signed = super::sig_structure(&protected, &payload).expect("sig structure");
        let signature = self
            .leaf_key
            .fixed
            .sign(&SystemRandom::new(), &signed)
            .expect("sign")
            .as_ref()
            .to_vec();
        cbor(&Value::Tag(
            18,
            Box::new(Value::Array(vec![
                Value::Bytes(protected),
                Value::Map(Vec::new()),
                Value::Bytes(payload),
                Value::Bytes(signature),
            ])),
        ))
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn cbor(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR");
    out
}
