//! The Nitro certificate chain: `cabundle` (root first) then the leaf, each signed by
//! the one before with ECDSA P-384 SHA-384, each valid at `now`, every issuer a CA, and
//! the first exactly the configured root. Returns the leaf's public key (the point).

use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1, UnparsedPublicKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::AttestError;

const ECDSA_WITH_SHA384: &str = "1.2.840.10045.4.3.3";

/// Longest chain accepted (AWS's has four CA certificates and the leaf).
const MAX_CHAIN: usize = 8;

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, AttestError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(AttestError::Malformed("a certificate does not parse")),
    }
}

/// Verifies the chain at `now_ms` and returns the leaf's public key.
pub(super) fn verify(
    root: &[u8],
    cabundle: &[Vec<u8>],
    leaf: &[u8],
    now_ms: i64,
) -> Result<Vec<u8>, AttestError> {
    let Some(first) = cabundle.first() else {
        return Err(AttestError::Untrusted("the CA bundle is empty"));
    };
    if root.is_empty() || first.as_slice() != root {
        return Err(AttestError::Untrusted(
            "the CA bundle does not start at the trusted root",
        ));
    }
    if cabundle.len() + 1 > MAX_CHAIN {
        return Err(AttestError::Malformed("the certificate chain is too long"));
    }
    let certs = cabundle
        .iter()
        .map(Vec::as_slice)
        .chain(std::iter::once(leaf))
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    let now = now_ms.div_euclid(1000);
    for cert in &certs {
        let validity = cert.validity();
        if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
            return Err(AttestError::CertificateExpired);
        }
    }
    for pair in certs.windows(2) {
        let (issuer, subject) = (&pair[0], &pair[1]);
        let is_ca = issuer
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(AttestError::Untrusted("an issuer is not a CA"));
        }
        if subject.issuer().as_raw() != issuer.subject().as_raw() {
            return Err(AttestError::Untrusted("a certificate names another issuer"));
        }
        if subject.signature_algorithm.algorithm.to_id_string() != ECDSA_WITH_SHA384 {
            return Err(AttestError::Untrusted(
                "a certificate is not signed with ECDSA SHA-384",
            ));
        }
        UnparsedPublicKey::new(
            &ECDSA_P384_SHA384_ASN1,
            issuer.public_key().subject_public_key.data.as_ref(),
        )
        .verify(
            subject.tbs_certificate.as_ref(),
            subject.signature_value.data.as_ref(),
        )
        .map_err(|_| AttestError::Untrusted("a certificate's signature does not verify"))?;
    }
    let leaf = certs.last().ok_or(AttestError::Malformed("no leaf"))?;
    Ok(leaf.public_key().subject_public_key.data.to_vec())
}
