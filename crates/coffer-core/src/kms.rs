//! The `Kms` service: every operation of the API, over the key service, the key cache
//! and the token book. One file per operation in `kms/`.
//!
//! Order inside every operation: authenticate (the HTTP layer calls
//! [`Kms::authenticate`]), check the operation against the token, resolve the key,
//! check the key against the token, then — only then — do cryptography. Resolution hits
//! the in-memory cache; the store is read only on a miss.

mod access;
mod admin;
mod alias;
mod alias_bind;
mod asymmetric;
mod attestation_policy;
mod attested;
mod auth;
mod backup;
mod batch;
mod cache;
mod certificates;
mod datakey;
mod datakey_pair;
mod deletion;
mod error;
mod hsm_ops;
mod integrity;
mod kat;
mod keys;
mod labels;
mod load;
mod mac;
mod manage;
mod policy;
mod pq_policy;
mod quiet;
mod reactivate;
mod references;
mod refusals;
mod rewrap;
mod rewrap_policy;
mod rewrap_progress;
mod rewrap_tracked;
mod rotation;
mod rotation_allow_list;
mod rotation_views;
mod rotation_worker;
mod schedule;
mod sign;
mod state_binding;
mod tags;
mod trail;
mod unauthenticated;
mod untracked;
mod unwrap;
mod verify;
mod verify_cache;
mod wrap;
mod wrap_tracked;

pub use access::MAX_GRANTS;
pub use admin::MintToken;
pub use alias::AliasMove;
pub use alias_bind::AliasBinding;
pub use attestation_policy::PolicyChange;
pub use attested::{Presented, RecipientFormat};
pub use auth::Caller;
pub use backup::{BACKUP_PRINCIPAL, BackupMade};
pub use batch::{RewrapItem, UnwrapItem, WrapItem};
pub use certificates::{
    CertificateChain, ChainLink, ChainReport, IssueCertificate, ParsedChain, SignatureCheck,
    parse_pem_chain,
};
pub use datakey_pair::{DataKeyPair, pair_spec};
pub use deletion::DELETION_PRINCIPAL;
pub use error::{KmsError, KmsResult};
pub use integrity::IntegrityCheck;
pub(crate) use integrity::report_integrity_failure;
pub use kat::KnownAnswers;
pub use keys::{KeyDetails, KeyFilter};
pub use manage::PUBLISHED;
pub use policy::{Asked, KeyPolicy, Statement, actions_of, known_action};
pub use pq_policy::{PqPolicy, SettingSource};
pub use refusals::{Close, RefusalLimit};
pub use rewrap_policy::{DailyWindow, RewrapPolicy};
pub use rewrap_progress::RewrapProgress;
pub use rotation::{RotationStatus, RotationVerification, VersionReferences};
pub use rotation_worker::RotationWorker;
pub use sign::{SignInput, Signed};
pub use tags::{MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS, check_tag_key, check_tags};
pub use unauthenticated::Unauthenticated;
pub use untracked::RetireUntracked;
pub use unwrap::Opened;
pub use verify::Verified;
pub use verify_cache::{VerifyCacheCounts, VerifyCacheOptions};
pub use wrap::Sealed;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditSink;
use crate::custody::{Custody, SealStatus};
use crate::ids::{Alias, KeyId, TenantId};
use crate::key::KeyPurpose;
use crate::keys::KeyService;
use crate::lifecycle::KeyState;
use crate::store::Store;
use crate::time::Clock;
use crate::token::Operation;
use cache::{CachedKey, KeyCache};

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct KmsOptions {
    /// The server's PQ policy (seed 002's `KMS_PQ_VERIFY_MODE`,
    /// `KMS_PQ_PRODUCE_HYBRID`, `KMS_PQ_ROLLOUT_PERCENT`), which tenants may override.
    pub pq: crate::pq::PqDefaults,
    /// How long a cached key may serve before it is reloaded (bounds how long another
    /// replica's change stays unseen). `None`: until invalidated by this process.
    pub cache_ttl: Option<Duration>,
    /// How far back a rotation's preflight looks for use of the old version for
    /// untracked material (`rotation.untracked_window`).
    pub untracked_window: Duration,
    /// How long a `retiring` version of a key without an overlap policy must go
    /// unused (and have been retiring) before the scheduler retires it
    /// (`rotation.retire_after_quiet`).
    pub retire_after_quiet: Duration,
    /// Pace and window of the rotation saga's tracked-key rewrap.
    pub rewrap: RewrapPolicy,
    /// Size and lifetime of the verify cache (`verify_cache_max`, `verify_cache_ttl_ms`).
    pub verify_cache: VerifyCacheOptions,
    /// How many refusals per principal are audited one by one (`audit.refusals_*`).
    pub refusals: RefusalLimit,
    /// The attestation formats trusted, and how old a document may be (`[attestation]`).
    pub attestation: coffer_attest::AttestationOptions,
}

