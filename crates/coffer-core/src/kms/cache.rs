//! The key cache: what makes the hot path (wrap, unwrap, sign, verify) free of store
//! round trips.
//!
//! Each entry is one key with every version's metadata and, for versions that may be
//! used (active, retiring), the unwrapped material and a parsed verifier. Entries are
//! replaced whole (an `Arc` swap), so readers never see half an update. Any change made
//! through this process invalidates the key's entry at once; entries also expire after
//! `ttl`, which bounds how long a change made by another replica stays unseen.
//!
//! Aliases are cached beside the keys, each mapping for `ttl` too, so an alias another
//! replica moved (`alias set`) is followed within `ttl`; a move made here invalidates
//! both keys at once. An entry loaded while an invalidation happened is not cached
//! (the cache's epoch moved): a load that read the store before a change must not put
//! the old state back after the change invalidated it.
//!
//! Locks: one `RwLock` per map, held only for a hash lookup or insert, never across an
//! `await` or a crypto call.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use coffer_crypto::{AeadKey, KeyMaterial, VerifyingKey};

use super::{KmsError, KmsResult};
use crate::hsm::HsmKeyRef;
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::key::{Key, KeyVersion};
use crate::lifecycle::VersionState;

/// Where a usable version's secret is: in memory, or in the HSM.
#[expect(
    clippy::large_enum_variant,
    reason = "one per cached key version, as KeyMaterial itself; boxing would add an indirection to every hot-path use"
)]
pub(crate) enum Material {
    /// Software material, unwrapped.
    Software(KeyMaterial),
    /// An HSM-resident version: every private-key operation is a token call.
    Hsm(HsmKeyRef),
}

/// One usable version: material and verifier ready.
pub(crate) struct ReadyVersion {
    pub material: Material,
    pub verifier: Option<VerifyingKey>,
}

impl ReadyVersion {
    /// The software material, if the version is not HSM-resident.
    pub fn software(&self) -> Option<&KeyMaterial> {
        match &self.material {
            Material::Software(material) => Some(material),
            Material::Hsm(_) => None,
        }
    }

    /// Where the HSM keeps it, for an HSM-resident version.
    pub fn hsm(&self) -> Option<&HsmKeyRef> {
        match &self.material {
            Material::Hsm(location) => Some(location),
            Material::Software(_) => None,
        }
    }
}

/// A key as the hot path needs it.
pub(crate) struct CachedKey {
    pub key: Key,
    /// Every version's metadata (wrapped material dropped), by number.
    pub versions: BTreeMap<VersionNumber, KeyVersion>,
    /// Usable versions (active, retiring), by number.
    pub ready: BTreeMap<VersionNumber, ReadyVersion>,
    pub primary: Option<VersionNumber>,
    /// The key's policy and grants, when it has a policy (none: AWS's default policy,
    /// the token's caveats alone decide).
    pub access: Option<super::policy::KeyAccess>,
    /// The key's attestation policy in force (loaded with the key, so a changed
    /// allow-list takes effect with the invalidation that follows the change).
    pub attestation: Option<crate::attestation::AttestationPolicy>,
    loaded_at: Instant,
}

impl CachedKey {
    pub fn new(
        key: Key,
        versions: Vec<KeyVersion>,
        ready: BTreeMap<VersionNumber, ReadyVersion>,
    ) -> Self {
        let primary = versions.iter().find(|v| v.primary).map(|v| v.number);
        let versions = versions
            .into_iter()
            .map(|mut v| {
                v.wrapped_material = Vec::new();
                (v.number, v)
            })
            .collect();
        Self {
            key,
            versions,
            ready,
            primary,
            access: None,
            attestation: None,
            loaded_at: Instant::now(),
        }
    }

    /// The primary version's number.
    pub fn primary_number(&self) -> KmsResult<VersionNumber> {
        self.primary
            .ok_or(KmsError::Internal("key has no primary version".into()))
    }

