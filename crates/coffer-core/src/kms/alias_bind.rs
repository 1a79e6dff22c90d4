//! Giving a key one more alias, and taking one away: the AWS front's `CreateAlias` and
//! `DeleteAlias` (the native API names aliases at key creation and moves them).
//!
//! Each is one store transaction with its audit entry and an event in the key's
//! history; this replica's cache drops the key at once, others follow within
//! `cache_ttl`.

use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::event::Event;
use crate::ids::{Alias, KeyId};
use crate::store::Record;
use crate::token::Operation;

/// An alias and the key it names (or named, once removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasBinding {
    /// The alias.
    pub alias: Alias,
    /// Its key.
    pub key: KeyId,
}

fn parse(alias: &str) -> KmsResult<Alias> {
    alias
        .parse()
        .map_err(|e: crate::InvalidInput| KmsError::Invalid(e.to_string()))
}

impl Kms {
    /// Adds `alias` to the key `target` (id or alias). `Conflict` if the tenant already
    /// has the alias.
    pub async fn add_alias(
        &self,
        caller: &Caller,
        alias: &str,
        target: &str,
    ) -> KmsResult<AliasBinding> {
        let actor = caller.actor("keys.alias.add");
        let result = self
            .add_alias_unaudited(caller, &actor, alias, target)
            .await;
        self.settled(caller, &actor, Some(target), result).await
    }

    async fn add_alias_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        alias: &str,
        target: &str,
    ) -> KmsResult<AliasBinding> {
        let alias = parse(alias)?;
        let entry = self.key_for(caller, Operation::KeysManage, target).await?;
        let (tenant, key) = (entry.key.tenant, entry.key.id);
        let at = self.keys.clock().now();
        let event = Event::key(tenant, key, None, "alias.added", alias.to_string(), at);
        let added = self
            .keys
            .store()
            .add_alias(tenant, key, &alias, &Record::event(actor, event))
            .await;
        self.forget_key(tenant, key);
        added.map_err(|e| match e {
            crate::StoreError::Conflict(_) => KmsError::Conflict(format!("{alias} already exists")),
            other => other.into(),
        })?;
        Ok(AliasBinding { alias, key })
    }

    /// Removes `alias` from the key it names. `NotFound` if the tenant has no such
    /// alias (or its key is outside the caller's scope).
    pub async fn remove_alias(&self, caller: &Caller, alias: &str) -> KmsResult<AliasBinding> {
        let actor = caller.actor("keys.alias.remove");
        let result = self.remove_alias_unaudited(caller, &actor, alias).await;
        self.settled(caller, &actor, Some(alias), result).await
    }

    async fn remove_alias_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        alias: &str,
    ) -> KmsResult<AliasBinding> {
        if !caller.grants.allows_op(Operation::KeysManage) {
            return Err(KmsError::Forbidden(
                "the token does not allow this operation",
            ));
        }
        let tenant = Self::tenant_of(caller)?;
        let alias = parse(alias)?;
        // The store, not the cache: the alias may have moved on another replica.
        let current = self
            .keys
            .store()
            .resolve_alias(tenant, &alias)
            .await?
            .ok_or(KmsError::NotFound("alias"))?;
        // An alias naming a key outside the token's scope answers as an absent alias
        // (as `alias set` does), or the answer would tell that the alias exists.
        let key = self
            .entry_for(caller, tenant, current, Operation::KeysManage)
            .await
            .map_err(|e| match e {
                KmsError::NotFound(_) => KmsError::NotFound("alias"),
                other => other,
            })?
            .key
            .id;
        let at = self.keys.clock().now();
        let event = Event::key(tenant, key, None, "alias.removed", alias.to_string(), at);
        let removed = self
            .keys
            .store()
            .remove_alias(tenant, key, &alias, &Record::event(actor, event))
            .await;
        self.forget_key(tenant, key);
        removed.map_err(|e| match e {
            // Moved or removed by someone else between the lookup and the change.
            crate::StoreError::NotFound(_) => KmsError::NotFound("alias"),
            other => other.into(),
        })?;
        Ok(AliasBinding { alias, key })
    }
}
