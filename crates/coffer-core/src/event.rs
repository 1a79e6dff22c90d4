//! Lifecycle events: written in the same transaction as the change they record, so the
//! history of a key (`coffer keys history`) can never disagree with its state.

use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::time::Timestamp;

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The tenant.
    pub tenant: TenantId,
    /// The key, for key events.
    pub key: Option<KeyId>,
    /// The version, for version events.
    pub version: Option<VersionNumber>,
    /// What happened, e.g. `key.created`, `version.state`, `tenant.shredded`.
    pub kind: String,
    /// Details for people (states, reasons). Never secret.
    pub detail: String,
    /// Who did it (a principal name), if known.
    pub actor: Option<String>,
    /// When.
    pub at: Timestamp,
}

impl Event {
    /// An event about `key` (and optionally one of its versions).
    pub fn key(
        tenant: TenantId,
        key: KeyId,
        version: Option<VersionNumber>,
        kind: &str,
        detail: impl Into<String>,
        at: Timestamp,
    ) -> Self {
        Self {
            tenant,
            key: Some(key),
            version,
            kind: kind.to_owned(),
            detail: detail.into(),
            actor: None,
            at,
        }
    }

    /// An event about a tenant as a whole.
    pub fn tenant(tenant: TenantId, kind: &str, detail: impl Into<String>, at: Timestamp) -> Self {
        Self {
            tenant,
            key: None,
            version: None,
            kind: kind.to_owned(),
            detail: detail.into(),
            actor: None,
            at,
        }
    }
}
