//! The key service: creates tenants and keys, changes their lifecycle, and loads key
//! material, keeping the store, custody and the tenant key hierarchy consistent.
//!
//! Every method validates against the lifecycle table before touching the store, and
//! hands the store one transaction (with its event) per change.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use coffer_crypto::{AeadKey, KeySpec};

use crate::audit::Actor;
use crate::custody::Custody;
use crate::error::{CoreError, CoreResult, InvalidInput};
use crate::event::Event;
use crate::hsm::{HsmError, KeyHsm, Protection};
use crate::ids::{Alias, KeyId, TenantId, VersionNumber};
use crate::key::{Key, KeyPurpose, KeyVersion, Labels, RotationPolicy};
use crate::keyring;
use crate::lifecycle::{KeyState, VersionState};
use crate::state_seal::StateSeal;
use crate::store::{Change, Record, Store};
use crate::tenant::{Tenant, TenantName, TenantState};
use crate::time::{Clock, HumanDuration};

mod deletion;
mod material;
mod versions;

/// The principal of the rotation scheduler in key histories; its rotations are not
/// counted against a cap of rotations by callers.
pub const SCHEDULER: &str = "coffer-scheduler";

/// Shortest and longest waiting period before a scheduled deletion (as AWS KMS).
pub const DELETION_WINDOW: (Duration, Duration) = (
    Duration::from_secs(7 * 86_400),
    Duration::from_secs(30 * 86_400),
);

/// What a caller asks for when creating a key.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Algorithm family.
    pub spec: KeySpec,
    /// Purpose; must match the spec.
    pub purpose: KeyPurpose,
    /// Aliases to attach.
    pub aliases: Vec<Alias>,
    /// Labels.
    pub labels: Labels,
    /// Registered purposes.
    pub registered_purposes: BTreeSet<String>,
    /// Rotation policy.
    pub rotation: RotationPolicy,
    /// Validity of each version, if limited.
    pub validity: Option<HumanDuration>,
    /// Where its versions live.
    pub protection: Protection,
    /// For HSM protection: the slot of the token to create it in (default: the
    /// configured token's).
    pub hsm_slot: Option<u64>,
}

impl NewKey {
    /// A key of `spec` with its natural purpose and no extras.
    pub fn of(spec: KeySpec) -> Self {
        Self {
            spec,
            purpose: KeyPurpose::of(spec),
            aliases: Vec::new(),
            labels: Labels::new(),
            registered_purposes: BTreeSet::new(),
            rotation: RotationPolicy::default(),
            validity: None,
            protection: Protection::Software,
            hsm_slot: None,
        }
    }
}

/// The key service over a store, a custody, a clock and (when custody is an HSM) the
/// HSM that holds HSM-resident keys.
#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn Store>,
    custody: Arc<dyn Custody>,
    clock: Arc<dyn Clock>,
    hsm: Option<Arc<dyn KeyHsm>>,
    seal: Arc<StateSeal>,
}

impl KeyService {
    /// Composes the service. `hsm` is the token HSM-resident keys live in; `None` (no
    /// HSM configured) refuses `protection = hsm`. `seal` tags every key and version
    /// row this service writes (`Kms` passes its own, keyed at unseal; a tool passes
    /// [`StateSeal::keyed`]): a required argument, so no write path can leave it out.
    pub fn new(
        store: Arc<dyn Store>,
        custody: Arc<dyn Custody>,
        clock: Arc<dyn Clock>,
        hsm: Option<Arc<dyn KeyHsm>>,
        seal: Arc<StateSeal>,
    ) -> Self {
        Self {
            store,
            custody,
            clock,
            hsm,
            seal,
        }
    }

    /// The seal over key and version states.
    pub fn seal(&self) -> &Arc<StateSeal> {
        &self.seal
    }

    /// `changes` to `key` (whose versions the caller read as `versions`), with the
    /// seals of every row they alter, in one transaction.
    async fn apply_sealed(
        &self,
        key: &Key,
        versions: &[KeyVersion],
        changes: &[Change],
        record: &Record,
    ) -> CoreResult<()> {
        let sealed = self.seal.seal_changes(key, versions, changes)?;
        Ok(self
            .store
            .apply(key.tenant, key.id, &sealed, record)
            .await?)
    }

