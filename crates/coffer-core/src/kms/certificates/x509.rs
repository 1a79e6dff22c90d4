//! X.509 underneath the certificate operations: PEM in and out, inspecting a chain
//! (validity of each link, each signature checked with coffer-crypto against the next
//! link's key), and issuing a certificate signed by a Coffer key through rcgen.
//!
//! x509-parser is built without its `verify` feature and rcgen without a crypto backend:
//! every signature is made or checked by coffer-crypto, the one place Coffer does
//! cryptography.

use base64::Engine;
use coffer_crypto::{PqVerifyMode, PublicKey, VerifyingKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::{ChainLink, SignatureCheck};
use crate::kms::{KmsError, KmsResult};
use crate::time::Timestamp;

const ED25519: &str = "1.3.101.112";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// ecdsa-with-SHA384 (RFC 5758).
const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";
const SUBJECT_KEY_IDENTIFIER: &str = "2.5.29.14";

fn invalid(message: impl Into<String>) -> KmsError {
    KmsError::Invalid(message.into())
}

fn parse(der: &[u8]) -> KmsResult<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(invalid("a certificate does not parse as X.509 DER")),
    }
}

/// The DER certificates of a PEM text, in order. Every block must be a `CERTIFICATE`
/// that parses; at least one is required.
pub(super) fn from_pem(text: &str) -> KmsResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let block = block.map_err(|e| invalid(format!("the PEM does not parse: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(invalid(format!(
                "expected CERTIFICATE blocks, found {}",
                block.label
            )));
        }
        parse(&block.contents)?;
        out.push(block.contents);
    }
    if out.is_empty() {
        return Err(invalid("the PEM holds no certificate"));
    }
    Ok(out)
}

