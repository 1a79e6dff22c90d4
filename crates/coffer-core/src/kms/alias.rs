//! `alias set`: moving an alias to another key of the tenant (seed 004: consumers of
//! `alias/release-signer` follow it to the backup key without a change of their own).
//!
//! One store transaction, compare-and-set on the key the alias names, with its audit
//! entry (old and new key in its detail) and an event in both keys' histories. This
//! replica's cache drops both keys at once; other replicas follow within `cache_ttl`.

use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::event::Event;
use crate::ids::{Alias, KeyId};
use crate::lifecycle::KeyState;
use crate::store::Record;
use crate::token::Operation;

/// An alias moved from one key to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMove {
    /// The alias.
    pub alias: Alias,
    /// The key it named before.
    pub from: KeyId,
    /// The key it names now.
    pub to: KeyId,
}

impl Kms {
    /// Moves `alias` to the key `target` (id or alias). With `expected` (a key id or
    /// alias), only if the alias still names that key.
    /// A refusal changes nothing and is recorded here; the change records itself.
    pub async fn move_alias(
        &self,
        caller: &Caller,
        alias: &str,
        target: &str,
        expected: Option<&str>,
    ) -> KmsResult<AliasMove> {
        let actor = caller.actor("keys.alias.set");
        let result = self
            .move_alias_unaudited(caller, &actor, alias, target, expected)
            .await;
        self.settled(caller, &actor, Some(alias), result).await
    }

    async fn move_alias_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        alias: &str,
        target: &str,
        expected: Option<&str>,
    ) -> KmsResult<AliasMove> {
        if !caller.grants.allows_op(Operation::KeysManage) {
            return Err(KmsError::Forbidden(
                "the token does not allow this operation",
            ));
        }
        let tenant = Self::tenant_of(caller)?;
        let alias: Alias = alias
            .parse()
            .map_err(|e: crate::InvalidInput| KmsError::Invalid(e.to_string()))?;
        // The store, not the cache: the compare-and-set is on what the alias names now.
        let current = self
            .keys
            .store()
            .resolve_alias(tenant, &alias)
            .await?
            .ok_or(KmsError::NotFound("alias"))?;
        // An alias naming a key outside the token's scope answers as an absent alias.
        let from = self
            .entry_for(caller, tenant, current, Operation::KeysManage)
            .await
            .map_err(|e| match e {
                KmsError::NotFound(_) => KmsError::NotFound("alias"),
                other => other,
            })?;
        let to = self.key_for(caller, Operation::KeysManage, target).await?;
        if let Some(expected) = expected {
            let expected = self.resolve_id(tenant, expected).await?;
            if expected != current {
                return Err(KmsError::Conflict(format!(
                    "{alias} names key {current}, not the expected {expected}"
                )));
            }
        }
        if to.key.id == current {
            return Err(KmsError::Conflict(format!(
                "{alias} already names key {current}"
            )));
        }
        if to.key.state != KeyState::Enabled {
            return Err(KmsError::KeyDisabled("not enabled"));
        }
        if to.key.purpose != from.key.purpose {
            return Err(KmsError::Invalid(format!(
                "{alias} names a {} key; key {} is a {} key, and its consumers would break",
                from.key.purpose.as_str(),
                to.key.id,
                to.key.purpose.as_str()
            )));
        }
        // Encrypt keys are AES (envelopes) or RSA (OAEP): the same purpose, but no
        // operation of one works on the other.
        if to.key.spec.is_rsa() != from.key.spec.is_rsa() {
            return Err(KmsError::Invalid(format!(
                "{alias} names a {} key; key {} is a {} key, and its consumers would break",
                from.key.spec.as_str(),
                to.key.id,
                to.key.spec.as_str()
            )));
        }
        let at = self.keys.clock().now();
        let detail = format!("{alias} moved from key {current} to key {}", to.key.id);
        let event = |key: KeyId| Event::key(tenant, key, None, "alias.moved", detail.clone(), at);
        let mut record = Record::event(actor, event(to.key.id));
        record.events.push({
            let mut away = event(current);
            away.actor = Some(actor.principal.clone());
            away
        });
        let moved = self
            .keys
            .store()
            .move_alias(tenant, &alias, current, to.key.id, &record)
            .await;
        self.forget_key(tenant, current);
        self.forget_key(tenant, to.key.id);
        moved.map_err(|e| match e {
            crate::StoreError::Conflict(_) => KmsError::Conflict(format!(
                "{alias} was moved by someone else meanwhile; show it and try again"
            )),
            other => other.into(),
        })?;
        Ok(AliasMove {
            alias,
            from: current,
            to: to.key.id,
        })
    }
}
