//! A rotation that changes the key's enclave allow-list with its switch (issue 19;
//! seed 001 rotates the token key and `KMS_ALLOWED_MEASUREMENTS` together).
//!
//! The allow-list is the measurements of the key's attestation policy. The rotation
//! records, at its start, the list to put in force and the policy version in force
//! then; `switch_pointer` stores the next policy version (the same operations, the new
//! measurements) in the transaction that makes the new version primary, by
//! compare-and-set on that policy version. So:
//! - neither runs ahead of the other: a reader sees the old version primary with the
//!   old list, or the new one with the new list, never a mix;
//! - a list changed by someone else after the start makes the switch fail before the
//!   pointer moves; the saga rolls back and both stay as the other writer left them;
//! - a rollback (allowed before the switch only) finds the previous list still in
//!   force, as it never changed; and a rollback that finds the switch committed (the
//!   process died between the switch and its record) is refused, since the pointer and
//!   the list did move: the rotation is resumed, never half undone;
//! - a resumed switch finds the new version primary and moves on, so the list is
//!   stored once.

use std::collections::BTreeSet;

use super::{Kms, KmsError, KmsResult};
use crate::attestation::{AttestationPolicy, MAX_MEASUREMENTS, Measurement};
use crate::audit::Actor;
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::store::{AllowListChange, RotationRecord};

impl Kms {
    /// The allow-list change a starting rotation records: refused (`400`) when the key
    /// has no attestation policy naming operations, as the list would then guard
    /// nothing, or when the list is longer than a policy holds.
    pub(super) async fn allow_list_at_start(
        &self,
        tenant: TenantId,
        key: KeyId,
        measurements: Option<BTreeSet<Measurement>>,
    ) -> KmsResult<Option<AllowListChange>> {
        let Some(measurements) = measurements else {
            return Ok(None);
        };
        if measurements.len() > MAX_MEASUREMENTS {
            return Err(KmsError::Invalid(format!(
                "an allow-list holds at most {MAX_MEASUREMENTS} measurements"
            )));
        }
        let current = self.keys.store().attestation_policy(tenant, key).await?;
        let Some(current) = current.filter(|p| !p.operations.is_empty()) else {
            return Err(KmsError::Invalid(
                "the key's attestation policy names no operation, so an allow-list would \
                 guard nothing; set the operations first (coffer keys attestation-policy set)"
                    .into(),
            ));
        };
        Ok(Some(AllowListChange {
            from_policy: current.version,
            measurements,
        }))
    }

    /// `switch_pointer`'s effect: `new` active and primary, with the rotation's
    /// allow-list (if any) in the same transaction.
    pub(super) async fn switch_with_allow_list(
        &self,
        record: &RotationRecord,
        new: VersionNumber,
        actor: &Actor,
    ) -> KmsResult<()> {
        let (tenant, key) = (record.tenant, record.key);
        let policy = match &record.allow_list {
            None => None,
            Some(change) => {
                let current = self.keys.store().attestation_policy(tenant, key).await?;
                let version = current.as_ref().map_or(0, |p| p.version);
                let current = current
                    .filter(|p| p.version == change.from_policy)
                    .ok_or_else(|| {
                        KmsError::Conflict(format!(
                            "the attestation policy is at version {version}, not {} as when the \
                             rotation started: someone changed the allow-list meanwhile",
                            change.from_policy
                        ))
                    })?;
                Some(AttestationPolicy {
                    tenant,
                    key,
                    version: change.from_policy + 1,
                    operations: current.operations,
                    measurements: change.measurements.clone(),
                    created_at: self.keys.clock().now(),
                })
            }
        };
        let switched = self
            .keys
            .activate_with_policy(tenant, key, new, policy, actor)
            .await;
        // Dropped whatever the outcome, as a policy change does.
        self.forget_key(tenant, key);
        Ok(switched?)
    }

    /// Refuses to undo a rotation whose switch committed although its record still
    /// shows the switch due (a crash between the two): the new version is primary and
    /// the allow-list moved with it, so only going forward keeps them together.
    pub(super) fn refuse_if_switched(
        record: &RotationRecord,
        new: VersionNumber,
        primary: bool,
    ) -> KmsResult<()> {
        if primary {
            return Err(KmsError::Conflict(format!(
                "rotation {id} already made version {new} primary (its record had not caught \
                 up), so it can only move forward; resume it with: coffer rotate resume {id}",
                id = record.id
            )));
        }
        Ok(())
    }
}