    /// The HSM that holds HSM-resident keys, if one is configured.
    pub fn hsm(&self) -> Result<&Arc<dyn KeyHsm>, HsmError> {
        self.hsm.as_ref().ok_or(HsmError::NotConfigured)
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Creates a tenant and its tenant key (wrapped by custody).
    pub async fn create_tenant(&self, name: TenantName, actor: &Actor) -> CoreResult<Tenant> {
        self.create_tenant_with_account(name, None, actor).await
    }

    /// Creates a tenant with a chosen AWS account id (unique among tenants; the store
    /// answers `Conflict` for one already taken). Validated by the caller.
    pub async fn create_tenant_with_account(
        &self,
        name: TenantName,
        aws_account_id: Option<String>,
        actor: &Actor,
    ) -> CoreResult<Tenant> {
        let now = self.clock.now();
        let tenant = Tenant {
            id: TenantId::generate(),
            name,
            state: TenantState::Active,
            created_at: now,
            aws_account_id,
        };
        let (wrapped, _kek) = keyring::new_tenant_kek(self.custody.as_ref(), tenant.id)?;
        let event = Event::tenant(tenant.id, "tenant.created", tenant.name.as_str(), now);
        self.store
            .create_tenant(&tenant, &wrapped, &Record::event(actor, event))
            .await?;
        Ok(tenant)
    }

    /// The tenant's key, unwrapped. Fails once the tenant is shredded.
    pub async fn tenant_kek(&self, tenant: TenantId) -> CoreResult<AeadKey> {
        let wrapped = self
            .store
            .get_tenant_kek(tenant)
            .await?
            .ok_or(CoreError::NotFound("tenant key"))?;
        keyring::open_tenant_kek(self.custody.as_ref(), tenant, &wrapped)
    }

    /// Creates a key with version 1 as its primary.
    pub async fn create_key(
        &self,
        tenant: TenantId,
        request: NewKey,
        actor: &Actor,
    ) -> CoreResult<(Key, KeyVersion)> {
        let kek = self.tenant_kek(tenant).await?;
        self.create_key_under(tenant, &kek, request, actor).await
    }

    /// [`Self::create_key`] with the tenant key already unwrapped (`Kms` keeps it in its
    /// cache, which saves a store read and a custody call per creation). The store
    /// refuses the creation if the tenant was shredded meanwhile (`NotFound`), so a
    /// tenant key still cached after a shred cannot add keys to the tenant.
    pub async fn create_key_under(
        &self,
        tenant: TenantId,
        kek: &AeadKey,
        request: NewKey,
        actor: &Actor,
    ) -> CoreResult<(Key, KeyVersion)> {
        request.purpose.check_spec(request.spec)?;
        request.rotation.check()?;
        crate::key::check_labels(&request.labels)?;
        for purpose in &request.registered_purposes {
            crate::key::check_registered_purpose(purpose)?;
        }
        if request.protection == Protection::Hsm {
            self.hsm()?;
            material::check_hsm_spec(request.spec, request.purpose)?;
        } else if request.hsm_slot.is_some() {
            return Err(InvalidInput::new("hsm_slot", "only with protection hsm").into());
        }
        let now = self.clock.now();
        let key = Key {
            tenant,
            id: KeyId::generate(),
            spec: request.spec,
            purpose: request.purpose,
            state: KeyState::Enabled,
            deletion_due: None,
            aliases: request.aliases.into_iter().collect(),
            labels: request.labels,
            registered_purposes: request.registered_purposes,
            rotation: request.rotation,
            validity: request.validity,
            protection: request.protection,
            created_at: now,
            state_tag: None,
        };
        let mut key = key;
        let number = VersionNumber::FIRST;
        let mut first =
            self.new_version(kek, &key, number, VersionState::Active, request.hsm_slot)?;
        first.primary = true;
        if let Err(error) = self.seal.seal_new(&mut key, &mut first) {
            return self.discard_if_failed(&first, Err(error));
        }
        let event = Event::key(
            tenant,
            key.id,
            Some(first.number),
            "key.created",
            key.spec.as_str(),
            now,
        );
        let stored = self
            .store
            .create_key(&key, &first, &Record::event(actor, event))
            .await;
        self.discard_if_failed(&first, stored)?;
        Ok((key, first))
    }

    /// A key by id, within the tenant.
    pub async fn key(&self, tenant: TenantId, id: KeyId) -> CoreResult<Key> {
        self.store
            .get_key(tenant, id)
            .await?
            .ok_or(CoreError::NotFound("key"))
    }

    /// A key by id or `alias/NAME`, within the tenant.
    pub async fn resolve(&self, tenant: TenantId, reference: &str) -> CoreResult<Key> {
        let id = match reference.parse::<KeyId>() {
            Ok(id) => id,
            Err(_) => {
                let alias: Alias = reference.parse()?;
                self.store
                    .resolve_alias(tenant, &alias)
                    .await?
                    .ok_or(CoreError::NotFound("key"))?
            }
        };
        self.key(tenant, id).await
    }

    /// All versions of a key.
    pub async fn versions(&self, tenant: TenantId, key: KeyId) -> CoreResult<Vec<KeyVersion>> {
        Ok(self.store.list_versions(tenant, key).await?)
    }

    /// Makes an `inactive` (or still `pending`) version active and primary in one step.
    pub async fn activate(
        &self,
        tenant: TenantId,
        id: KeyId,
        version: VersionNumber,
        actor: &Actor,
    ) -> CoreResult<()> {
        self.activate_with_policy(tenant, id, version, None, actor)
            .await
    }

    /// [`Self::activate`], and in the same transaction `policy` as the key's next
    /// attestation policy version (compare-and-set on the one before it): a rotation's
    /// switch with its allow-list, so neither is ever in force without the other.
    pub async fn activate_with_policy(
        &self,
        tenant: TenantId,
        id: KeyId,
        version: VersionNumber,
        policy: Option<crate::attestation::AttestationPolicy>,
        actor: &Actor,
    ) -> CoreResult<()> {
        let key = self.key(tenant, id).await?;
        let current = self.version(&key, version).await?;
        // A spare's validity counts from its activation: one kept for months must not
        // come into service half expired. It keeps the length it was given.
        let restart = (current.state == VersionState::Inactive).then(|| {
            let now = self.clock.now();
            let length = current.not_after.map(|end| {
                Duration::from_millis(
                    u64::try_from(end.millis() - current.not_before.millis()).unwrap_or(0),
                )
            });
            Change::Validity {
                version,
                from: current.not_before,
                not_before: now,
                not_after: length.map(|l| now.plus(l)),
            }
        });
        self.promote(
            &key,
            version,
            current.state,
            restart
                .into_iter()
                .chain(policy.map(Change::AttestationPolicy)),
            "version.activated",
            actor,
        )
        .await
    }

    async fn promote(
        &self,
        key: &Key,
        to: VersionNumber,
        from_state: VersionState,
        with: impl IntoIterator<Item = Change>,
        kind: &str,
        actor: &Actor,
    ) -> CoreResult<()> {
        from_state.check(VersionState::Active)?;
        let versions = self.versions(key.tenant, key.id).await?;
        let primary = versions
            .iter()
            .find(|v| v.primary)
            .ok_or(CoreError::NotFound("primary version"))?;
        let mut detail = format!("primary {} -> {}", primary.number, to);
        let mut policy_event = None;
        let with: Vec<Change> = with.into_iter().collect();
        for change in &with {
            match change {
                Change::Validity { .. } => detail.push_str("; validity counted from activation"),
                Change::AttestationPolicy(policy) => {
                    detail.push_str(&format!("; attestation policy {}", policy.summary()));
                    policy_event = Some(Event::key(
                        key.tenant,
                        key.id,
                        None,
                        "key.attestation_policy",
                        policy.summary(),
                        self.clock.now(),
                    ));
                }
                _ => {}
            }
        }
        let changes: Vec<Change> = with
            .into_iter()
            .chain(promotion(primary.number, to, from_state))
            .collect();
        let event = Event::key(key.tenant, key.id, Some(to), kind, detail, self.clock.now());
        let mut record = Record::event(actor, event);
        if let Some(mut event) = policy_event {
            event.actor = Some(actor.principal.clone());
            record.events.push(event);
        }
        self.apply_sealed(key, &versions, &changes, &record).await
    }

    async fn version(&self, key: &Key, number: VersionNumber) -> CoreResult<KeyVersion> {
        self.versions(key.tenant, key.id)
            .await?
            .into_iter()
            .find(|v| v.number == number)
            .ok_or(CoreError::NotFound("key version"))
    }

    /// Changes a version's state (retire, destroy, …). The primary cannot leave `active`.
    pub async fn set_version_state(
        &self,
        tenant: TenantId,
        id: KeyId,
        number: VersionNumber,
        to: VersionState,
        actor: &Actor,
    ) -> CoreResult<()> {
        let key = self.key(tenant, id).await?;
        let version = self.version(&key, number).await?;
        version.state.check(to)?;
        if version.primary {
            return Err(CoreError::Conflict(
                "the primary version must stay active; rotate or activate another first",
            ));
        }
        let change = Change::VersionState {
            version: number,
            from: version.state,
            to,
        };
        let detail = format!("{} -> {}", version.state, to);
        let event = Event::key(
            tenant,
            id,
            Some(number),
            "version.state",
            detail,
            self.clock.now(),
        );
        self.apply_sealed(
            &key,
            std::slice::from_ref(&version),
            &[change],
            &Record::event(actor, event),
        )
        .await?;
        // A destroyed HSM-resident version's object goes from the token too.
        if let (VersionState::Destroyed, Some(location)) = (to, &version.hsm) {
            self.discard_hsm_object(location);
        }
        Ok(())
    }

    /// Enables, disables, schedules deletion (`waiting` 7–30 days) or cancels it.
    pub async fn set_key_state(
        &self,
        tenant: TenantId,
        id: KeyId,
        to: KeyState,
        waiting: Option<Duration>,
        actor: &Actor,
    ) -> CoreResult<Key> {
        let key = self.key(tenant, id).await?;
        key.state.check(to)?;
        let now = self.clock.now();
        let deletion_due = match to {
            KeyState::PendingDeletion => {
                let waiting = waiting.unwrap_or(DELETION_WINDOW.1);
                if waiting < DELETION_WINDOW.0 || waiting > DELETION_WINDOW.1 {
                    return Err(InvalidInput::new(
                        "waiting period",
                        "must be between 7 and 30 days",
                    )
                    .into());
                }
                Some(now.plus(waiting))
            }
            // Destroying is more than a state: every version's material goes with it.
            KeyState::Destroyed => return self.destroy_due_key(tenant, id, actor).await,
            _ => None,
        };
        let change = Change::KeyState {
            from: key.state,
            to,
            deletion_due,
        };
        let event = Event::key(
            tenant,
            id,
            None,
            "key.state",
            format!("{} -> {}", key.state, to),
            now,
        );
        self.apply_sealed(&key, &[], &[change], &Record::event(actor, event))
            .await?;
        Ok(Key {
            state: to,
            deletion_due,
            ..key
        })
    }

    /// Crypto-shreds a tenant: destroys its tenant key, making all of its key material
    /// unrecoverable at once. `confirm` must repeat the tenant's name.
    pub async fn shred_tenant(
        &self,
        tenant: TenantId,
        confirm: &TenantName,
        actor: &Actor,
    ) -> CoreResult<()> {
        let record = self
            .store
            .get_tenant(tenant)
            .await?
            .ok_or(CoreError::NotFound("tenant"))?;
        if &record.name != confirm {
            return Err(CoreError::NotConfirmed(
                "repeat the tenant's name to destroy its keys",
            ));
        }
        let event = Event::tenant(
            tenant,
            "tenant.shredded",
            "tenant key destroyed",
            self.clock.now(),
        );
        Ok(self
            .store
            .shred_tenant(tenant, &Record::event(actor, event))
            .await?)
    }

    /// After `Custody::rotate_root`: rewraps every tenant key still under an older root
    /// generation. Readers keep working throughout (custody still holds the old root);
    /// returns how many were rewrapped. Call `Custody::retire_old_roots` afterwards.
    pub async fn rewrap_tenant_keys(&self) -> CoreResult<usize> {
        let mut rewrapped = 0;
        for tenant in self.store.list_tenants().await? {
            let Some(wrapped) = self.store.get_tenant_kek(tenant.id).await? else {
                continue;
            };
            if !self.custody.needs_rewrap(&wrapped) {
                continue;
            }
            let aad = keyring::tenant_kek_aad(tenant.id);
            let raw = self.custody.unwrap(&aad, &wrapped)?;
            let new = self.custody.wrap(&aad, raw.expose_secret())?;
            self.store
                .replace_tenant_kek(tenant.id, &wrapped, &new)
                .await?;
            rewrapped += 1;
        }
        Ok(rewrapped)
    }
}

/// The changes that make `to` (now in `from_state`) active and primary in place of `from`.
fn promotion(from: VersionNumber, to: VersionNumber, from_state: VersionState) -> Vec<Change> {
    vec![
        Change::VersionState {
            version: to,
            from: from_state,
            to: VersionState::Active,
        },
        Change::Primary { from, to },
    ]
}

/// For [`KeyService::add_version`]: nothing more than the new version itself.
fn nothing_more(_: &KeyVersion, _: &[KeyVersion]) -> CoreResult<(Vec<Change>, String)> {
    Ok((Vec::new(), String::new()))
}

fn require_enabled(key: &Key) -> CoreResult<()> {
    if key.state == KeyState::Enabled {
        Ok(())
    } else {
        Err(CoreError::Conflict("the key is not enabled"))
    }
}
