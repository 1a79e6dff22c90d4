//! The store: durable state of tenants, keys, versions and their history, as one small
//! trait per aggregate ([`TenantStore`], [`KeyStore`], [`VersionStore`],
//! [`RotationStore`], [`TokenStore`], [`AuditStore`], [`LeaseStore`], [`UsageStore`],
//! [`TagStore`], [`AccessStore`], [`crate::attestation::AttestationStore`]) and
//! [`Store`],
//! which is all of them plus the database's health. Every state-changing method takes
//! the change's [`Record`] and commits it in the change's own transaction.
//!
//! Required behaviour, which the conformance suite (`testing::store`) checks for every
//! implementation:
//! - every method that changes state is one transaction: all of it or none of it;
//! - lifecycle changes are compare-and-set on the expected current state, so racing
//!   writers cannot both succeed ([`StoreError::Conflict`] for the loser);
//! - the schema itself enforces: at most one primary version per key and only an
//!   active one; aliases unique per tenant; at most one running rotation per key;
//! - a write that returned `Ok` survives a crash of the process right after;
//! - every read is scoped by tenant: a key of another tenant is simply absent;
//! - a write that would take a tenant over its quota ([`crate::quota`]) is refused with
//!   [`StoreError::QuotaExceeded`] inside its transaction, and writes nothing.
//!
//! The store sees only wrapped material (STYLE rule 4), never a secret type.

use async_trait::async_trait;
use thiserror::Error;

mod access;
mod tags;

pub use access::{AccessStore, Grant, StoredPolicy};
pub use tags::{TagStore, Tags};

use crate::audit::{Actor, AuditEntry};
use crate::event::Event;
use crate::ids::{Alias, KeyId, TenantId, VersionNumber};
use crate::key::{Key, KeyVersion};
use crate::lifecycle::{KeyState, VersionState};
use crate::tenant::Tenant;
use crate::time::Timestamp;
use crate::usage::VersionUse;

mod token_store;
pub use token_store::TokenStore;
mod rotations;
pub use rotations::{AllowListChange, Hold, RotationFilter, RotationRecord, RotationStore};

/// Failures of a store.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// A uniqueness rule or an expected state did not hold (alias taken, state changed
    /// underneath, a rotation already running, …). Nothing was written.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The object to change does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The database is unreachable or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data does not decode into domain types (a schema or corruption problem).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The write would take the tenant over a quota ([`crate::quota`]). Nothing was
    /// written.
    #[error("{0}")]
    QuotaExceeded(crate::quota::QuotaExceeded),
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a change leaves behind in its own transaction: its audit entry, always, and the
/// key's history event for lifecycle changes. The store appends the entry to the audit
/// log (the database allocates its index) before it commits, so a change that cannot
/// be audited does not happen, and an audited change is never lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The audit entry (outcome `ok`: the change happened if and only if it commits).
    pub audit: AuditEntry,
    /// The history events (`coffer keys history`), for key and tenant changes: usually
    /// one; a simple rotation records the new version and the primary move.
    pub events: Vec<Event>,
}

impl Record {
    /// A history event and its audit entry, both naming `actor`.
    pub fn event(actor: &Actor, mut event: Event) -> Self {
        event.actor = Some(actor.principal.clone());
        let detail = if event.detail.is_empty() {
            event.kind.clone()
        } else {
            format!("{}: {}", event.kind, event.detail)
        };
        Self {
            audit: actor.entry(
                Some(event.tenant),
                (event.key, event.version),
                event.at,
                Some(detail),
            ),
            events: vec![event],
        }
    }

    /// An audit entry alone (changes outside a key's history: tokens, rotations).
    pub fn audit(audit: AuditEntry) -> Self {
        Self {
            audit,
            events: Vec::new(),
        }
    }
}

/// Where a batch of audit entries landed: the index of the first (allocated by the
/// database) and each entry's leaf hash, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Index of the batch's first entry.
    pub first: u64,
    /// Leaf hashes of the batch, in index order.
    pub leaves: Vec<[u8; 32]>,
}

