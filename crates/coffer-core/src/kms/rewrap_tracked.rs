//! Moving tracked data keys from one version to another: the rotation saga's
//! `rewrap_tracked` step (paced to `rotation.rewrap_rate`, held to
//! `rotation.rewrap_window`, its progress reported) and overlap retirement (the
//! scheduler's pass, unpaced: it must not hold the scheduler lease for a window).
//!
//! Each batch is one store transaction, each item in it a compare-and-set on its
//! version, so a crash mid-rewrap resumes where the stored items say, redoing and
//! losing nothing, and two runs never undo each other.

use std::time::Duration;

use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};
use coffer_crypto::{AeadKey, EncryptionContext, KeyMaterial};

use crate::hsm::HsmKeyRef;
use crate::keyring::VersionSecret;

use super::rewrap_policy::{DailyWindow, REWRAP_BATCH};
use super::rewrap_progress::RunHandle;
use super::{Kms, KmsError, KmsResult};
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::store::{Rewrapped, RotationRecord};

/// How often a step outside its window looks at the clock again. A clock read costs
/// nothing, and a short poll lets an injected test clock open the window promptly.
const WINDOW_POLL: Duration = Duration::from_secs(1);

/// One rewrap's subject: the key, the two versions and their material.
struct Move {
    tenant: TenantId,
    key: KeyId,
    from: VersionNumber,
    to: VersionNumber,
    old_key: Sealer,
    new_key: Sealer,
}

/// An AES version's secret: in memory, or in the HSM.
#[expect(
    clippy::large_enum_variant,
    reason = "two per rewrap run; boxing would only add an allocation"
)]
enum Sealer {
    Software(AeadKey),
    Hsm(HsmKeyRef),
}

impl Kms {
    /// Rewraps every tracked data key of `key` from version `from` to `to`, whole
    /// batches back to back (overlap retirement).
    pub(super) async fn rewrap_tracked_between(
        &self,
        tenant: TenantId,
        key: KeyId,
        from: VersionNumber,
        to: VersionNumber,
    ) -> KmsResult<()> {
        let Some(subject) = self.rewrap_subject(tenant, key, from, to).await? else {
            return Ok(());
        };
        while self
            .rewrap_tracked_batch(&subject, REWRAP_BATCH)
            .await?
            .is_some()
        {}
        Ok(())
    }

    /// The saga's `rewrap_tracked` step for `record`, whose new version is `to`: paced
    /// to the configured rate, waiting outside the configured window, its progress on
    /// the rewrap board while it runs.
    pub(super) async fn rewrap_for_rotation(
        &self,
        record: &RotationRecord,
        from: VersionNumber,
        to: VersionNumber,
    ) -> KmsResult<()> {
        let (tenant, key) = (record.tenant, record.key);
        let Some(subject) = self.rewrap_subject(tenant, key, from, to).await? else {
            return Ok(());
        };
        let policy = self.options.rewrap;
        let run =
            self.rewrap_board
                .begin(&record.id, key, self.tracked_under_count(&subject).await?);
        let mut pacer = policy.pacer();
        loop {
            if let Some(window) = policy.window
                && self.wait_for_window(window, &record.id, &run).await
            {
                pacer.restart();
                run.remaining(self.tracked_under_count(&subject).await?);
            }
            pacer.admit(policy.batch()).await;
            match self.rewrap_tracked_batch(&subject, policy.batch()).await? {
                Some(moved) => run.moved(moved),
                None => {
                    run.remaining(0);
                    return Ok(());
                }
            }
        }
    }

    /// Waits until `window` is open; true if it had to wait.
    async fn wait_for_window(&self, window: DailyWindow, rotation: &str, run: &RunHandle) -> bool {
        let mut waited = false;
        loop {
            let now = self.keys.clock().now();
            if window.contains(now) {
                break;
            }
            if !waited {
                tracing::info!(
                    %rotation,
                    %window,
                    opens_in_s = window.opens_in(now).as_secs(),
                    "rewrap waits for its window"
                );
                run.waiting(Some(window));
                waited = true;
            }
            run.refresh();
            tokio::time::sleep(WINDOW_POLL.min(window.opens_in(now))).await;
        }
        if waited {
            tracing::info!(%rotation, %window, "rewrap window open");
            run.waiting(None);
        }
        waited
    }

