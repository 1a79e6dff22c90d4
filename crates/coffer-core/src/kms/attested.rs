//! The attestation check of unwrap, datakey, sign and mac: when the key's policy puts
//! the operation behind attestation, the request's document must verify (signature,
//! chain, freshness, first use of its nonce) and its measurement be on the key's
//! allow-list. Runs after the key is resolved and found in the token's scope, before
//! any cryptography with the key.
//!
//! A refusal answers `attestation_required` (no document, or one that does not verify)
//! or `measurement_not_allowed`, is counted in `kms_reject_total{reason="attestation"}`,
//! and its audit entry says what was seen (the measurement and format, or why the
//! document was refused). An allowed use's entry names the measurement too.

use std::sync::OnceLock;

use super::cache::CachedKey;
use super::{Kms, KmsError, KmsResult};
use crate::attestation::{Attested, AttestedOp};

/// How a secret answered to an attested workload is encrypted to its public key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecipientFormat {
    /// Coffer's own (`coffer_attest::recipient`), for the native API's `attestation`
    /// field: the document is read only when the key's policy asks for the operation,
    /// and a document without a public key gets the plaintext.
    #[default]
    Coffer,
    /// AWS KMS's `CiphertextForRecipient` (`coffer_attest::recipient_cms`), for the AWS
    /// front's `Recipient`: the document is verified (signature, chain, freshness,
    /// replay) whether or not the key's policy asks, as AWS does, and must carry a
    /// public key; the plaintext is never answered.
    AwsCms,
}

/// The attestation document a request carries, and what checking it found (for the
/// operation's audit entry).
#[derive(Debug, Default)]
pub struct Presented<'a> {
    document: Option<&'a [u8]>,
    format: RecipientFormat,
    seen: OnceLock<String>,
}

impl<'a> Presented<'a> {
    /// A request carrying `document` (or none) in the native API's `attestation` field.
    pub fn new(document: Option<&'a [u8]>) -> Self {
        Self {
            document,
            format: RecipientFormat::Coffer,
            seen: OnceLock::new(),
        }
    }

    /// An AWS `Recipient`'s attestation document.
    pub fn aws_recipient(document: &'a [u8]) -> Self {
        Self {
            document: Some(document),
            format: RecipientFormat::AwsCms,
            seen: OnceLock::new(),
        }
    }

    /// How an answer to this request's workload is encrypted.
    pub(super) fn format(&self) -> RecipientFormat {
        self.format
    }

    /// What the check found, for the audit entry (nothing when the key's policy did
    /// not ask).
    pub(super) fn detail(&self) -> Option<String> {
        self.seen.get().cloned()
    }

    /// `detail` appended to `other`, for operations with a detail of their own.
    pub(super) fn detail_with(&self, other: Option<String>) -> Option<String> {
        match (other, self.detail()) {
            (Some(o), Some(d)) => Some(format!("{o}; {d}")),
            (o, d) => o.or(d),
        }
    }

    fn saw(&self, what: String) {
        let _ = self.seen.set(what);
    }
}

fn refused(presented: &Presented<'_>, what: String, error: KmsError) -> KmsError {
    crate::reject::count(crate::reject::RejectReason::Attestation);
    tracing::warn!(target: "coffer::access", seen = %what, "attestation refused");
    presented.saw(what);
    error
}

impl Kms {
    /// Checks `entry`'s attestation policy for `op` against the request's document.
    /// `Ok(None)` when the policy does not ask for `op`; the verified claims otherwise.
    pub(super) fn attested(
        &self,
        entry: &CachedKey,
        op: AttestedOp,
        presented: &Presented<'_>,
    ) -> KmsResult<Option<Attested>> {
        let policy = entry.attestation.as_ref().filter(|p| p.requires(op));
        // An AWS `Recipient` is verified even where the policy does not ask.
        if policy.is_none() && presented.format != RecipientFormat::AwsCms {
            return Ok(None);
        }
        let under = policy.map_or_else(
            || "no policy for the operation".to_owned(),
            |p| format!("policy v{}", p.version),
        );
        let Some(document) = presented.document else {
            return Err(refused(
                presented,
                format!("attestation: none ({under})"),
                KmsError::AttestationRequired(format!(
                    "the key requires an attestation document for {op}"
                )),
            ));
        };
        let now = self.keys.clock().now().millis();
        let attested = match self.attestor.verify(document, now) {
            Ok(attested) => attested,
            Err(e) => {
                return Err(refused(
                    presented,
                    format!("attestation: refused ({e}) ({under})"),
                    KmsError::AttestationRequired(e.to_string()),
                ));
            }
        };
        let seen = format!(
            "attestation: {} measurement={}",
            attested.format.as_str(),
            attested.measurement
        );
        if policy.is_some_and(|p| !p.measurements.contains(&attested.measurement)) {
            return Err(refused(
                presented,
                format!("{seen} not allowed ({under})"),
                KmsError::MeasurementNotAllowed(attested.measurement.to_string()),
            ));
        }
        presented.saw(match presented.format {
            RecipientFormat::AwsCms => format!("{seen} allowed ({under}); aws recipient"),
            RecipientFormat::Coffer => format!("{seen} allowed ({under})"),
        });
        Ok(Some(attested))
    }
}