/// Default `rotation.untracked_window`: a quarter, so monthly and quarterly batch jobs
/// that seal with the key show up in preflight.
pub const UNTRACKED_WINDOW: Duration = Duration::from_secs(90 * 86_400);

/// Default `rotation.retire_after_quiet`: a week, a full weekly cycle of jobs.
pub const RETIRE_AFTER_QUIET: Duration = Duration::from_secs(7 * 86_400);

impl Default for KmsOptions {
    fn default() -> Self {
        Self {
            pq: crate::pq::PqDefaults::default(),
            cache_ttl: Some(Duration::from_secs(30)),
            untracked_window: UNTRACKED_WINDOW,
            retire_after_quiet: RETIRE_AFTER_QUIET,
            refusals: RefusalLimit::default(),
            rewrap: RewrapPolicy::default(),
            verify_cache: VerifyCacheOptions::default(),
            attestation: coffer_attest::AttestationOptions::default(),
        }
    }
}

/// Counts a refusal in `kms_reject_total{reason}`: the one definition of the counter
/// (`backpressure` and `tenant_share` from the server's admission, `pq_policy` from
/// verification, `attestation` from key policies).
pub fn count_reject(reason: &'static str) {
    metrics::counter!("kms_reject_total", "reason" => reason).increment(1);
}

/// The key management service.
pub struct Kms {
    keys: KeyService,
    custody: Arc<dyn Custody>,
    cache: KeyCache,
    tokens: auth::TokenBook,
    audit: Arc<dyn AuditSink>,
    offload: Arc<dyn crate::offload::Offload>,
    references: Arc<references::References>,
    /// Progress of the tracked-key rewraps this process drives.
    rewrap_board: Arc<rewrap_progress::RewrapBoard>,
    options: KmsOptions,
    /// Wakes this process's rotation worker when a request starts or resumes a saga,
    /// so it need not wait for its next tick.
    rotation_wake: tokio::sync::Notify,
    /// Integrity failures this service found (its share of `kms_integrity_failed_total`).
    integrity_failures: Arc<std::sync::atomic::AtomicU64>,
    /// Tenants' PQ policy overrides.
    pq_policies: pq_policy::PqPolicies,
    /// Refusals audited per principal and window (`refusals`).
    refusals: refusals::RefusalLimiter,
    /// Verifies attestation documents (and remembers their nonces).
    attestor: coffer_attest::Attestor,
    /// The last known-answer checks (`kat.rs`): readiness waits for them to pass.
    known_answers: std::sync::RwLock<KnownAnswers>,
}

impl Kms {
    /// Composes the service. Call [`Kms::load`] once custody is unsealed.
    ///
    /// `offload` runs CPU-heavy signing (ML-DSA, hybrid): the server passes its bounded
    /// pool; only tests and tools pass [`crate::offload::Inline`]. It is an argument, not
    /// a builder step with a default, so the production wiring cannot be forgotten.
    /// `hsm` holds HSM-resident keys (`None`: no HSM, `protection = hsm` is refused).
    pub fn new(
        store: Arc<dyn Store>,
        custody: Arc<dyn Custody>,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
        offload: Arc<dyn crate::offload::Offload>,
        hsm: Option<Arc<dyn crate::hsm::KeyHsm>>,
        options: KmsOptions,
    ) -> Self {
        // Rows refused by the state seal count with every other integrity failure.
        let integrity_failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seal = Arc::new(crate::state_seal::StateSeal::new(
            integrity_failures.clone(),
        ));
        Self {
            attestor: coffer_attest::Attestor::new(&options.attestation),
            audit,
            offload,
            references: Arc::default(),
            rewrap_board: Arc::default(),
            cache: KeyCache::new(options.cache_ttl, options.verify_cache),
            keys: KeyService::new(store, custody.clone(), clock, hsm, seal),
            custody,
            tokens: auth::TokenBook::default(),
            options,
            rotation_wake: tokio::sync::Notify::new(),
            integrity_failures,
            pq_policies: pq_policy::PqPolicies::default(),
            refusals: refusals::RefusalLimiter::default(),
            known_answers: std::sync::RwLock::new(KnownAnswers::NotRun),
        }
    }

