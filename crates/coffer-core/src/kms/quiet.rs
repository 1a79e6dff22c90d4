//! Retirement after a quiet period: a `retiring` version of a key without an overlap
//! policy (where a rotation saga leaves it, or where reactivation brings it back) is
//! retired once nothing has used it for `rotation.retire_after_quiet` and it has been
//! retiring at least that long. Part of the scheduler pass, so under the scheduler's
//! store lease one replica acts; the use it reads is the persisted tracker's (every
//! replica's flushed use) plus this process's unflushed use.
//!
//! Counting from the later of the last use and the move to `retiring` is what makes
//! reactivation stick: a version reactivated because someone found an old ciphertext
//! is not retired again by the next pass merely because it had been quiet before.
//!
//! Keys with an overlap policy keep the overlap's retirement (`schedule.rs`).

use super::{Kms, KmsResult};
use crate::audit::Actor;
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::key::Key;
use crate::lifecycle::VersionState;
use crate::time::Timestamp;

impl Kms {
    /// Retires every quiet `retiring` version of keys without an overlap policy, with
    /// an audit entry each (op `keys.retire.quiet`), after rewrapping any tracked data
    /// key still under it to the primary. Returns the `(key, version)` pairs retired.
    pub async fn retire_quiet_versions(&self) -> KmsResult<Vec<(KeyId, u32)>> {
        let now = self.keys.clock().now();
        let mut retired = Vec::new();
        for tenant in self.keys.store().list_tenants().await? {
            for key in self.keys.store().list_keys(tenant.id).await? {
                if key.rotation.overlap.is_some_and(|o| !o.get().is_zero()) {
                    continue;
                }
                for version in self.quiet_versions(&key, now).await? {
                    self.retire_quiet(tenant.id, key.id, version, now).await?;
                    retired.push((key.id, version.get()));
                }
            }
        }
        Ok(retired)
    }

    /// The `retiring`, non-primary versions of `key` quiet at `now`.
    async fn quiet_versions(&self, key: &Key, now: Timestamp) -> KmsResult<Vec<VersionNumber>> {
        let versions = self.keys.versions(key.tenant, key.id).await?;
        let retiring: Vec<VersionNumber> = versions
            .iter()
            .filter(|v| !v.primary && v.state == VersionState::Retiring)
            .map(|v| v.number)
            .collect();
        if retiring.is_empty() {
            return Ok(retiring);
        }
        let quiet = self.options.retire_after_quiet;
        let uses = self
            .references
            .key_use(self.keys.store().as_ref(), key.tenant, key.id)
            .await?;
        let events = self.keys.store().key_events(key.tenant, key.id).await?;
        let mut out = Vec::new();
        for number in retiring {
            let last_use = uses
                .iter()
                .filter(|u| u.of.version == number)
                .map(|u| u.count.last_seen)
                .max();
            let retiring_since = events
                .iter()
                .filter(|e| {
                    e.version == Some(number)
                        && e.kind == "version.state"
                        && e.detail.ends_with("-> retiring")
                })
                .map(|e| e.at)
                .max();
            let busy_since = last_use.max(retiring_since);
            let in_flight = self.references.in_flight(key.id, number) > 0;
            if !in_flight && busy_since.is_none_or(|since| now >= since.plus(quiet)) {
                out.push(number);
            }
        }
        Ok(out)
    }

    async fn retire_quiet(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
        now: Timestamp,
    ) -> KmsResult<()> {
        let versions = self.keys.versions(tenant, key).await?;
        let Some(primary) = versions.iter().find(|v| v.primary) else {
            return Ok(());
        };
        // Tracked data keys are rewrapped by the saga; one registered under the old
        // version since (a wrap that read it before the switch) must not be orphaned.
        self.rewrap_tracked_between(tenant, key, version, primary.number)
            .await?;
        let actor = Actor::new(
            "coffer-scheduler",
            format!("schedule:{}", now.millis()),
            "keys.retire.quiet",
        );
        self.keys
            .set_version_state(tenant, key, version, VersionState::Retired, &actor)
            .await?;
        self.forget_key(tenant, key);
        Ok(())
    }
}
