//! The end of a key: cancelling a scheduled deletion, and destroying a key whose
//! waiting period has ended (the deletion worker, `kms/deletion.rs`, calls it).

use super::KeyService;
use crate::audit::Actor;
use crate::error::{CoreError, CoreResult};
use crate::event::Event;
use crate::ids::{KeyId, TenantId};
use crate::key::Key;
use crate::lifecycle::KeyState;
use crate::store::{Change, Record};

impl KeyService {
    /// Cancels a scheduled deletion: the key returns to `disabled` (as AWS KMS), to be
    /// enabled deliberately. Refused unless the key is pending deletion and not yet due:
    /// once due, the deletion worker may already be destroying it.
    pub async fn cancel_deletion(
        &self,
        tenant: TenantId,
        id: KeyId,
        actor: &Actor,
    ) -> CoreResult<Key> {
        let key = self.key(tenant, id).await?;
        if key.state != KeyState::PendingDeletion {
            return Err(CoreError::Conflict("the key is not pending deletion"));
        }
        if key.deletion_due.is_some_and(|due| due <= self.clock.now()) {
            return Err(CoreError::Conflict(
                "the key's deletion is already due; it can no longer be cancelled",
            ));
        }
        self.set_key_state(tenant, id, KeyState::Disabled, None, actor)
            .await
    }

    /// Destroys a key pending deletion whose waiting period has ended: the key becomes
    /// `destroyed`, and every version `destroyed` with its wrapped material erased from
    /// the store, in one transaction with its audit entry ([`Change::DestroyKey`]).
    ///
    /// The store checks the due time again inside the transaction, so a deletion
    /// cancelled (and perhaps scheduled anew) after this method read the key is not
    /// carried out: the store answers `Conflict` and nothing changes.
    pub async fn destroy_due_key(
        &self,
        tenant: TenantId,
        id: KeyId,
        actor: &Actor,
    ) -> CoreResult<Key> {
        let key = self.key(tenant, id).await?;
        key.state.check(KeyState::Destroyed)?;
        let now = self.clock.now();
        if key.deletion_due.is_none_or(|due| due > now) {
            return Err(CoreError::Conflict(
                "the key's deletion waiting period has not ended",
            ));
        }
        let all = self.versions(tenant, id).await?;
        let versions = all.len();
        let event = Event::key(
            tenant,
            id,
            None,
            "key.destroyed",
            format!("material of {versions} version(s) destroyed"),
            now,
        );
        self.apply_sealed(
            &key,
            &all,
            &[Change::DestroyKey { due_by: now }],
            &Record::event(actor, event),
        )
        .await?;
        // HSM-resident versions: their objects go from the token too.
        for location in all.iter().filter_map(|v| v.hsm.as_ref()) {
            self.discard_hsm_object(location);
        }
        Ok(Key {
            state: KeyState::Destroyed,
            deletion_due: None,
            ..key
        })
    }
}
