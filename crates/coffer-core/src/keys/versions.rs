//! New versions: adding one (the next number, with what follows from it in the same
//! transaction), simple rotation (optionally capped, for AWS's on-demand limit) and
//! spare versions.

use super::{KeyService, SCHEDULER, nothing_more, promotion, require_enabled};
use crate::audit::Actor;
use crate::error::{CoreError, CoreResult};
use crate::event::Event;
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::key::{Key, KeyVersion};
use crate::lifecycle::VersionState;
use crate::store::{Change, Record};

impl KeyService {
    /// Adds the next version in `state`, then applies what `then` derives from it (the
    /// primary move of a simple rotation), in one transaction recorded as `kind`.
    async fn add_version(
        &self,
        key: &Key,
        state: VersionState,
        then: impl FnOnce(&KeyVersion, &[KeyVersion]) -> CoreResult<(Vec<Change>, String)>,
        kind: &str,
        actor: &Actor,
        cap: Option<usize>,
    ) -> CoreResult<KeyVersion> {
        let versions = self.versions(key.tenant, key.id).await?;
        if let Some(cap) = cap {
            // Counted after the versions are read, and the new version takes the next
            // number from them: a rotation that commits in between holds that number
            // (unique per key), so this insert fails instead of passing the cap.
            let events = self.store.key_events(key.tenant, key.id).await?;
            let done = events
                .iter()
                .filter(|e| e.kind == "key.rotated" && e.actor.as_deref() != Some(SCHEDULER))
                .count();
            if done >= cap {
                return Err(CoreError::LimitReached(
                    "the key has been rotated on demand as many times as allowed",
                ));
            }
        }
        let next = versions
            .iter()
            .map(|v| v.number)
            .max()
            .unwrap_or(VersionNumber::FIRST)
            .next();
        let kek = self.tenant_kek(key.tenant).await?;
        let mut version = self.new_version(&kek, key, next, state, None)?;
        // The new row is tagged as inserted; what follows it in the transaction (the
        // primary move) re-tags the rows it alters, the new one included.
        let sealed = self
            .seal
            .seal_version(key.tenant, &mut version)
            .and_then(|()| then(&version, &versions))
            .and_then(|(changes, detail)| {
                let mut rows = versions.clone();
                rows.push(version.clone());
                let changes = if changes.is_empty() {
                    changes
                } else {
                    self.seal.seal_changes(key, &rows, &changes)?
                };
                Ok((changes, detail))
            });
        let (changes, detail) = match sealed {
            Ok(done) => done,
            Err(error) => return self.discard_if_failed(&version, Err(error)),
        };
        let now = self.clock.now();
        let created = Event::key(
            key.tenant,
            key.id,
            Some(next),
            "version.created",
            state.as_str(),
            now,
        );
        let record = if changes.is_empty() {
            Record::event(actor, created)
        } else {
            // The history keeps both steps; the audit entry names the whole change.
            let event = Event::key(key.tenant, key.id, Some(next), kind, detail, now);
            let mut record = Record::event(actor, event);
            record.events.insert(0, created);
            record
        };
        let stored = self
            .store
            .add_version(key.tenant, &version, &changes, &record)
            .await;
        self.discard_if_failed(&version, stored)?;
        Ok(version)
    }

    /// Adds a version in `state` (`pending` for a rotation saga, `inactive` for a spare).
    pub async fn add_version_to(
        &self,
        tenant: TenantId,
        id: KeyId,
        state: VersionState,
        actor: &Actor,
    ) -> CoreResult<KeyVersion> {
        let key = self.key(tenant, id).await?;
        self.add_version(&key, state, nothing_more, "version.created", actor, None)
            .await
    }

    /// Simple rotation: a new version becomes primary; the old one stays active for
    /// decryption and verification until retired.
    /// The new version, its activation and the primary move commit in one transaction.
    pub async fn rotate(
        &self,
        tenant: TenantId,
        id: KeyId,
        actor: &Actor,
    ) -> CoreResult<KeyVersion> {
        self.rotate_capped(tenant, id, actor, None).await
    }

    /// [`Keys::rotate`], refused (`LimitReached`) when the key was already rotated
    /// `cap` times by callers (rotations by the scheduler do not count). Race-free:
    /// concurrent rotations cannot both pass the count (see `add_version`).
    pub async fn rotate_capped(
        &self,
        tenant: TenantId,
        id: KeyId,
        actor: &Actor,
        cap: Option<usize>,
    ) -> CoreResult<KeyVersion> {
        let key = self.key(tenant, id).await?;
        require_enabled(&key)?;
        let promote = |new: &KeyVersion, versions: &[KeyVersion]| {
            let primary = versions
                .iter()
                .find(|v| v.primary)
                .ok_or(CoreError::NotFound("primary version"))?;
            Ok((
                promotion(primary.number, new.number, VersionState::Pending),
                format!("primary {} -> {}", primary.number, new.number),
            ))
        };
        let version = self
            .add_version(
                &key,
                VersionState::Pending,
                promote,
                "key.rotated",
                actor,
                cap,
            )
            .await?;
        Ok(KeyVersion {
            state: VersionState::Active,
            primary: true,
            ..version
        })
    }

    /// Adds a spare `inactive` version (a backup to activate later).
    pub async fn add_spare(
        &self,
        tenant: TenantId,
        id: KeyId,
        actor: &Actor,
    ) -> CoreResult<KeyVersion> {
        let key = self.key(tenant, id).await?;
        require_enabled(&key)?;
        let state = VersionState::Inactive;
        self.add_version(&key, state, nothing_more, "version.created", actor, None)
            .await
    }
}