/// One compare-and-set lifecycle change of a key; [`Store::apply`] applies a list of them
/// in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Key state `from -> to`, with the deletion due time for `pending-deletion`.
    KeyState {
        /// Expected current state.
        from: KeyState,
        /// New state.
        to: KeyState,
        /// Due time of destruction (set for pending-deletion, cleared otherwise).
        deletion_due: Option<Timestamp>,
    },
    /// Version state `from -> to`.
    VersionState {
        /// The version.
        version: VersionNumber,
        /// Expected current state.
        from: VersionState,
        /// New state.
        to: VersionState,
    },
    /// Moves the primary pointer; `from` must be the current primary.
    Primary {
        /// Expected current primary.
        from: VersionNumber,
        /// New primary (must be active once the transaction ends).
        to: VersionNumber,
    },
    /// Destroys the key: `pending-deletion` → `destroyed`, only if its deletion is due at
    /// or before `due_by` (so a deletion cancelled and scheduled again meanwhile is not
    /// carried out early), and in the same statement group every version goes
    /// `destroyed` with its material cleared and none stays primary.
    ///
    /// Versions skip the version table here on purpose: that table governs one version
    /// changing while its key lives on; destroying the key ends all of them at once,
    /// from any state, and leaves a key with no primary (the schema allows it).
    DestroyKey {
        /// The destruction time: the key's `deletion_due` must not be later.
        due_by: Timestamp,
    },
    /// Moves a version's validity window (a spare's, to start at its activation), if
    /// its `not_before` is still `from`.
    Validity {
        /// The version.
        version: VersionNumber,
        /// Expected current `not_before`.
        from: Timestamp,
        /// New start.
        not_before: Timestamp,
        /// New end, if limited.
        not_after: Option<Timestamp>,
    },
    /// Replaces the stored material of a version (rewrap under a new tenant key).
    Material {
        /// The version.
        version: VersionNumber,
        /// Expected current wrapped bytes.
        from: Vec<u8>,
        /// New wrapped bytes.
        to: Vec<u8>,
    },
    /// Stores `policy` as the key's next attestation policy version, only if the one in
    /// force is `policy.version - 1` (as [`crate::attestation::AttestationStore`]'s put,
    /// inside this transaction). The rotation saga's switch applies it with the primary
    /// move, so key and allow-list change together.
    AttestationPolicy(crate::attestation::AttestationPolicy),
    /// Replaces a row's state tag if it is still `from` (`None`: untagged), after the
    /// changes before it in the list ([`crate::state_seal::StateSeal::seal_changes`]
    /// appends one per row those changes alter). `Conflict` when the row was re-tagged
    /// meanwhile: another change moved it, and this one was computed from an older row.
    Seal {
        /// The key's row or one of its versions.
        row: crate::state_seal::SealedRow,
        /// Expected current tag.
        from: Option<crate::state_seal::StateTag>,
        /// New tag.
        to: crate::state_seal::StateTag,
    },
}

/// A data key registered for rewrapping by rotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedKey {
    /// Tenant.
    pub tenant: TenantId,
    /// The caller's id for it, unique in the tenant.
    pub track_id: String,
    /// The wrapping key.
    pub key: KeyId,
    /// The version wrapping it now.
    pub version: u32,
    /// The envelope.
    pub ciphertext: Vec<u8>,
    /// Its encryption context (canonical JSON object).
    pub context: String,
}

/// A tracked data key's envelope under the version it moves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    /// The caller's id for it.
    pub track_id: String,
    /// The new envelope.
    pub ciphertext: Vec<u8>,
}

/// Tenants and their wrapped tenant keys.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a tenant with its wrapped tenant key. `Conflict` if the name is taken.
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        wrapped_kek: &[u8],
        record: &Record,
    ) -> StoreResult<()>;

    /// A tenant by id.
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>>;

    /// A tenant by name.
    async fn get_tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;

    /// All tenants.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;

    /// The tenant's wrapped key; `None` once shredded.
    async fn get_tenant_kek(&self, id: TenantId) -> StoreResult<Option<Vec<u8>>>;

    /// Replaces the wrapped tenant key if it is still `expected` (root-key rotation).
    async fn replace_tenant_kek(
        &self,
        id: TenantId,
        expected: &[u8],
        new: &[u8],
    ) -> StoreResult<()>;

    /// Deletes the tenant key and marks the tenant shredded (crypto-shredding).
    async fn shred_tenant(&self, id: TenantId, record: &Record) -> StoreResult<()>;

    /// Applies `change` to the tenant's PQ overrides (each setting kept, cleared or
    /// set), with the change's audit entry, in one transaction: two concurrent changes
    /// of different settings both hold. Answers the overrides after the change.
    async fn change_tenant_pq_policy(
        &self,
        id: TenantId,
        change: &crate::pq::PqChange,
        record: &Record,
    ) -> StoreResult<crate::pq::PqOverrides>;

    /// Every tenant that has a PQ override, with its overrides.
    async fn tenant_pq_policies(&self) -> StoreResult<Vec<(TenantId, crate::pq::PqOverrides)>>;
}

/// Keys, their aliases, metadata and history.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Creates a key with its first version (which must be primary). `Conflict` if an
    /// alias is taken.
    async fn create_key(&self, key: &Key, first: &KeyVersion, record: &Record) -> StoreResult<()>;

    /// A key of `tenant` (aliases included); `None` if absent or another tenant's.
    async fn get_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<Option<Key>>;

    /// Resolves an alias within `tenant`.
    async fn resolve_alias(&self, tenant: TenantId, alias: &Alias) -> StoreResult<Option<KeyId>>;

    /// All keys of `tenant`.
    async fn list_keys(&self, tenant: TenantId) -> StoreResult<Vec<Key>>;

    /// Adds an alias. `Conflict` if taken in the tenant.
    async fn add_alias(
        &self,
        tenant: TenantId,
        key: KeyId,
        alias: &Alias,
        record: &Record,
    ) -> StoreResult<()>;

    /// Removes an alias. `NotFound` if the tenant has no such alias for that key.
    async fn remove_alias(
        &self,
        tenant: TenantId,
        key: KeyId,
        alias: &Alias,
        record: &Record,
    ) -> StoreResult<()>;

    /// Moves `alias` from key `from` to key `to` (both of `tenant`) in one transaction,
    /// by compare-and-set on its current key: `Conflict` if it names another key by
    /// now, `NotFound` if the tenant has no such alias or no key `to`.
    async fn move_alias(
        &self,
        tenant: TenantId,
        alias: &Alias,
        from: KeyId,
        to: KeyId,
        record: &Record,
    ) -> StoreResult<()>;

    /// Replaces labels and registered purposes.
    async fn update_metadata(&self, key: &Key, record: &Record) -> StoreResult<()>;

    /// The recorded events of a key, oldest first.
    async fn key_events(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<Event>>;
}

