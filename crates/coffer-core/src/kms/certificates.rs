//! Certificate chains of signing key versions (seed 004: an attestation key's chain
//! expired): import a chain for a version, issue one from a tenant CA key, read it, and
//! verify every link's validity and signature.
//!
//! The chain is stored as PEM, leaf first, beside the version. A CA is simply another
//! signing key of the tenant: it gets its own self-signed certificate by issuing for
//! itself, and a certificate it issues is stored with the CA's chain appended.

#[cfg(test)]
mod fuzz_tests;
mod x509;

use std::time::Duration;

use coffer_crypto::{KeyMaterial, PublicKey, SignatureAlgorithm};

use super::SignInput;
use super::cache::CachedKey;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::audit::Actor;
use crate::event::Event;
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyPurpose;
use crate::store::Record;
use crate::time::Timestamp;
use crate::token::Operation;
use crate::usage::UseKind;

/// How a link's signature checked out against its issuer's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The issuer's key verifies it.
    Valid,
    /// It does not verify (or the issuer's key is of another algorithm).
    Invalid,
    /// Not checked, and why (an unsupported algorithm, the issuer not in the chain).
    Unverified(&'static str),
}

impl SignatureCheck {
    /// `Some(verdict)` when checked, `None` when not.
    pub fn ok(self) -> Option<bool> {
        match self {
            Self::Valid => Some(true),
            Self::Invalid => Some(false),
            Self::Unverified(_) => None,
        }
    }
}

/// One certificate of a chain, as inspected at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// Subject name (RFC 4514 string).
    pub subject: String,
    /// Issuer name.
    pub issuer: String,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
    /// True when the instant is within notBefore..=notAfter.
    pub valid_now: bool,
    /// The signature checked with the next link's key.
    pub signature: SignatureCheck,
}

/// A version's stored chain and its links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateChain {
    /// Key.
    pub key_id: KeyId,
    /// Version.
    pub version: VersionNumber,
    /// PEM, leaf first.
    pub pem: String,
    /// The links, leaf first.
    pub links: Vec<ChainLink>,
}

/// The verdict on a version's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Key.
    pub key_id: KeyId,
    /// Version.
    pub version: VersionNumber,
    /// The links, leaf first (index 0).
    pub links: Vec<ChainLink>,
    /// The index of the first link past its notAfter.
    pub first_expired: Option<usize>,
    /// Every link valid now and no signature that fails.
    pub ok: bool,
}

/// What to issue (`coffer keys issue-certificate`).
#[derive(Debug, Clone)]
pub struct IssueCertificate {
    /// The CA key (id or alias): another signing key of the tenant, or the key itself
    /// for a self-signed CA certificate.
    pub ca_key: String,
    /// The subject's common name.
    pub subject_cn: String,
    /// How long the certificate is valid from now.
    pub validity: Duration,
}

/// A chain given by a caller, read as an import reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedChain {
    /// The chain as Coffer stores it (64-column base64 blocks), leaf first.
    pub pem: String,
    /// The leaf's SubjectPublicKeyInfo (DER): an import compares it with the version's
    /// public key.
    pub leaf_spki: Vec<u8>,
    /// The links as of the instant given, leaf first.
    pub links: Vec<ChainLink>,
}

/// Reads untrusted PEM as an import does (every block a `CERTIFICATE` that parses, at
/// least one) and inspects each link as of `now`: validity, and each signature against
/// the next link's key. Any text answers a chain or an error, never a panic (the
/// `pem_chain` fuzz target and `certificates::fuzz_tests` hold this).
pub fn parse_pem_chain(pem: &str, now: Timestamp) -> KmsResult<ParsedChain> {
    let ders = x509::from_pem(pem)?;
    let leaf_spki = x509::spki(&ders[0])?;
    let links = x509::inspect(&ders, now)?;
    Ok(ParsedChain {
        pem: x509::to_pem(&ders),
        leaf_spki,
        links,
    })
}

fn public_key_of(entry: &CachedKey, number: VersionNumber) -> KmsResult<Vec<u8>> {
    entry
        .versions
        .get(&number)
        .ok_or(KmsError::NotFound("key version"))?
        .public_key
        .clone()
        .ok_or_else(|| KmsError::Invalid("the version has no public key".into()))
}

