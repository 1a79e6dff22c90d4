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

/// The attestation document a request carries, and what checking it found (for the
/// operation's audit entry).
#[derive(Debug, Default)]
pub struct Presented<'a> {
    document: Option<&'a [u8]>,
    seen: OnceLock<String>,
}

impl<'a> Presented<'a> {
    /// A request carrying `document` (or none).
    pub fn new(document: Option<&'a [u8]>) -> Self {
        Self {
            document,
            seen: OnceLock::new(),
        }
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
    metrics::counter!("kms_reject_total", "reason" => "attestation").increment(1);
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
        let Some(policy) = entry.attestation.as_ref().filter(|p| p.requires(op)) else {
            return Ok(None);
        };
        let Some(document) = presented.document else {
            return Err(refused(
                presented,
                format!("attestation: none (policy v{})", policy.version),
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
                    format!("attestation: refused ({e}) (policy v{})", policy.version),
                    KmsError::AttestationRequired(e.to_string()),
                ));
            }
        };
        let seen = format!(
            "attestation: {} measurement={}",
            attested.format.as_str(),
            attested.measurement
        );
        if !policy.measurements.contains(&attested.measurement) {
            return Err(refused(
                presented,
                format!("{seen} not allowed (policy v{})", policy.version),
                KmsError::MeasurementNotAllowed(attested.measurement.to_string()),
            ));
        }
        presented.saw(format!("{seen} allowed (policy v{})", policy.version));
        Ok(Some(attested))
    }
}