    /// The version a request names, or the primary when it names none.
    pub fn version_or_primary(&self, requested: Option<u32>) -> KmsResult<VersionNumber> {
        match requested {
            Some(n) => VersionNumber::new(n).map_err(|e| KmsError::Invalid(e.to_string())),
            None => self.primary_number(),
        }
    }

    /// The primary version, loaded (what sealing, signing and MACs use).
    pub fn ready_primary(&self) -> KmsResult<(VersionNumber, &ReadyVersion)> {
        let number = self.primary_number()?;
        let ready = self
            .ready
            .get(&number)
            .ok_or(KmsError::Internal("primary version not loaded".into()))?;
        Ok((number, ready))
    }

    /// The loaded version a signature or tag is checked with (default: the primary).
    /// A version that no longer checks is refused by name: retired or destroyed, or
    /// not active yet.
    pub fn ready_to_check(
        &self,
        requested: Option<u32>,
    ) -> KmsResult<(VersionNumber, &ReadyVersion)> {
        let number = self.version_or_primary(requested)?;
        match self.ready.get(&number) {
            Some(ready) => Ok((number, ready)),
            None => Err(match self.versions.get(&number).map(|v| v.state) {
                Some(VersionState::Retired | VersionState::Destroyed) => {
                    KmsError::VersionRetired(number.get())
                }
                Some(_) => KmsError::Conflict(format!("key version {number} is not active")),
                None => KmsError::NotFound("key version"),
            }),
        }
    }
}

/// One tenant's aliases: alias → key, with when the mapping was loaded.
type TenantAliases = HashMap<Box<str>, (KeyId, Instant)>;

#[derive(Default)]
pub(crate) struct KeyCache {
    keys: RwLock<HashMap<(TenantId, KeyId), Arc<CachedKey>>>,
    /// Alias → key, with when the mapping was loaded; by tenant, so a lookup borrows
    /// the alias as given rather than allocating a key for the map.
    aliases: RwLock<HashMap<TenantId, TenantAliases>>,
    tenant_keys: RwLock<HashMap<TenantId, Arc<AeadKey>>>,
    ttl: Option<Duration>,
    /// Bumped by every invalidation; a load that began in an older epoch is not cached.
    epoch: AtomicU64,
    /// Verdicts of recent verifications; every invalidation here reaches them too.
    pub verdicts: super::verify_cache::VerifyCache,
}

impl KeyCache {
    pub fn new(ttl: Option<Duration>, verdicts: super::verify_cache::VerifyCacheOptions) -> Self {
        Self {
            ttl,
            verdicts: super::verify_cache::VerifyCache::new(verdicts),
            ..Self::default()
        }
    }

    pub fn get(&self, tenant: TenantId, key: KeyId) -> Option<Arc<CachedKey>> {
        let entry = read(&self.keys).get(&(tenant, key)).cloned()?;
        match self.ttl {
            Some(ttl) if entry.loaded_at.elapsed() > ttl => None,
            _ => Some(entry),
        }
    }

    pub fn alias(&self, tenant: TenantId, alias: &str) -> Option<KeyId> {
        let (id, loaded_at) = read(&self.aliases).get(&tenant)?.get(alias).copied()?;
        match self.ttl {
            Some(ttl) if loaded_at.elapsed() > ttl => None,
            _ => Some(id),
        }
    }

    /// The current epoch: read it before loading an entry from the store, and pass it
    /// to [`KeyCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `entry`, loaded in epoch `loaded_in`, unless something was invalidated
    /// since (then the next request loads again).
    pub fn insert(&self, entry: Arc<CachedKey>, loaded_in: u64) {
        let tenant = entry.key.tenant;
        let mut keys = write(&self.keys);
        // Checked under the keys lock, which every invalidation also takes.
        if self.epoch() != loaded_in {
            return;
        }
        {
            let mut aliases = write(&self.aliases);
            let of_tenant = aliases.entry(tenant).or_default();
            of_tenant.retain(|_, (id, _)| *id != entry.key.id);
            for alias in &entry.key.aliases {
                of_tenant.insert(alias.as_str().into(), (entry.key.id, entry.loaded_at));
            }
        }
        keys.insert((tenant, entry.key.id), entry);
    }