impl Kms {
    async fn stored_chain(
        &self,
        entry: &CachedKey,
        number: VersionNumber,
    ) -> KmsResult<Option<Vec<Vec<u8>>>> {
        let stored = self
            .keys
            .store()
            .get_cert_chain(entry.key.tenant, entry.key.id, number)
            .await?;
        stored
            .map(|pem| x509::from_pem(&pem))
            .transpose()
            .map_err(|_| KmsError::Internal("a stored certificate chain does not parse".into()))
    }

    async fn save_chain(
        &self,
        entry: &CachedKey,
        number: VersionNumber,
        ders: &[Vec<u8>],
        issuer: Option<String>,
        actor: &Actor,
    ) -> KmsResult<CertificateChain> {
        let now = self.keys.clock().now();
        let links = x509::inspect(ders, now)?;
        let pem = x509::to_pem(ders);
        let subject = links
            .first()
            .map_or_else(String::new, |l| l.subject.clone());
        // The entry names the CA key that signed an issued certificate.
        let (kind, detail) = match issuer {
            Some(issuer) => ("version.certificate_issued", format!("{subject}, {issuer}")),
            None => ("version.certificate_imported", subject),
        };
        let event = Event::key(
            entry.key.tenant,
            entry.key.id,
            Some(number),
            kind,
            detail,
            now,
        );
        self.keys
            .store()
            .set_cert_chain(
                entry.key.tenant,
                entry.key.id,
                number,
                Some(&pem),
                &Record::event(actor, event),
            )
            .await?;
        Ok(CertificateChain {
            key_id: entry.key.id,
            version: number,
            pem,
            links,
        })
    }

    /// Imports a certificate chain (PEM, leaf first) for a version (default: primary).
    pub async fn import_chain(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        chain_pem: &str,
    ) -> KmsResult<CertificateChain> {
        let actor = caller.actor("keys.import_chain");
        let result = self
            .import_chain_unaudited(caller, &actor, reference, version, chain_pem)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Stores `chain_pem` (leaf first) for `version` (default: the primary). The leaf
    /// must certify that version's public key.
    pub(super) async fn import_chain_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        version: Option<u32>,
        chain_pem: &str,
    ) -> KmsResult<CertificateChain> {
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        if entry.key.purpose != KeyPurpose::Sign {
            return Err(KmsError::WrongPurpose {
                purpose: entry.key.purpose.as_str(),
                operation: "carry a certificate",
            });
        }
        let number = entry.version_or_primary(version)?;
        let public = public_key_of(&entry, number)?;
        let ders = x509::from_pem(chain_pem)?;
        if x509::spki(&ders[0])? != public {
            return Err(KmsError::Invalid(
                "the certificate is for another key".into(),
            ));
        }
        self.save_chain(&entry, number, &ders, None, actor).await
    }