    /// The key service underneath (for background workers and tests).
    pub fn key_service(&self) -> &KeyService {
        &self.keys
    }

    /// Custody's seal status.
    pub fn seal_status(&self) -> SealStatus {
        self.custody.status()
    }

    /// True when requests can be served: unsealed, loaded, the known-answer checks
    /// passed, and the store answers.
    pub async fn ready(&self) -> bool {
        self.custody.status() == SealStatus::Unsealed
            && self.tokens.is_loaded()
            && matches!(self.known_answer_outcome(), KnownAnswers::Passed(_))
            && self.keys.store().ping().await.is_ok()
    }

    /// Drops one key from the cache, after a change made around the service (a
    /// background worker, an operator tool).
    pub fn forget_key(&self, tenant: TenantId, key: KeyId) {
        self.cache.invalidate(tenant, key);
    }

    /// What this process's verify cache did so far.
    pub fn verify_cache_counts(&self) -> VerifyCacheCounts {
        self.cache.verdicts.counts()
    }

    /// Sets the verify cache's gauges (`verify_cache_ttl_ms`, `verify_cache_size`).
    pub fn report_verify_cache(&self) {
        self.cache.verdicts.report();
    }

    /// Forgets every cached secret (after custody was sealed).
    pub fn forget_secrets(&self) {
        self.cache.clear();
        self.tokens.forget();
        self.keys.seal().forget();
    }

    /// Marks an operation by `caller` on `version` of `key` in flight, and records the
    /// use of that `kind` (flushed to the store in the background).
    fn in_flight(
        &self,
        caller: &Caller,
        key: &crate::key::Key,
        version: crate::ids::VersionNumber,
        kind: crate::usage::UseKind,
    ) -> references::InFlight {
        let of = crate::usage::UseOf {
            tenant: key.tenant,
            key: key.id,
            version,
            principal: caller.token_id,
            kind,
        };
        self.references.begin(of, self.keys.clock().now())
    }

    /// Moves this process's recorded use of key versions to the store (the server
    /// calls it about once a second and once more at shutdown). A failure keeps the
    /// use for the next call and fails no request. Returns the rows written.
    pub async fn flush_references(&self) -> KmsResult<usize> {
        Ok(self.references.flush(self.keys.store().as_ref()).await?)
    }

    fn tenant_of(caller: &Caller) -> KmsResult<TenantId> {
        caller
            .grants
            .tenant()
            .ok_or(KmsError::Forbidden("this operation needs a tenant token"))
    }

    /// Resolves `reference` for `op` on behalf of `caller`, checking the token first.
    async fn key_for(
        &self,
        caller: &Caller,
        op: Operation,
        reference: &str,
    ) -> KmsResult<Arc<CachedKey>> {
        if !caller.grants.allows_op(op) {
            return Err(KmsError::Forbidden(
                "the token does not allow this operation",
            ));
        }
        let tenant = Self::tenant_of(caller)?;
        let id = self.resolve_id(tenant, reference).await?;
        self.entry_for(caller, tenant, id, op).await
    }

    /// The key `id` for `op`: within the token's scope, and allowed by the key's
    /// policy and grants, which narrow further (docs/aws.md) and never widen.
    async fn entry_for(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: KeyId,
        op: Operation,
    ) -> KmsResult<Arc<CachedKey>> {
        let entry = self.entry_in_scope(caller, tenant, id).await?;
        if let Some(access) = &entry.access {
            access.check(caller, op)?;
        }
        Ok(entry)
    }

