//! Integrity failures: stored rows that do not match what binds them (a token record's
//! grant against its MAC, a published public key or a key's spec against the key
//! material, wrapped material that no longer opens). Each is logged, counted in
//! `kms_integrity_failed_total{check}`, and fails closed: the token does not
//! authenticate, the key does not serve. Never a client error: the caller did nothing
//! wrong, so the answer is a 500 whose body names nothing.

use std::sync::atomic::Ordering;

use super::{Kms, KmsError};

/// Which binding failed (the metric's `check` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheck {
    /// A token record's kind or tenant does not match its grant tag, or a record lost
    /// its tag after grants were bound.
    TokenGrant,
    /// A version's stored public key is not the one its material derives.
    PublicKey,
    /// A version's wrapped material does not open under its tenant key.
    KeyMaterial,
    /// A key's spec or purpose is not what its material is.
    KeySpec,
    /// A key's or version's state, primary flag, validity or purpose does not match
    /// its state tag ([`crate::state_seal`]), or a row lost its tag after the binding.
    KeyState,
}

impl IntegrityCheck {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenGrant => "token_grant",
            Self::PublicKey => "public_key",
            Self::KeyMaterial => "key_material",
            Self::KeySpec => "key_spec",
            Self::KeyState => "key_state",
        }
    }
}

/// Logs an integrity failure (target `coffer::integrity`; `subject` names the row by
/// ids, never values) and counts it in `kms_integrity_failed_total{check}`.
pub(crate) fn report_integrity_failure(check: IntegrityCheck, subject: &str) {
    tracing::error!(
        target: "coffer::integrity",
        check = check.as_str(),
        subject,
        "stored data does not match its binding; refusing to use it"
    );
    metrics::counter!("kms_integrity_failed_total", "check" => check.as_str()).increment(1);
}

impl Kms {
    /// Records an integrity failure (`subject` names the row: ids only, never values)
    /// and returns the error the request fails with.
    pub(super) fn integrity_failure(&self, check: IntegrityCheck, subject: &str) -> KmsError {
        report_integrity_failure(check, subject);
        self.integrity_failures.fetch_add(1, Ordering::Relaxed);
        KmsError::Internal(format!("integrity failure ({}): {subject}", check.as_str()))
    }

    /// Integrity failures this service found since it started.
    pub fn integrity_failures(&self) -> u64 {
        self.integrity_failures.load(Ordering::Relaxed)
    }
}