    async fn tracked_under_count(&self, subject: &Move) -> KmsResult<u64> {
        let counts = self
            .keys
            .store()
            .count_tracked(subject.tenant, subject.key)
            .await?;
        Ok(counts
            .iter()
            .find(|(v, _)| *v == subject.from.get())
            .map_or(0, |(_, n)| *n))
    }

    /// The two versions' AES material; `None` for signing and MAC keys (they wrap
    /// nothing, so there is nothing to rewrap).
    async fn rewrap_subject(
        &self,
        tenant: TenantId,
        key: KeyId,
        from: VersionNumber,
        to: VersionNumber,
    ) -> KmsResult<Option<Move>> {
        let details = self.keys.key(tenant, key).await?;
        let versions = self.keys.versions(tenant, key).await?;
        let find = |n: VersionNumber| versions.iter().find(|v| v.number == n).cloned();
        let old_v = find(from).ok_or(KmsError::NotFound("key version"))?;
        let new_v = find(to).ok_or(KmsError::NotFound("key version"))?;
        let sealer = |secret| match secret {
            VersionSecret::Software(KeyMaterial::Aes256(key)) => Some(Sealer::Software(key)),
            VersionSecret::Hsm(hsm) if hsm.spec == coffer_crypto::KeySpec::Aes256 => {
                Some(Sealer::Hsm(hsm.location))
            }
            _ => None,
        };
        let (Some(old_key), Some(new_key)) = (
            sealer(self.keys.open_version(&details, &old_v).await?),
            sealer(self.keys.open_version(&details, &new_v).await?),
        ) else {
            return Ok(None);
        };
        Ok(Some(Move {
            tenant,
            key,
            from,
            to,
            old_key,
            new_key,
        }))
    }

    /// Rewraps up to `limit` tracked keys still under the old version in one store
    /// transaction. `None` when none are left; else how many this batch moved (fewer
    /// than it read when another run moved some first).
    async fn rewrap_tracked_batch(&self, subject: &Move, limit: u64) -> KmsResult<Option<u64>> {
        let (tenant, key) = (subject.tenant, subject.key);
        let batch = self
            .keys
            .store()
            .tracked_under(tenant, key, subject.from.get(), limit)
            .await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let mut items = Vec::with_capacity(batch.len());
        for tracked in batch {
            let pairs: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&tracked.context)
                    .map_err(|_| KmsError::Internal("corrupt tracked context".into()))?;
            let context = EncryptionContext::from_pairs(pairs)?;
            let binding = Binding {
                tenant_id: tenant.as_bytes(),
                context: &context,
            };
            let plaintext = match &subject.old_key {
                Sealer::Software(old) => envelope::open(old, &tracked.ciphertext, binding)?,
                Sealer::Hsm(old) => self.hsm_open(old, &tracked.ciphertext, binding)?,
            };
            let header = EnvelopeHeader {
                key_id: *key.as_bytes(),
                key_version: subject.to.get(),
            };
            let ciphertext = match &subject.new_key {
                Sealer::Software(new) => {
                    envelope::seal(new, header, binding, plaintext.expose_secret())?
                }
                Sealer::Hsm(new) => {
                    self.hsm_seal(new, header, binding, plaintext.expose_secret())?
                }
            };
            items.push(Rewrapped {
                track_id: tracked.track_id,
                ciphertext,
            });
        }
        let moved = self
            .keys
            .store()
            .rewrap_tracked(tenant, subject.from.get(), subject.to.get(), &items)
            .await?;
        Ok(Some(moved))
    }
}