/// Key versions: added, changed by compare-and-set, certificate chains.
#[async_trait]
pub trait VersionStore: Send + Sync {
    /// All versions of a key, oldest first.
    async fn list_versions(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<KeyVersion>>;

    /// Adds a version (never primary on insert), then applies `then` (e.g. the `Primary`
    /// change of a simple rotation) in the same transaction.
    async fn add_version(
        &self,
        tenant: TenantId,
        version: &KeyVersion,
        then: &[Change],
        record: &Record,
    ) -> StoreResult<()>;

    /// Applies `changes` to one key in one transaction, each as a compare-and-set.
    async fn apply(
        &self,
        tenant: TenantId,
        key: KeyId,
        changes: &[Change],
        record: &Record,
    ) -> StoreResult<()>;

    /// Replaces (or with `None` removes) the X.509 certificate chain of a version (PEM,
    /// leaf first), with its event, in one transaction. `NotFound` if the version is
    /// not the tenant's. The chain is public data, kept beside the version rather than
    /// in [`KeyVersion`] so that listing versions stays as it was.
    async fn set_cert_chain(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
        chain_pem: Option<&str>,
        record: &Record,
    ) -> StoreResult<()>;

    /// The certificate chain of a version, if it has one.
    async fn get_cert_chain(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
    ) -> StoreResult<Option<String>>;

    /// Binds the rows written before key states were sealed: sets each named row's
    /// state tag where it has none, and stores the server secret `marker` (name,
    /// wrapped value) recording that binding was done, in one transaction with
    /// `record`. `Conflict` if the marker exists (another replica bound them first);
    /// then nothing changes.
    async fn bind_key_states(
        &self,
        tags: &[(
            KeyId,
            crate::state_seal::SealedRow,
            crate::state_seal::StateTag,
        )],
        marker: (&str, &[u8]),
        record: &Record,
    ) -> StoreResult<()>;
}

/// The audit log: entries (indices allocated by the database) and checkpoints.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends audit entries in one durable write (a transaction, or SQLite's audit
    /// journal). The store allocates their indices (contiguous, shared by every
    /// replica) and chains each leaf to the one before.
    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<Appended>;

    /// Up to `limit` audit entries from index `from`, in order.
    async fn audit_entries(&self, from: u64, limit: u64) -> StoreResult<Vec<(u64, String)>>;

    /// Stores a signed checkpoint of `size` entries (idempotent per size).
    async fn save_checkpoint(&self, size: u64, note: &str, at: Timestamp) -> StoreResult<()>;

    /// Every stored checkpoint `(size, note)`, oldest first.
    async fn checkpoints(&self) -> StoreResult<Vec<(u64, String)>>;

    /// Writes the entries a store keeps outside its log table (SQLite's audit journal)
    /// into it, so the table alone holds the whole log: at a graceful stop, and for
    /// tools that read the table. Nothing to do for a store without such a place.
    async fn settle_audit(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Leases: which replica runs a background job.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes or renews the lease `name` for `holder` until `expires_at` if it is free,
    /// expired at `now`, or already `holder`'s. True when `holder` holds it.
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool>;
}

/// The reference tracker's persisted counts: use of key versions per principal and kind.
/// Telemetry, not a state change: written without an audit entry, batched by the
/// tracker (about once a second per replica), never on a request's path.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds `uses` to the stored counts in one transaction: per row the count adds, the
    /// earlier first use and the later last use stay, so deltas from any number of
    /// replicas, flushed in any order, sum to one answer.
    async fn add_use(&self, uses: &[VersionUse]) -> StoreResult<()>;

    /// The stored use of every version of `key` in `tenant` (absent for another
    /// tenant's key).
    async fn key_use(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<VersionUse>>;
}

/// Durable state: every aggregate's trait, and the database's health. See the module
/// docs for the rules every implementation keeps.
#[async_trait]
pub trait Store:
    TenantStore
    + crate::attestation::AttestationStore
    + KeyStore
    + VersionStore
    + RotationStore
    + TokenStore
    + AuditStore
    + LeaseStore
    + UsageStore
    + TagStore
    + AccessStore
    + crate::backup::BackupStore
    + 'static
{
    /// Checks the database answers and, after a write failed to commit, that a write
    /// commits again (so readiness drops while the writer is broken and returns by
    /// itself when the cause goes away).
    async fn ping(&self) -> StoreResult<()>;
}