    async fn resolve_id(&self, tenant: TenantId, reference: &str) -> KmsResult<KeyId> {
        if let Ok(id) = reference.parse::<KeyId>() {
            return Ok(id);
        }
        let full = Alias::full(reference).map_err(|e| KmsError::Invalid(e.to_string()))?;
        if let Some(id) = self.cache.alias(tenant, &full) {
            return Ok(id);
        }
        let alias: Alias = full
            .parse()
            .map_err(|e: crate::InvalidInput| KmsError::Invalid(e.to_string()))?;
        self.keys
            .store()
            .resolve_alias(tenant, &alias)
            .await?
            .ok_or(KmsError::NotFound("key"))
    }

    async fn entry_in_scope(
        &self,
        caller: &Caller,
        tenant: TenantId,
        id: KeyId,
    ) -> KmsResult<Arc<CachedKey>> {
        let entry = match self.cache.get(tenant, id) {
            Some(entry) => entry,
            None => self.load_entry(tenant, id).await?,
        };
        if !caller.grants.allows_key(&entry.key) {
            tracing::warn!(target: "coffer::access", token = %caller.token_id, key = %id, "key outside the token's scope");
            return Err(KmsError::NotFound("key"));
        }
        Ok(entry)
    }

    async fn load_entry(&self, tenant: TenantId, id: KeyId) -> KmsResult<Arc<CachedKey>> {
        let epoch = self.cache.epoch();
        let key = self.keys.store().get_key(tenant, id).await?.ok_or_else(|| {
            tracing::warn!(target: "coffer::access", %tenant, key = %id, "key absent in the caller's tenant");
            KmsError::NotFound("key")
        })?;
        let versions = self.keys.versions(tenant, id).await?;
        let kek = self.tenant_key(tenant).await?;
        let mut ready = BTreeMap::new();
        for version in versions.iter().filter(|v| v.state.can_decrypt()) {
            let subject = format!("tenant {tenant} key {id} version {}", version.number);
            let loaded = self.ready_version(&key, version, &kek, &subject)?;
            ready.insert(version.number, loaded);
        }
        // After the material checks, so an edit they catch keeps its own label.
        self.check_states(&key, &versions)?;
        let attestation = self.keys.store().attestation_policy(tenant, id).await?;
        let mut cached = CachedKey::new(key, versions, ready);
        cached.attestation = attestation;
        cached.access = self.load_access(tenant, id).await?;
        let entry = Arc::new(cached);
        self.cache.insert(entry.clone(), epoch);
        Ok(entry)
    }

    async fn tenant_key(&self, tenant: TenantId) -> KmsResult<Arc<coffer_crypto::AeadKey>> {
        if let Some(key) = self.cache.tenant_key(tenant) {
            return Ok(key);
        }
        let key = Arc::new(self.keys.tenant_kek(tenant).await?);
        self.cache.insert_tenant_key(tenant, key.clone());
        Ok(key)
    }
}

/// Checks the key may be used for `operation`: enabled and of the right purpose.
fn require_usable(
    entry: &CachedKey,
    purpose: KeyPurpose,
    operation: &'static str,
) -> KmsResult<()> {
    require_enabled(entry)?;
    if entry.key.purpose != purpose {
        return Err(KmsError::WrongPurpose {
            purpose: entry.key.purpose.as_str(),
            operation,
        });
    }
    // Encrypt keys are AES (the envelope operations) or RSA (OAEP, in `asymmetric`,
    // which checks for itself); an RSA key has no envelope to wrap with.
    if purpose == KeyPurpose::Encrypt && entry.key.spec.is_rsa() {
        return Err(KmsError::WrongPurpose {
            purpose: entry.key.spec.as_str(),
            operation,
        });
    }
    Ok(())
}

/// Checks the key is enabled (not disabled, pending deletion or destroyed).
fn require_enabled(entry: &CachedKey) -> KmsResult<()> {
    match entry.key.state {
        KeyState::Enabled => {}
        KeyState::Disabled => return Err(KmsError::KeyDisabled("disabled")),
        KeyState::PendingDeletion => return Err(KmsError::KeyDisabled("pending deletion")),
        // As AWS KMS answers for a deleted key: it is gone (404), not merely disabled.
        KeyState::Destroyed => return Err(KmsError::KeyDestroyed),
    }
    Ok(())
}