/// `-----BEGIN CERTIFICATE-----` blocks, 64 base64 characters a line (RFC 7468).
pub(super) fn to_pem(ders: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in ders {
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in text.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// The SubjectPublicKeyInfo DER of a certificate.
pub(super) fn spki(der: &[u8]) -> KmsResult<Vec<u8>> {
    Ok(parse(der)?.public_key().raw.to_vec())
}

/// A certificate's notAfter.
pub(super) fn not_after(der: &[u8]) -> KmsResult<Timestamp> {
    Ok(seconds(parse(der)?.validity().not_after.timestamp()))
}

fn seconds(s: i64) -> Timestamp {
    Timestamp::from_millis(s.saturating_mul(1000))
}

/// Every link of a chain (leaf first) as of `now`. Link `i` is checked against link
/// `i + 1`'s key; the last link against its own key if it is self-issued, otherwise it
/// stays unverified (its issuer is not in the chain).
pub(super) fn inspect(ders: &[Vec<u8>], now: Timestamp) -> KmsResult<Vec<ChainLink>> {
    let certs = ders
        .iter()
        .map(|der| parse(der))
        .collect::<KmsResult<Vec<_>>>()?;
    let mut links = Vec::with_capacity(certs.len());
    for (i, cert) in certs.iter().enumerate() {
        let issuer_key = match certs.get(i + 1) {
            Some(next) => Some(next.public_key().raw),
            None if cert.subject().as_raw() == cert.issuer().as_raw() => {
                Some(cert.public_key().raw)
            }
            None => None,
        };
        let not_before = seconds(cert.validity().not_before.timestamp());
        let not_after = seconds(cert.validity().not_after.timestamp());
        links.push(ChainLink {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before,
            not_after,
            valid_now: not_before <= now && now <= not_after,
            signature: match issuer_key {
                Some(key) => check_signature(cert, key),
                None => SignatureCheck::Unverified("issuer certificate not in the chain"),
            },
        });
    }
    Ok(links)
}

fn check_signature(cert: &X509Certificate<'_>, issuer_spki: &[u8]) -> SignatureCheck {
    let algorithm = cert.signature_algorithm.algorithm.to_id_string();
    let expected = match algorithm.as_str() {
        ED25519 => coffer_crypto::KeySpec::Ed25519,
        ECDSA_WITH_SHA256 => coffer_crypto::KeySpec::EcdsaP256,
        ECDSA_WITH_SHA384 => coffer_crypto::KeySpec::EcdsaP384,
        _ => return SignatureCheck::Unverified("unsupported algorithm"),
    };
    let Ok(public) = PublicKey::from_spki_der(issuer_spki) else {
        return SignatureCheck::Unverified("unsupported issuer key");
    };
    if public.spec() != expected {
        return SignatureCheck::Invalid;
    }
    let verified = VerifyingKey::new(public).and_then(|key| {
        key.verify(
            cert.tbs_certificate.as_ref(),
            &cert.signature_value.data,
            PqVerifyMode::And,
        )
    });
    if verified.is_ok() {
        SignatureCheck::Valid
    } else {
        SignatureCheck::Invalid
    }
}

/// RFC 5280's upper bound of a common name, in characters.
const SUBJECT_CN_MAX: usize = 64;

/// A subject common name Coffer will sign: 1-64 characters, none of them a control
/// character or a bidirectional override (which make a name display as another, in a
/// log line or a certificate viewer), and no surrounding spaces.
pub(super) fn check_subject_cn(cn: &str) -> KmsResult<()> {
    let refused = |why: &str| Err(KmsError::Invalid(format!("the subject {why}")));
    let chars = cn.chars().count();
    if chars == 0 || chars > SUBJECT_CN_MAX {
        return refused("is 1-64 characters (a common name)");
    }
    let deceptive = |c: char| {
        c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    if cn.chars().any(deceptive) {
        return refused("must not contain control characters or direction overrides");
    }
    if cn.trim() != cn {
        return refused("must not begin or end with spaces");
    }
    Ok(())
}

/// What to issue: subject name, validity and whether the subject may issue in turn.
pub(super) struct Request<'a> {
    pub subject_cn: &'a str,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub is_ca: bool,
}

/// A Coffer signing key as rcgen's signer (and the subject key as its public key).
/// Signs a certificate's to-be-signed bytes with the CA key (in memory or in the HSM);
/// `None` when it could not.
pub(super) type CaSigner<'a> = &'a dyn Fn(&[u8]) -> Option<Vec<u8>>;

struct CofferKey<'a> {
    public: &'a PublicKey,
    signer: Option<CaSigner<'a>>,
}

fn rcgen_algorithm(public: &PublicKey) -> KmsResult<&'static rcgen::SignatureAlgorithm> {
    match public {
        PublicKey::Ed25519(_) => Ok(&rcgen::PKCS_ED25519),
        PublicKey::EcdsaP256(_) => Ok(&rcgen::PKCS_ECDSA_P256_SHA256),
        PublicKey::EcdsaP384(_) => Ok(&rcgen::PKCS_ECDSA_P384_SHA384),
        _ => Err(invalid(
            "certificates are issued for Ed25519, ECDSA P-256 and ECDSA P-384 keys only",
        )),
    }
}

impl rcgen::PublicKeyData for CofferKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        match self.public {
            PublicKey::Ed25519(raw) => raw,
            PublicKey::EcdsaP256(raw) => raw,
            PublicKey::EcdsaP384(raw) => raw,
            // `rcgen_algorithm` refuses every other spec before a `CofferKey` is used.
            _ => &[],
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        rcgen_algorithm(self.public).unwrap_or(&rcgen::PKCS_ED25519)
    }
}

impl rcgen::SigningKey for CofferKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // ECDSA signatures come DER-encoded (Ecdsa-Sig-Value), as X.509 wants them.
        self.signer
            .and_then(|sign| sign(msg))
            .ok_or(rcgen::Error::RemoteKeyError)
    }
}

/// RFC 7093 method 1: the first 160 bits of SHA-256 over the SPKI.
fn key_identifier(spki: &[u8]) -> Vec<u8> {
    coffer_crypto::hash::sha256(&[spki])[..20].to_vec()
}