    /// Issues a certificate for a key's primary version from a tenant CA key.
    pub async fn issue_certificate(
        &self,
        caller: &Caller,
        reference: &str,
        request: &IssueCertificate,
    ) -> KmsResult<CertificateChain> {
        let actor = caller.actor("keys.issue_certificate");
        let result = self
            .issue_certificate_unaudited(caller, &actor, reference, request)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Issues a certificate for `reference`'s primary version, signed by the CA key's
    /// primary version, and stores it with the CA's own chain appended.
    pub(super) async fn issue_certificate_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        request: &IssueCertificate,
    ) -> KmsResult<CertificateChain> {
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        let ca = self
            .key_for(caller, Operation::Sign, &request.ca_key)
            .await?;
        require_usable(&ca, KeyPurpose::Sign, "issue a certificate")?;
        if entry.key.purpose != KeyPurpose::Sign {
            return Err(KmsError::WrongPurpose {
                purpose: entry.key.purpose.as_str(),
                operation: "carry a certificate",
            });
        }
        x509::check_subject_cn(&request.subject_cn)?;
        let number = entry.primary_number()?;
        let subject = PublicKey::from_spki_der(&public_key_of(&entry, number)?)?;
        let ca_number = ca.primary_number()?;
        let now = self.keys.clock().now();
        let ca_meta = ca
            .versions
            .get(&ca_number)
            .ok_or(KmsError::Internal("primary missing".into()))?;
        if now < ca_meta.not_before || ca_meta.not_after.is_some_and(|t| now >= t) {
            return Err(KmsError::KeyExpired(ca_number.get()));
        }
        let self_issued = ca.key.id == entry.key.id;
        // A self-issued certificate starts a chain; anything else hangs below the CA's.
        let ca_chain = if self_issued {
            Vec::new()
        } else {
            self.stored_chain(&ca, ca_number).await?.ok_or_else(|| {
                KmsError::Invalid(
                    "the CA key has no certificate: issue one for it first (with itself as CA)"
                        .into(),
                )
            })?
        };
        let not_after = now.plus(request.validity);
        if let Some(ca_leaf) = ca_chain.first() {
            let limit = x509::not_after(ca_leaf)?;
            if not_after > limit {
                return Err(KmsError::Invalid(format!(
                    "the validity outlasts the CA certificate, which expires at {} (unix ms)",
                    limit.millis()
                )));
            }
        }
        let ca_ready = ca
            .ready
            .get(&ca_number)
            .ok_or(KmsError::Internal("CA primary version not loaded".into()))?;
        let ca_public = ca_ready
            .verifier
            .as_ref()
            .map(|v| v.public_key().clone())
            .ok_or(KmsError::Internal("CA key without a public key".into()))?;
        let spec = ca.key.spec;
        // The CA signs in memory, or (an HSM-resident CA key) in the token; a token
        // failure (away, say) is kept to answer with instead of rcgen's.
        let token_failure = std::sync::Mutex::new(None);
        let ca_sign = |tbs: &[u8]| -> Option<Vec<u8>> {
            let algorithm = SignatureAlgorithm::choose(spec, None).ok()?;
            match (ca_ready.software(), ca_ready.hsm()) {
                (Some(KeyMaterial::Signing(key)), _) => key.sign(tbs).ok(),
                (_, Some(location)) => {
                    match self.hsm_sign(location, spec, algorithm, SignInput::Message(tbs)) {
                        Ok(signature) => Some(signature),
                        Err(error) => {
                            *token_failure
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                            None
                        }
                    }
                }
                _ => None,
            }
        };
        let _in_flight = self.in_flight(caller, &ca.key, ca_number, UseKind::Sign);
        let leaf = x509::issue(
            &x509::Request {
                subject_cn: &request.subject_cn,
                not_before: now,
                not_after,
                is_ca: self_issued,
            },
            &subject,
            &ca_public,
            &ca_sign,
            ca_chain.first().map(Vec::as_slice),
        )
        .map_err(|error| {
            token_failure
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .unwrap_or(error)
        })?;
        let mut ders = vec![leaf];
        ders.extend(ca_chain);
        let issuer = format!("issued by CA key {} version {}", ca.key.id, ca_number);
        self.save_chain(&entry, number, &ders, Some(issuer), actor)
            .await
    }

    /// A version's certificate chain.
    pub async fn certificate_chain(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
    ) -> KmsResult<CertificateChain> {
        let result = self
            .certificate_chain_unaudited(caller, reference, version)
            .await;
        self.audited(caller, "keys.certificate", Some(reference), result)
            .await
    }

    /// The stored chain of `version` (default: the primary). `NotFound` without one.
    pub(super) async fn certificate_chain_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
    ) -> KmsResult<CertificateChain> {
        let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
        let number = entry.version_or_primary(version)?;
        let ders = self
            .stored_chain(&entry, number)
            .await?
            .ok_or(KmsError::NotFound("certificate chain"))?;
        Ok(CertificateChain {
            key_id: entry.key.id,
            version: number,
            pem: x509::to_pem(&ders),
            links: x509::inspect(&ders, self.keys.clock().now())?,
        })
    }

    /// Checks a version's certificate chain link by link.
    pub async fn verify_chain(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
    ) -> KmsResult<ChainReport> {
        let result = self
            .verify_chain_unaudited(caller, reference, version)
            .await;
        self.audited(caller, "keys.verify_chain", Some(reference), result)
            .await
    }

    /// Checks every link of `version`'s chain: validity now and signature.
    pub(super) async fn verify_chain_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
    ) -> KmsResult<ChainReport> {
        let chain = self
            .certificate_chain_unaudited(caller, reference, version)
            .await?;
        let now = self.keys.clock().now();
        let first_expired = chain.links.iter().position(|l| now > l.not_after);
        let ok = chain
            .links
            .iter()
            .all(|l| l.valid_now && l.signature != SignatureCheck::Invalid);
        Ok(ChainReport {
            key_id: chain.key_id,
            version: chain.version,
            links: chain.links,
            first_expired,
            ok,
        })
    }
}
