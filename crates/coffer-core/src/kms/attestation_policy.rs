//! Reading and changing a key's attestation policy (`GET`/`PUT
//! /v1/kms/keys/{key}/attestation-policy`, `coffer keys attestation-policy`).
//!
//! A change stores the next version by compare-and-set on the current one (optionally
//! the one the caller expects), with its history event and audit entry in the same
//! transaction, then drops the key from this process's cache, so the next request is
//! checked against the new allow-list at once (other replicas within `cache_ttl`).

use std::collections::BTreeSet;

use super::{Caller, Kms, KmsError, KmsResult, require_enabled};
use crate::attestation::{AttestationPolicy, AttestedOp, MAX_MEASUREMENTS, Measurement};
use crate::event::Event;
use crate::ids::KeyId;
use crate::store::Record;
use crate::token::Operation;

/// A new version of a key's attestation policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChange {
    /// The operations that will need an attestation (empty: none).
    pub operations: BTreeSet<AttestedOp>,
    /// The measurements allowed to perform them.
    pub measurements: BTreeSet<Measurement>,
    /// Change only if the policy in force is this version (0: none yet).
    pub expect_version: Option<u32>,
}

impl Kms {
    /// Every version of `reference`'s attestation policy, oldest first.
    pub async fn attestation_policies(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<(KeyId, Vec<AttestationPolicy>)> {
        let result = async {
            let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
            let policies = self
                .keys
                .store()
                .attestation_policies(entry.key.tenant, entry.key.id)
                .await?;
            Ok((entry.key.id, policies))
        }
        .await;
        self.audited(
            caller,
            "keys.attestation_policy.show",
            Some(reference),
            result,
        )
        .await
    }

    /// Stores `change` as the next version of `reference`'s attestation policy.
    pub async fn set_attestation_policy(
        &self,
        caller: &Caller,
        reference: &str,
        change: PolicyChange,
    ) -> KmsResult<AttestationPolicy> {
        let actor = caller.actor("keys.attestation_policy");
        let result = async {
            let entry = self.key_for(caller, Operation::KeysManage, reference).await?;
            require_enabled(&entry).or_else(|e| match e {
                // A disabled key's policy may still be set before it is enabled again.
                KmsError::KeyDisabled("disabled") => Ok(()),
                other => Err(other),
            })?;
            if change.measurements.len() > MAX_MEASUREMENTS {
                return Err(KmsError::Invalid(format!(
                    "an allow-list holds at most {MAX_MEASUREMENTS} measurements"
                )));
            }
            let (tenant, key) = (entry.key.tenant, entry.key.id);
            let current = self
                .keys
                .store()
                .attestation_policy(tenant, key)
                .await?
                .map_or(0, |p| p.version);
            if let Some(expected) = change.expect_version
                && expected != current {
                    return Err(KmsError::Conflict(format!(
                        "the attestation policy is at version {current}, not {expected} as the request expects"
                    )));
                }
            let now = self.keys.clock().now();
            let policy = AttestationPolicy {
                tenant,
                key,
                version: current + 1,
                operations: change.operations,
                measurements: change.measurements,
                created_at: now,
            };
            let event = Event::key(
                tenant,
                key,
                None,
                "key.attestation_policy",
                policy.summary(),
                now,
            );
            let stored = self
                .keys
                .store()
                .put_attestation_policy(&policy, &Record::event(&actor, event))
                .await;
            // Dropped whatever the outcome: a conflict means another writer changed it.
            self.cache.invalidate(tenant, key);
            stored?;
            Ok(policy)
        }
        .await;
        self.settled(caller, &actor, Some(reference), result).await
    }
}
