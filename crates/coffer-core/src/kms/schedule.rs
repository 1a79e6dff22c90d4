//! The scheduler pass: scheduled rotation, retirement after an overlap, retirement after
//! a quiet period (`quiet.rs`), and scheduled deletion (`deletion.rs`).
//!
//! Scheduled rotation: keys whose `rotation.period` has passed since their primary
//! version was created get a new primary (simple rotation: the old version stays
//! `active` for decryption and verification). The server runs this every minute.
//!
//! Multi-replica deployments run it on every replica; the store's compare-and-set on
//! the primary pointer makes a second replica's attempt fail harmlessly (`Conflict`),
//! so at most one new version becomes primary per period. A lease, so only one replica
//! even tries, is left to the scheduler work of validity-driven rotation.

use super::{Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::ids::KeyId;
use crate::lifecycle::{KeyState, VersionState};

/// How long a scheduler pass's lease lasts; passes run every minute, so a crashed
/// holder's lease is taken over within this.
const SCHEDULER_LEASE: std::time::Duration = std::time::Duration::from_secs(90);

impl Kms {
    /// One scheduler pass, if `holder` (this replica) holds the scheduler lease: with
    /// several replicas on one database, exactly one acts. Returns false when another
    /// replica holds it.
    pub async fn scheduled_pass(&self, holder: &str) -> KmsResult<bool> {
        let now = self.keys.clock().now();
        if !self
            .keys
            .store()
            .try_lease("scheduler", holder, now, now.plus(SCHEDULER_LEASE))
            .await?
        {
            return Ok(false);
        }
        self.rotate_due_keys().await?;
        self.retire_overlapped_versions().await?;
        self.retire_quiet_versions().await?;
        self.destroy_due_keys().await?;
        Ok(true)
    }

    /// Rotates every enabled key whose period has passed; returns the keys rotated.
    pub async fn rotate_due_keys(&self) -> KmsResult<Vec<KeyId>> {
        let now = self.keys.clock().now();
        let actor = Actor::new(
            "coffer-scheduler",
            format!("schedule:{}", now.millis()),
            "keys.rotate.scheduled",
        );
        let mut rotated = Vec::new();
        for tenant in self.keys.store().list_tenants().await? {
            for key in self.keys.store().list_keys(tenant.id).await? {
                if key.state != KeyState::Enabled
                    || (key.rotation.period.is_none() && key.rotation.before_expiry.is_none())
                {
                    continue;
                }
                let versions = self.keys.versions(tenant.id, key.id).await?;
                let Some(primary) = versions.iter().find(|v| v.primary) else {
                    continue;
                };
                // Due when the period has passed since the primary was created, or when
                // the primary expires within `before_expiry` (seed 004).
                let period_due = key
                    .rotation
                    .period
                    .is_some_and(|p| now >= primary.created_at.plus(p.get()));
                let expiry_due = match (key.rotation.before_expiry, primary.not_after) {
                    (Some(before), Some(not_after)) => now >= not_after.minus(before.get()),
                    _ => false,
                };
                if !period_due && !expiry_due {
                    continue;
                }
                let outcome = self.keys.rotate(tenant.id, key.id, &actor).await;
                self.forget_key(tenant.id, key.id);
                // A rotation records itself with its change; a failed one is recorded here.
                if let Err(error) = &outcome {
                    let code = match error {
                        crate::CoreError::Conflict(_)
                        | crate::CoreError::Store(crate::StoreError::Conflict(_)) => "conflict",
                        _ => "internal",
                    };
                    let mut entry = actor.entry(Some(tenant.id), (Some(key.id), None), now, None);
                    code.clone_into(&mut entry.outcome);
                    self.audit
                        .record(entry)
                        .await
                        .map_err(|e| KmsError::Unavailable(e.to_string()))?;
                }
                match outcome {
                    Ok(_) => rotated.push(key.id),
                    Err(error) => {
                        tracing::warn!(key = %key.id, %error, "scheduled rotation failed")
                    }
                }
            }
        }
        Ok(rotated)
    }

    /// Retires versions replaced more than `rotation.overlap` ago: their tracked data
    /// keys are rewrapped to the primary first (so nothing is orphaned), then the
    /// version goes `retiring` → `retired`. Returns `(key, version)` pairs retired.
    pub async fn retire_overlapped_versions(&self) -> KmsResult<Vec<(KeyId, u32)>> {
        let now = self.keys.clock().now();
        let mut retired = Vec::new();
        for tenant in self.keys.store().list_tenants().await? {
            for key in self.keys.store().list_keys(tenant.id).await? {
                let Some(overlap) = key.rotation.overlap else {
                    continue;
                };
                let versions = self.keys.versions(tenant.id, key.id).await?;
                let Some(primary) = versions.iter().find(|v| v.primary) else {
                    continue;
                };
                // Active non-primary versions (replaced by simple rotation) and `retiring`
                // ones (left by a rotation saga for the overlap).
                let candidates = versions.iter().filter(|v| {
                    !v.primary && matches!(v.state, VersionState::Active | VersionState::Retiring)
                });
                for old in candidates {
                    // Replaced when the next version was created.
                    let replaced_at = versions
                        .iter()
                        .filter(|v| v.number > old.number && v.state != VersionState::Destroyed)
                        .map(|v| v.created_at)
                        .min();
                    let Some(replaced_at) = replaced_at else {
                        continue;
                    };
                    if now < replaced_at.plus(overlap.get()) {
                        continue;
                    }
                    self.rewrap_tracked_between(tenant.id, key.id, old.number, primary.number)
                        .await?;
                    let actor = Actor::new(
                        "coffer-scheduler",
                        format!("schedule:{}", now.millis()),
                        "keys.retire.overlap",
                    );
                    if old.state == VersionState::Active {
                        self.keys
                            .set_version_state(
                                tenant.id,
                                key.id,
                                old.number,
                                VersionState::Retiring,
                                &actor,
                            )
                            .await?;
                    }
                    self.keys
                        .set_version_state(
                            tenant.id,
                            key.id,
                            old.number,
                            VersionState::Retired,
                            &actor,
                        )
                        .await?;
                    self.forget_key(tenant.id, key.id);
                    retired.push((key.id, old.number.get()));
                }
            }
        }
        Ok(retired)
    }
}
