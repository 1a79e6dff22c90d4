//! How an operation's outcome is recorded. Each operation's own file holds its public
//! entry, which runs the operation and then records who did what to which key and how it
//! ended, before the result is returned. If the entry cannot be recorded the result is
//! dropped and the caller gets `Unavailable` (fail closed): no ciphertext or signature
//! leaves without its audit entry.
//!
//! Changes are recorded differently: a change's `ok` entry is written by the store in
//! the change's own transaction (see `store::Record`), so a change that cannot be
//! audited does not happen. Their entries call [`Kms::settled`], which records only
//! refusals and failures (which changed nothing). Refusals are recorded up to a limit
//! per principal and window, then counted and summarised (`refusals`).

use coffer_crypto::SecretBytes;

use super::certificates::{CertificateChain, ChainReport};
use super::keys::KeyDetails;
use super::sign::Signed;
use super::unwrap::Opened;
use super::verify::Verified;
use super::wrap::Sealed;
use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::{Actor, AuditEntry};
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyVersion;
use crate::tenant::Tenant;
use crate::token::TokenId;

/// What an outcome says about the key and version it used.
pub(super) trait Subject {
    fn subject(&self) -> (Option<KeyId>, Option<VersionNumber>);
}

macro_rules! subject {
    ($t:ty, |$v:ident| $e:expr) => {
        impl Subject for $t {
            fn subject(&self) -> (Option<KeyId>, Option<VersionNumber>) {
                let $v = self;
                $e
            }
        }
    };
}

subject!(Sealed, |s| (Some(s.key_id), Some(s.version)));
subject!(Opened, |o| (Some(o.key_id), Some(o.version)));
subject!((SecretBytes, Sealed), |d| (
    Some(d.1.key_id),
    Some(d.1.version)
));
subject!(super::DataKeyPair, |p| (
    Some(p.sealed.key_id),
    Some(p.sealed.version)
));
subject!((SecretBytes, Sealed, Option<Vec<u8>>), |d| (
    Some(d.1.key_id),
    Some(d.1.version)
));
subject!(Signed, |s| (Some(s.key_id), Some(s.version)));
subject!(Verified, |v| (Some(v.key_id), Some(v.version)));
subject!((Vec<u8>, Verified), |m| (
    Some(m.1.key_id),
    Some(m.1.version)
));
subject!(KeyDetails, |d| (
    Some(d.key.id),
    d.versions.iter().find(|v| v.primary).map(|v| v.number)
));
subject!(Vec<KeyDetails>, |_l| (None, None));
subject!(KeyVersion, |v| (Some(v.key), Some(v.number)));
subject!(CertificateChain, |c| (Some(c.key_id), Some(c.version)));
subject!(ChainReport, |r| (Some(r.key_id), Some(r.version)));
subject!(Tenant, |_t| (None, None));
subject!(super::BackupMade, |_b| (None, None));
subject!((String, TokenId), |_t| (None, None));
subject!((), |_u| (None, None));
subject!(Vec<Tenant>, |_t| (None, None));
subject!((KeyId, Vec<crate::event::Event>), |h| (Some(h.0), None));
subject!((KeyId, crate::store::Tags), |t| (Some(t.0), None));
subject!(KeyId, |k| (Some(*k), None));
subject!((KeyId, Option<String>), |p| (Some(p.0), None));
subject!(crate::store::Grant, |g| (Some(g.key), None));
subject!((KeyId, Vec<crate::store::Grant>), |g| (Some(g.0), None));
subject!(super::RotationStatus, |r| (
    Some(r.record.key),
    r.record.to_version.and_then(|v| VersionNumber::new(v).ok())
));
subject!(super::RotationVerification, |v| (
    Some(v.status.record.key),
    None
));
subject!(Vec<super::RotationStatus>, |_l| (None, None));
subject!((KeyId, Vec<super::VersionReferences>), |r| (
    Some(r.0),
    None
));
subject!(super::AliasMove, |m| (Some(m.to), None));
subject!(crate::attestation::AttestationPolicy, |p| (
    Some(p.key),
    None
));
subject!((KeyId, Vec<crate::attestation::AttestationPolicy>), |p| (
    Some(p.0),
    None
));
subject!(super::AliasBinding, |b| (Some(b.key), None));
subject!(crate::store::TrackedKey, |t| (
    Some(t.key),
    VersionNumber::new(t.version).ok()
));

impl Kms {
    /// For changes: the success was recorded with the change itself; a failure changed
    /// nothing and is recorded here.
    pub(super) async fn settled<T: Subject>(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: Option<&str>,
        result: KmsResult<T>,
    ) -> KmsResult<T> {
        if result.is_ok() {
            return result;
        }
        self.audited(caller, &actor.op, reference, result).await
    }

    pub(super) async fn audited<T: Subject>(
        &self,
        caller: &Caller,
        op: &str,
        reference: Option<&str>,
        result: KmsResult<T>,
    ) -> KmsResult<T> {
        self.audited_with(caller, op, reference, None, result).await
    }

