//! `kms_reject_total{reason}`: requests Coffer refused to protect itself, other tenants
//! or a key (a quota, an attestation policy, any later limit such as back-pressure),
//! as opposed to requests that were wrong (`rejected_total{reason=<error code>}` counts every error answer).
//! One place for the metric's name and its label values, so every refusal of this kind
//! shares one series family.

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// A per-tenant quota ([`crate::quota`]).
    Quota,
    /// A key's attestation policy (`kms/attested.rs`).
    Attestation,
}

impl RejectReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quota => "quota",
            Self::Attestation => "attestation",
        }
    }
}

/// Counts one refusal.
pub fn count(reason: RejectReason) {
    crate::kms::count_reject(reason.as_str());
}
