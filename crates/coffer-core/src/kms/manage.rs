//! Key management beyond create/rotate/state (seed 004): spare versions, activation of
//! a spare in one step, registered purposes, publication, history, expiry reporting.

use super::{Caller, Kms, KmsError, KmsResult, keys::KeyDetails};
use crate::audit::Actor;
use crate::event::Event;
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::key::KeyPurpose;
use crate::lifecycle::VersionState;
use crate::store::Record;
use crate::time::Timestamp;
use crate::token::Operation;

/// The registered purpose that publishes a signing key's public keys in its tenant's
/// JWKS document (readable without a token).
pub const PUBLISHED: &str = "published";

impl Kms {
    /// Adds a spare (inactive) version.
    pub async fn add_spare(&self, caller: &Caller, reference: &str) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.add_spare");
        let result = self.add_spare_unaudited(caller, &actor, reference).await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Adds a spare (`inactive`) version: a backup to activate when needed.
    pub(super) async fn add_spare_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
    ) -> KmsResult<KeyDetails> {
        let entry = self
            .key_for(caller, Operation::KeysRotate, reference)
            .await?;
        let (tenant, id) = (entry.key.tenant, entry.key.id);
        let result = self.keys.add_spare(tenant, id, actor).await;
        self.forget_key(tenant, id);
        result?;
        self.show_key_unaudited(caller, &id.to_string()).await
    }

    /// Activates a version (makes it primary).
    pub async fn activate(
        &self,
        caller: &Caller,
        reference: &str,
        version: u32,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.activate");
        let result = self
            .activate_unaudited(caller, &actor, reference, version)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Makes `version` (a spare, or pending) active and primary in one step.
    pub(super) async fn activate_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        version: u32,
    ) -> KmsResult<KeyDetails> {
        let entry = self
            .key_for(caller, Operation::KeysRotate, reference)
            .await?;
        let (tenant, id) = (entry.key.tenant, entry.key.id);
        let number = VersionNumber::new(version).map_err(|e| KmsError::Invalid(e.to_string()))?;
        let result = self.keys.activate(tenant, id, number, actor).await;
        self.forget_key(tenant, id);
        result?;
        self.show_key_unaudited(caller, &id.to_string()).await
    }

    /// Registers a purpose on a key.
    pub async fn register_purpose(
        &self,
        caller: &Caller,
        reference: &str,
        purpose: &str,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.register");
        let result = self
            .register_unaudited(caller, &actor, reference, purpose)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Registers a purpose on a key (e.g. `attestation-signing`, or `published`).
    pub(super) async fn register_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        purpose: &str,
    ) -> KmsResult<KeyDetails> {
        crate::key::check_registered_purpose(purpose).map_err(|_| {
            KmsError::Invalid("a purpose is 1-64 characters of a-z, 0-9 and -".into())
        })?;
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        if purpose == PUBLISHED && entry.key.purpose != KeyPurpose::Sign {
            return Err(KmsError::WrongPurpose {
                purpose: entry.key.purpose.as_str(),
                operation: "publish public keys",
            });
        }
        let mut key = self.keys.key(entry.key.tenant, entry.key.id).await?;
        key.registered_purposes.insert(purpose.to_owned());
        let event = Event::key(
            key.tenant,
            key.id,
            None,
            "key.purpose",
            purpose,
            self.keys.clock().now(),
        );
        self.keys
            .store()
            .update_metadata(&key, &Record::event(actor, event))
            .await?;
        self.forget_key(key.tenant, key.id);
        self.show_key_unaudited(caller, &key.id.to_string()).await
    }

    /// Changes a key's rotation policy and validity.
    pub async fn set_policy(
        &self,
        caller: &Caller,
        reference: &str,
        rotation: crate::key::RotationPolicy,
        validity: Option<crate::time::HumanDuration>,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.policy");
        let result = self
            .set_policy_unaudited(caller, &actor, reference, rotation, validity)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Changes the rotation policy (fields given replace the current ones) and the
    /// validity of versions created from now on.
    pub(super) async fn set_policy_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        rotation: crate::key::RotationPolicy,
        validity: Option<crate::time::HumanDuration>,
    ) -> KmsResult<KeyDetails> {
        self.change_policy(caller, actor, reference, |key| {
            key.rotation.period = rotation.period.or(key.rotation.period);
            key.rotation.before_expiry = rotation.before_expiry.or(key.rotation.before_expiry);
            key.rotation.overlap = rotation.overlap.or(key.rotation.overlap);
            key.validity = validity.or(key.validity);
        })
        .await
    }

    /// Sets or clears (`None`) the periodic rotation of a key; [`Kms::set_policy`]
    /// only sets, leaving absent fields as they were.
    pub async fn set_rotation_period(
        &self,
        caller: &Caller,
        reference: &str,
        period: Option<crate::time::HumanDuration>,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.policy");
        let result = self
            .change_policy(caller, &actor, reference, |key| {
                key.rotation.period = period
            })
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Applies `change` to the key's policy, in one transaction with its event.
    async fn change_policy(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        change: impl FnOnce(&mut crate::key::Key),
    ) -> KmsResult<KeyDetails> {
        let entry = self
            .key_for(caller, Operation::KeysManage, reference)
            .await?;
        let mut key = self.keys.key(entry.key.tenant, entry.key.id).await?;
        change(&mut key);
        key.rotation
            .check()
            .map_err(|e| KmsError::Invalid(e.to_string()))?;
        let detail = format!(
            "period {:?}, before_expiry {:?}, overlap {:?}, validity {:?}",
            key.rotation.period.map(|d| d.to_string()),
            key.rotation.before_expiry.map(|d| d.to_string()),
            key.rotation.overlap.map(|d| d.to_string()),
            key.validity.map(|d| d.to_string())
        );
        let event = Event::key(
            key.tenant,
            key.id,
            None,
            "key.policy",
            detail,
            self.keys.clock().now(),
        );
        self.keys
            .store()
            .update_metadata(&key, &Record::event(actor, event))
            .await?;
        self.forget_key(key.tenant, key.id);
        self.show_key_unaudited(caller, &key.id.to_string()).await
    }

    /// The recorded lifecycle events of a key, oldest first (its rotation history).
    /// Audited: it shows who changed the key and when.
    pub async fn key_history(&self, caller: &Caller, reference: &str) -> KmsResult<Vec<Event>> {
        let result = async {
            let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
            let events = self
                .keys
                .store()
                .key_events(entry.key.tenant, entry.key.id)
                .await?;
            Ok((entry.key.id, events))
        }
        .await;
        self.audited(caller, "keys.history", Some(reference), result)
            .await
            .map(|(_, events)| events)
    }

    /// The published signing keys of a tenant: `(key, version, SPKI DER)` for every
    /// active or retiring version (the overlap keeps old verifiers working). No token:
    /// only keys registered as `published` appear. An absent tenant has an empty set,
    /// the same answer as a tenant that publishes nothing, so the unauthenticated route
    /// does not tell which tenant names exist.
    pub async fn published_keys(
        &self,
        tenant_name: &str,
    ) -> KmsResult<Vec<(KeyId, VersionNumber, Vec<u8>)>> {
        let tenant = match self.find_tenant(tenant_name).await {
            Ok(tenant) => tenant,
            Err(KmsError::NotFound(_)) => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut out = Vec::new();
        for key in self.keys.store().list_keys(tenant.id).await? {
            if !key.registered_purposes.contains(PUBLISHED) {
                continue;
            }
            // Through the key cache, whose load checks each stored public key against
            // the material: a key that fails is left out (the failure is logged and
            // counted there), so a swapped row is never published.
            let entry = match self.cache.get(tenant.id, key.id) {
                Some(entry) => entry,
                None => match self.load_entry(tenant.id, key.id).await {
                    Ok(entry) => entry,
                    Err(KmsError::Internal(_)) => continue,
                    Err(error) => return Err(error),
                },
            };
            for version in entry.versions.values() {
                if matches!(version.state, VersionState::Active | VersionState::Retiring)
                    && let Some(der) = &version.public_key
                {
                    out.push((key.id, version.number, der.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Every primary version's expiry, for the expiry gauge: `(tenant, key, version, not_after)`.
    pub async fn expiry_report(
        &self,
    ) -> KmsResult<Vec<(TenantId, KeyId, VersionNumber, Timestamp)>> {
        let mut out = Vec::new();
        for tenant in self.keys.store().list_tenants().await? {
            for key in self.keys.store().list_keys(tenant.id).await? {
                if key.state != crate::lifecycle::KeyState::Enabled {
                    continue;
                }
                for version in self.keys.versions(tenant.id, key.id).await? {
                    if let (true, Some(not_after)) = (version.primary, version.not_after) {
                        out.push((tenant.id, key.id, version.number, not_after));
                    }
                }
            }
        }
        Ok(out)
    }
}