    pub fn invalidate(&self, tenant: TenantId, key: KeyId) {
        let mut keys = write(&self.keys);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.verdicts.invalidate_key(key);
        keys.remove(&(tenant, key));
        if let Some(of_tenant) = write(&self.aliases).get_mut(&tenant) {
            of_tenant.retain(|_, (id, _)| *id != key);
        }
    }

    pub fn tenant_key(&self, tenant: TenantId) -> Option<Arc<AeadKey>> {
        read(&self.tenant_keys).get(&tenant).cloned()
    }

    pub fn insert_tenant_key(&self, tenant: TenantId, key: Arc<AeadKey>) {
        write(&self.tenant_keys).insert(tenant, key);
    }

    /// Drops one tenant's key and keys (after it is shredded).
    pub fn forget_tenant(&self, tenant: TenantId) {
        let mut keys = write(&self.keys);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.verdicts.invalidate_all();
        keys.retain(|(t, _), _| *t != tenant);
        drop(keys);
        write(&self.aliases).remove(&tenant);
        write(&self.tenant_keys).remove(&tenant);
    }

    /// Drops everything (on seal).
    pub fn clear(&self) {
        let mut keys = write(&self.keys);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.verdicts.invalidate_all();
        keys.clear();
        drop(keys);
        write(&self.aliases).clear();
        write(&self.tenant_keys).clear();
    }
}

// A poisoned lock means a panic while holding it; the maps hold no invariant a panic
// could break mid-way (single inserts/removes), so continuing is safe.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyPurpose, RotationPolicy};
    use crate::lifecycle::KeyState;
    use crate::time::Timestamp;

    fn entry(tenant: TenantId, alias: &str) -> Arc<CachedKey> {
        let key = Key {
            tenant,
            id: KeyId::generate(),
            spec: coffer_crypto::KeySpec::Ed25519,
            purpose: KeyPurpose::Sign,
            state: KeyState::Enabled,
            deletion_due: None,
            aliases: [alias.parse().unwrap()].into(),
            labels: crate::key::Labels::new(),
            registered_purposes: Default::default(),
            rotation: RotationPolicy::default(),
            validity: None,
            protection: crate::hsm::Protection::Software,
            created_at: Timestamp::from_millis(0),
            state_tag: None,
        };
        Arc::new(CachedKey::new(key, Vec::new(), BTreeMap::new()))
    }

    #[test]
    fn an_alias_mapping_expires_with_the_ttl() {
        let cache = KeyCache::new(Some(Duration::from_millis(50)), Default::default());
        let tenant = TenantId::generate();
        let e = entry(tenant, "alias/signer");
        cache.insert(e.clone(), cache.epoch());
        assert_eq!(cache.alias(tenant, "alias/signer"), Some(e.key.id));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(
            cache.alias(tenant, "alias/signer"),
            None,
            "another replica's alias move is followed within the ttl"
        );
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_cached() {
        let cache = KeyCache::new(None, Default::default());
        let tenant = TenantId::generate();
        let stale = entry(tenant, "alias/signer");
        let loaded_in = cache.epoch();
        // The alias moves (and both keys are invalidated) while the load is under way.
        cache.invalidate(tenant, stale.key.id);
        cache.insert(stale.clone(), loaded_in);
        assert_eq!(cache.alias(tenant, "alias/signer"), None);
        assert!(cache.get(tenant, stale.key.id).is_none());
        // A load that began after the change is cached.
        cache.insert(stale.clone(), cache.epoch());
        assert!(cache.get(tenant, stale.key.id).is_some());
    }
}