    /// [`Kms::audited`] with a `detail` naming what else was acted on.
    pub(super) async fn audited_with<T: Subject>(
        &self,
        caller: &Caller,
        op: &str,
        reference: Option<&str>,
        detail: Option<String>,
        result: KmsResult<T>,
    ) -> KmsResult<T> {
        let entry = self.entry_of(caller, op, Named::reference(reference), detail, &result);
        self.recorded(entry, result).await
    }

    /// Records `entry`, then answers `result` (or `Unavailable` if it cannot be recorded).
    /// A refusal past its principal's limit is counted instead (`refusals`).
    pub(super) async fn recorded<T>(
        &self,
        entry: AuditEntry,
        result: KmsResult<T>,
    ) -> KmsResult<T> {
        if let Err(error) = &result
            && super::refusals::is_refusal(error)
            && self.admit_refusal(&entry).await == super::refusals::Admit::Suppress
        {
            return result;
        }
        // A refusal changed nothing and hands out nothing: its entry is queued, not
        // waited for (seed 002: "401/403 must be cheap"). Everything else waits for
        // its entry to be durable (fail closed).
        let refusal = matches!(
            &result,
            Err(KmsError::Forbidden(_)
                | KmsError::Exceeds(_)
                | KmsError::NotFound(_)
                | KmsError::Unauthorized(_))
        );
        let recorded = if refusal {
            self.audit.record_refusal(entry).await
        } else {
            self.audit.record(entry).await
        };
        recorded.map_err(|e| KmsError::Unavailable(e.to_string()))?;
        result
    }

    /// Records the entries of a batch request's items, then answers each item. The
    /// items that succeeded or failed are one group (one durable commit); if it cannot
    /// be recorded, those items answer `Unavailable` (fail closed, as for a single
    /// request). Refused items are refusals like any other: under their principal's
    /// refusal limit (`refusals.rs`), queued rather than waited for, and past the limit
    /// counted instead of recorded. An item without an entry (a tracked wrap, whose
    /// entry committed with its change) answers as it is.
    pub(super) async fn audited_group<T>(
        &self,
        outcomes: Vec<(Option<AuditEntry>, KmsResult<T>)>,
    ) -> Vec<KmsResult<T>> {
        let mut group = Vec::new();
        let mut grouped = Vec::with_capacity(outcomes.len());
        let mut results = Vec::with_capacity(outcomes.len());
        for (entry, result) in outcomes {
            let Some(entry) = entry else {
                grouped.push(false);
                results.push(result);
                continue;
            };
            let refused = matches!(&result, Err(error) if super::refusals::is_refusal(error));
            grouped.push(!refused);
            if refused {
                results.push(self.refusal_queued(entry).await.and(result));
            } else {
                group.push(entry);
                results.push(result);
            }
        }
        if !group.is_empty()
            && let Err(e) = self.audit.record_group(group).await
        {
            for (result, grouped) in results.iter_mut().zip(grouped) {
                if grouped {
                    *result = Err(KmsError::Unavailable(e.to_string()));
                }
            }
        }
        results
    }

    /// The audit entry of one outcome: a success names what it used; a failure names
    /// what the request named (`named`).
    pub(super) fn entry_of<T: Subject>(
        &self,
        caller: &Caller,
        op: &str,
        named: Named<'_>,
        detail: Option<String>,
        result: &KmsResult<T>,
    ) -> AuditEntry {
        let (key, version) = match result {
            Ok(value) => {
                let (key, version) = value.subject();
                (key.map(|k| k.to_string()), version)
            }
            Err(_) => (named.key.map(|k| k.to_string()), named.version),
        };
        AuditEntry {
            at: self.keys.clock().now().millis(),
            tenant: caller
                .grants
                .tenant()
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            principal: caller.principal(),
            op: op.to_owned(),
            key: key.or_else(|| named.reference.map(str::to_owned)),
            version: version.map(VersionNumber::get),
            outcome: result
                .as_ref()
                .map_or_else(KmsError::code, |_| "ok")
                .to_owned(),
            request_id: caller.request_id.to_string(),
            detail,
        }
    }
}

/// What a request named, for the entry of its failure: the reference as given, or the
/// key and version a ciphertext's header names.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Named<'a> {
    pub reference: Option<&'a str>,
    pub key: Option<KeyId>,
    pub version: Option<VersionNumber>,
}

impl<'a> Named<'a> {
    /// The reference as given.
    pub fn reference(reference: Option<&'a str>) -> Self {
        Self {
            reference,
            ..Self::default()
        }
    }

    /// The key and version in a ciphertext's header (nothing if it has none).
    pub fn header(ciphertext: &[u8]) -> Self {
        match super::unwrap::header(ciphertext) {
            Ok((key, version)) => Self {
                reference: None,
                key: Some(key),
                version: Some(version),
            },
            Err(_) => Self::default(),
        }
    }
}