/// The CA certificate's subject as an rcgen name, attribute by attribute with its
/// string type, so the issued certificate's issuer field matches it.
fn name_of(ca: &X509Certificate<'_>) -> KmsResult<rcgen::DistinguishedName> {
    use x509_parser::asn1_rs::Tag;
    let unsupported = || invalid("the CA certificate's subject cannot be carried over");
    let mut name = rcgen::DistinguishedName::new();
    for attribute in ca.subject().iter_attributes() {
        let oid: Vec<u64> = attribute
            .attr_type()
            .iter()
            .ok_or_else(unsupported)?
            .collect();
        let text = attribute.as_str().map_err(|_| unsupported())?.to_owned();
        let value = match attribute.attr_value().header.tag() {
            Tag::PrintableString => {
                rcgen::DnValue::PrintableString(text.try_into().map_err(|_| unsupported())?)
            }
            Tag::Ia5String => {
                rcgen::DnValue::Ia5String(text.try_into().map_err(|_| unsupported())?)
            }
            Tag::Utf8String => rcgen::DnValue::Utf8String(text),
            _ => return Err(unsupported()),
        };
        name.push(rcgen::DnType::from_oid(&oid), value);
    }
    Ok(name)
}

fn ca_key_identifier(ca: &X509Certificate<'_>) -> Vec<u8> {
    ca.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == SUBJECT_KEY_IDENTIFIER)
        .and_then(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(id.0.to_vec())
            }
            _ => None,
        })
        .unwrap_or_else(|| key_identifier(ca.public_key().raw))
}

fn datetime(t: Timestamp) -> KmsResult<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.millis().div_euclid(1000))
        .map_err(|_| invalid("the validity is out of range"))
}

/// Issues a certificate for `subject` signed by `ca_sign` (the CA key, whose public
/// key is `ca_public`). `ca_cert` is the CA's own
/// certificate (its subject becomes the issuer); without one the certificate is
/// self-issued, which is only meaningful when `subject` is the CA's own key.
pub(super) fn issue(
    request: &Request<'_>,
    subject: &PublicKey,
    ca_public: &PublicKey,
    ca_sign: CaSigner<'_>,
    ca_cert: Option<&[u8]>,
) -> KmsResult<Vec<u8>> {
    rcgen_algorithm(subject)?;
    rcgen_algorithm(ca_public)?;
    let mut serial = [0u8; 16];
    coffer_crypto::rng::fill(&mut serial)?;
    serial[0] &= 0x7f; // a positive INTEGER of 16 bytes
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, request.subject_cn);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.not_before = datetime(request.not_before)?;
    params.not_after = datetime(request.not_after)?;
    params.key_identifier_method =
        rcgen::KeyIdMethod::PreSpecified(key_identifier(&subject.to_spki_der()));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    if request.is_ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages.extend([
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ]);
    } else {
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
    }
    let signer = CofferKey {
        public: ca_public,
        signer: Some(ca_sign),
    };
    let subject_key = CofferKey {
        public: subject,
        signer: None,
    };
    let certificate = match ca_cert {
        None => params.self_signed(&signer),
        Some(der) => {
            let ca = parse(der)?;
            let mut issuer_params = rcgen::CertificateParams::default();
            issuer_params.distinguished_name = name_of(&ca)?;
            issuer_params.key_identifier_method =
                rcgen::KeyIdMethod::PreSpecified(ca_key_identifier(&ca));
            params.use_authority_key_identifier_extension = true;
            let issuer = rcgen::Issuer::new(issuer_params, &signer);
            let issued = params.signed_by(&subject_key, &issuer);
            // The issuer field must name the CA exactly, or the chain does not link.
            if let Ok(cert) = &issued
                && parse(cert.der())?.issuer().as_raw() != ca.subject().as_raw()
            {
                return Err(invalid(
                    "the CA certificate's subject cannot be carried over",
                ));
            }
            issued
        }
    }
    .map_err(|e| KmsError::Internal(format!("issuing a certificate: {e}")))?;
    Ok(certificate.der().to_vec())
}

#[cfg(test)]
mod subject_tests {
    use super::check_subject_cn;

    #[test]
    fn subject_names_refuse_control_characters_overrides_and_absurd_lengths() {
        for good in ["Release CA", "attestation signer", "é".repeat(64).as_str()] {
            assert!(check_subject_cn(good).is_ok(), "{good:?}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            long.as_str(),
            "CA\nCN=Other",
            "tab\there",
            "nul\0",
            "evil\u{202E}moc.elpmaxe",
            "\u{2066}isolate",
            " padded",
            "padded ",
        ] {
            assert!(check_subject_cn(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
