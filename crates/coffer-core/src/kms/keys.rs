//! Key management: create, list, show, rotate, change state.

use std::time::Duration;

use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::key::{Key, KeyPurpose, KeyVersion};
use crate::keys::NewKey;
use crate::lifecycle::KeyState;
use crate::token::Operation;
use coffer_crypto::KeySpec;

/// A key with its versions, as management answers show it.
#[derive(Debug, Clone)]
pub struct KeyDetails {
    /// The key.
    pub key: Key,
    /// Its versions (wrapped material omitted).
    pub versions: Vec<KeyVersion>,
}

/// Filters of a key listing.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Only this purpose.
    pub purpose: Option<KeyPurpose>,
    /// Only this spec.
    pub spec: Option<KeySpec>,
    /// Only this state.
    pub state: Option<KeyState>,
}

fn without_material(mut versions: Vec<KeyVersion>) -> Vec<KeyVersion> {
    for version in &mut versions {
        version.wrapped_material = Vec::new();
    }
    versions
}

impl Kms {
    async fn details(&self, key: Key) -> KmsResult<KeyDetails> {
        let versions = without_material(self.keys.versions(key.tenant, key.id).await?);
        Ok(KeyDetails { key, versions })
    }

    /// Creates a key.
    pub async fn create_key(&self, caller: &Caller, request: NewKey) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.create");
        let result = self.create_key_unaudited(caller, &actor, request).await;
        self.settled(caller, &actor, None, result).await
    }

    /// Creates a key.
    pub(super) async fn create_key_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        request: NewKey,
    ) -> KmsResult<KeyDetails> {
        if !caller.grants.allows_op(Operation::KeysCreate) {
            return Err(KmsError::Forbidden(
                "the token does not allow creating keys",
            ));
        }
        let tenant = Self::tenant_of(caller)?;
        let kek = self.tenant_key(tenant).await?;
        let (key, first) = self
            .keys
            .create_key_under(tenant, &kek, request, actor)
            .await?;
        Ok(KeyDetails {
            key,
            versions: without_material(vec![first]),
        })
    }

    /// Lists the caller's keys.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        filter: &KeyFilter,
    ) -> KmsResult<Vec<KeyDetails>> {
        let result = self.list_keys_unaudited(caller, filter).await;
        self.audited(caller, "keys.list", None, result).await
    }

    /// Lists the caller's keys (within its key scope).
    pub(super) async fn list_keys_unaudited(
        &self,
        caller: &Caller,
        filter: &KeyFilter,
    ) -> KmsResult<Vec<KeyDetails>> {
        if !caller.grants.allows_op(Operation::KeysRead) {
            return Err(KmsError::Forbidden("the token does not allow reading keys"));
        }
        let tenant = Self::tenant_of(caller)?;
        let mut out = Vec::new();
        for key in self.keys.store().list_keys(tenant).await? {
            let wanted = filter.purpose.is_none_or(|p| p == key.purpose)
                && filter.spec.is_none_or(|s| s == key.spec)
                && filter.state.is_none_or(|s| s == key.state)
                && caller.grants.allows_key(&key);
            if wanted {
                out.push(self.details(key).await?);
            }
        }
        Ok(out)
    }

    /// Shows one key.
    pub async fn show_key(&self, caller: &Caller, reference: &str) -> KmsResult<KeyDetails> {
        let result = self.show_key_unaudited(caller, reference).await;
        self.audited(caller, "keys.show", Some(reference), result)
            .await
    }

    /// Shows one key.
    pub(super) async fn show_key_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<KeyDetails> {
        let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
        // Fresh from the store: management views must not lag behind the cache TTL.
        let key = self.keys.key(entry.key.tenant, entry.key.id).await?;
        self.details(key).await
    }

    /// Rotates a key.
    pub async fn rotate_key(&self, caller: &Caller, reference: &str) -> KmsResult<KeyVersion> {
        self.rotate_key_capped(caller, reference, None).await
    }

    /// Rotates, refused (`LimitReached`) once the key has been rotated `cap` times by
    /// callers (AWS's limit on on-demand rotations); the count and the rotation cannot
    /// interleave with another rotation of the key.
    pub async fn rotate_key_capped(
        &self,
        caller: &Caller,
        reference: &str,
        cap: Option<usize>,
    ) -> KmsResult<KeyVersion> {
        let actor = caller.actor("keys.rotate");
        let result = self
            .rotate_key_unaudited(caller, &actor, reference, cap)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Rotates: a new version becomes primary.
    pub(super) async fn rotate_key_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        cap: Option<usize>,
    ) -> KmsResult<KeyVersion> {
        let entry = self
            .key_for(caller, Operation::KeysRotate, reference)
            .await?;
        let (tenant, id) = (entry.key.tenant, entry.key.id);
        let result = self.keys.rotate_capped(tenant, id, actor, cap).await;
        self.cache.invalidate(tenant, id);
        let mut version = result?;
        version.wrapped_material = Vec::new();
        Ok(version)
    }

    /// Cancels a scheduled deletion.
    pub async fn cancel_deletion(&self, caller: &Caller, reference: &str) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.cancel_deletion");
        let result = self
            .cancel_deletion_unaudited(caller, &actor, reference)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Cancels a scheduled deletion (the key becomes `disabled`).
    pub(super) async fn cancel_deletion_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
    ) -> KmsResult<KeyDetails> {
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        let (tenant, id) = (entry.key.tenant, entry.key.id);
        let result = self.keys.cancel_deletion(tenant, id, actor).await;
        self.cache.invalidate(tenant, id);
        self.details(result?).await
    }

    /// Changes a key's state.
    pub async fn set_key_state(
        &self,
        caller: &Caller,
        reference: &str,
        to: KeyState,
        waiting: Option<Duration>,
    ) -> KmsResult<KeyDetails> {
        let op = match to {
            KeyState::Enabled => "keys.enable",
            KeyState::Disabled => "keys.disable",
            KeyState::PendingDeletion => "keys.schedule_deletion",
            KeyState::Destroyed => "keys.destroy",
        };
        let actor = caller.actor(op);
        let result = self
            .set_key_state_unaudited(caller, &actor, reference, to, waiting)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Enables, disables, schedules deletion (with a waiting period) or cancels it.
    pub(super) async fn set_key_state_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        to: KeyState,
        waiting: Option<Duration>,
    ) -> KmsResult<KeyDetails> {
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        let (tenant, id) = (entry.key.tenant, entry.key.id);
        let result = self
            .keys
            .set_key_state(tenant, id, to, waiting, actor)
            .await;
        self.cache.invalidate(tenant, id);
        self.details(result?).await
    }
}
