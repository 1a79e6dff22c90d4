//! Coffer's `Store` over SQL: SQLite (the embedded default) and PostgreSQL.
//!
//! Layout:
//! - this file — [`SqlStore`]: connecting, pool layout per backend, the trait impl that
//!   delegates to the modules below.
//! - [`migrate`] — embedded schema migrations, run at start.
//! - `tenants`, `keys`, `versions`, `history` — the queries, one module per table group
//!   (`version_store` is the `VersionStore` impl over `versions`, `tenant_store` the
//!   `TenantStore` impl over `tenants`).
//! - `usage` — the reference tracker's persisted counts (`UsageStore`).
//! - `attestation` — keys' attestation policies, one row per version (`AttestationStore`).
//! - `sqlite_pool` — SQLite connection settings (writer and readers).
//! - `checkpoint` — SQLite's WAL checkpoints, run beside the writer.
//! - `owner` — the lock that lets one process at a time open a SQLite database file.
//! - `multirow` — INSERT statements of many rows (a group of key creations, a
//!   change's events).
//! - `rows` — decoding rows into domain types; `errors` — sqlx errors to `StoreError`.
//! - `testing` (feature `testing`) — a fresh PostgreSQL schema per test.
//!
//! One query layer serves both databases through sqlx's `Any` driver: the SQL is the
//! common subset (`$n` placeholders, BIGINT instants, TEXT UUIDs, 0/1 booleans), and the
//! schema differs only in column types (see `migrations/`).
//!
//! SQLite runs in WAL mode with `synchronous=FULL`, so a commit that returned is on disk;
//! writes go through a single connection (SQLite has one writer anyway, and this avoids
//! lock-upgrade deadlocks between deferred transactions), reads through a small pool.
//!
//! Every write is one transaction through [`in_transaction!`]: a commit that fails
//! (disk full, I/O error) closes the connection instead of returning it to the pool,
//! because a connection whose COMMIT failed may still be inside its transaction, and
//! everything written through it afterwards would be acknowledged and never committed.
//! The `health` module keeps the writer's state for readiness: broken after a failed
//! write, healthy again after the next commit (a probe write from `ping` finds out).

mod audit;
mod batch;
mod checkpoint;
mod errors;
mod health;
mod history;
mod keys;
pub mod migrate;
mod multirow;
mod owner;
mod quota;
mod rows;
mod secrets;
mod sqlite_pool;
mod tenant_pq;
mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
mod tracked;
mod versions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::audit::AuditEntry;
use coffer_core::store::{
    Appended, AuditStore, KeyStore, Record, Rewrapped, RotationFilter, RotationRecord,
    RotationStore, Store, StoreError, StoreResult, TrackedKey,
};
use coffer_core::{Alias, Event, Key, KeyId, KeyVersion, TenantId, Timestamp};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use health::WriterHealth;
use sqlite_pool::{SqliteRole, sqlite_pool};

pub use errors::unavailable;

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A `Store` on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlStore {
    reader: AnyPool,
    writer: AnyPool,
    backend: Backend,
    health: Arc<WriterHealth>,
    head: Arc<audit::AuditHead>,
    /// Key creations, group-committed (see `batch`); started once migrated.
    creations: Option<batch::KeyCreations>,
    /// Per-tenant quotas, checked inside the writing transactions (see `quota`).
    quotas: quota::SharedQuotas,
    /// SQLite in a file: the WAL checkpoints, beside the writer (see `checkpoint`).
    checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    /// SQLite in a file: the audit journal the hot path appends to (`audit::journaled`).
    journal: Option<Arc<audit::journaled::Journal>>,
}

/// Runs `$body` (an expression using `$conn: &mut AnyConnection`) in one transaction on
/// a writer connection — for a change, followed by its audit entry (`audit = record`) —
/// commits it, and settles the connection: a failure of the database itself closes it
/// and marks the writer broken; a commit marks it healthy and publishes the audit head.
/// A macro rather than a function taking a closure: the body borrows its arguments and
/// the connection at once, which a closure returning a `Send` future cannot express.
macro_rules! in_transaction {
    ($store:expr, audit = $record:expr, |$conn:ident| $body:expr) => {{
        let store: &SqlStore = $store;
        let record: &Record = $record;
        in_transaction!(store, |$conn| async {
            let value = $body.await?;
            audit::append_in(
                &mut *$conn,
                &store.head,
                std::slice::from_ref(&record.audit),
            )
            .await?;
            Ok::<_, StoreError>(value)
        })
    }};
    ($store:expr, |$conn:ident| $body:expr) => {{
        let store: &SqlStore = $store;
        match store.writer.acquire().await {
            Err(error) => Err(store.health.failed(errors::unavailable(error))),
            Ok(mut pooled) => {
                // Counted while the connection is held: a group of key creations that
                // kept its tenants' counts (`batch::kept`) sees that this one ran.
                store.health.began_write();
                // Transactions on the writer run one at a time: whatever an abandoned
                // one (a dropped request) staged of the audit head is void.
                let staging = store.head.begin();
                let outcome = async {
                    let mut tx = sqlx::Connection::begin(&mut *pooled)
                        .await
                        .map_err(errors::unavailable)?;
                    let value = {
                        let $conn: &mut sqlx::AnyConnection = &mut *tx;
                        $body.await?
                    };
                    tx.commit().await.map_err(errors::unavailable)?;
                    Ok(value)
                }
                .await;
                staging.settle(outcome.is_ok());
                store.health.settle(pooled, outcome).await
            }
        }
    }};
}

// After the macro, which they use (macros are in scope from their definition on).
mod access;
mod attestation;
pub mod backup;
mod tags;
mod tenant_store;
mod token_store;
mod usage;
mod version_store;

impl SqlStore {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> StoreResult<Self> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and migrates the schema.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unavailable(
                "database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(unavailable)?
            .log_statements(tracing::log::LevelFilter::Trace);
        // Before any statement: the owner of a live SQLite database keeps audit state
        // outside it that a second opener would break (`owner`).
        let owner = match sqlite_file(url).filter(|_| backend == Backend::Sqlite) {
            Some(file) => Some(owner::own(file).await?),
            None => None,
        };
        let store = match backend {
            Backend::Sqlite => {
                let writer = sqlite_pool(SqliteRole::Writer, 1)
                    .connect_with(options.clone())
                    .await
                    .map_err(unavailable)?;
                // WAL must be set before readers open; it persists in the file.
                writer
                    .execute("PRAGMA journal_mode=WAL")
                    .await
                    .map_err(unavailable)?;
                let reader = sqlite_pool(SqliteRole::Reader, 4)
                    .connect_with(options)
                    .await
                    .map_err(unavailable)?;
                Self {
                    reader,
                    writer,
                    backend,
                    health: Arc::default(),
                    // Filled from the stored log below, once migrated.
                    head: Arc::new(audit::AuditHead::memory()),
                    creations: None,
                    quotas: quota::SharedQuotas::default(),
                    checkpointer: None,
                    journal: None,
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(unavailable)?;
                Self {
                    reader: pool.clone(),
                    writer: pool,
                    backend,
                    health: Arc::default(),
                    head: Arc::new(audit::AuditHead::Row),
                    creations: None,
                    quotas: quota::SharedQuotas::default(),
                    checkpointer: None,
                    journal: None,
                }
            }
        };
        migrate::run(&store.writer, backend).await?;
        audit::ensure_head(&store.writer).await?;
        store.head.load(&store.writer).await?;
        let mut store = store;
        if backend == Backend::Sqlite {
            store.checkpointer = Some(Arc::new(checkpoint::start(store.reader.clone())));
            if let (Some(file), Some(owner)) = (sqlite_file(url), owner) {
                let journal = audit::journaled::Journal::open(
                    &file,
                    owner,
                    store.writer.clone(),
                    store.head.clone(),
                    store.health.clone(),
                )
                .await?;
                store.journal = Some(Arc::new(journal));
            }
        }
        store.creations = Some(batch::KeyCreations::start(
            backend,
            store.writer.clone(),
            store.head.clone(),
            store.health.clone(),
            store.quotas.clone(),
        ));
        Ok(store)
    }

    /// Appends a group-committed batch. On SQLite in a file it goes to the audit
    /// journal (`audit::journaled`). Otherwise on SQLite a batch that fits one statement
    /// is one autocommit INSERT (atomic by itself): the head is in memory there, so the
    /// hot path pays one round trip to the database per burst of requests.
    async fn append_batch(&self, entries: &[AuditEntry]) -> StoreResult<Appended> {
        if let Some(journal) = &self.journal {
            return journal.append(entries).await;
        }
        if !self.head.in_memory() || entries.len() > audit::ROWS_PER_STATEMENT {
            return in_transaction!(self, |conn| audit::append_in(conn, &self.head, entries));
        }
        let mut pooled = match self.writer.acquire().await {
            Ok(pooled) => pooled,
            Err(error) => return Err(self.health.failed(unavailable(error))),
        };
        let staging = self.head.begin();
        let outcome = audit::append_in(&mut pooled, &self.head, entries).await;
        staging.settle(outcome.is_ok());
        self.health.settle(pooled, outcome).await
    }

    /// Replaces the per-tenant quotas (until then, `Limits::default()` for every
    /// tenant). Every clone of this store shares them.
    pub fn set_quotas(&self, quotas: coffer_core::quota::Quotas) {
        self.quotas.set(quotas);
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (tests use it to reopen a file), after writing what the
    /// audit journal holds into the database (what it cannot write stays in the
    /// journal, for the next open).
    pub async fn close(&self) {
        let _ = self.settle_audit().await;
        self.reader.close().await;
        // Waits for the transactions in flight, the drain's included.
        self.writer.close().await;
        // Only now may another process own the file: nothing of this one's reaches the
        // table any more, and what was appended to the journal meanwhile stays there
        // for the next owner to recover.
        if let Some(journal) = &self.journal {
            journal.let_go().await;
        }
    }
}

/// The file of a `sqlite:` URL; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path.is_empty() || path == ":memory:" || query.contains("mode=memory");
    (!memory).then(|| std::path::PathBuf::from(path))
}

/// `path` with `suffix` added to its file name (`coffer.db` → `coffer.db-lock`): the
/// files a SQLite database keeps beside it.
pub(crate) fn with_suffix(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}

/// Wall-clock Unix milliseconds, for bookkeeping columns the domain does not own
/// (`updated_at`, `applied_at`); domain instants come from the service's clock.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        self.reader.execute("SELECT 1").await.map_err(unavailable)?;
        if self.health.is_broken() {
            // Only a commit proves the writer works again (space freed, disk back).
            in_transaction!(self, |conn| secrets::probe(conn, crate::now_millis()))?;
        }
        if let Some(journal) = self.journal.as_ref().filter(|j| j.is_broken()) {
            journal.probe().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn create_key(&self, key: &Key, first: &KeyVersion, record: &Record) -> StoreResult<()> {
        match &self.creations {
            Some(creations) => creations.create(key, first, record).await,
            None => Err(StoreError::Unavailable(
                "the key creation queue was not started".into(),
            )),
        }
    }

    async fn get_key(&self, tenant: TenantId, id: KeyId) -> StoreResult<Option<Key>> {
        keys::get(&self.reader, tenant, id).await
    }

    async fn resolve_alias(&self, tenant: TenantId, alias: &Alias) -> StoreResult<Option<KeyId>> {
        keys::resolve_alias(&self.reader, tenant, alias).await
    }

    async fn list_keys(&self, tenant: TenantId) -> StoreResult<Vec<Key>> {
        keys::list(&self.reader, tenant).await
    }

    async fn add_alias(
        &self,
        tenant: TenantId,
        key: KeyId,
        alias: &Alias,
        record: &Record,
    ) -> StoreResult<()> {
        let limits = self.quotas.of(tenant);
        in_transaction!(self, audit = record, |conn| keys::add_alias(
            conn, &limits, tenant, key, alias, record
        ))
    }

    async fn remove_alias(
        &self,
        tenant: TenantId,
        key: KeyId,
        alias: &Alias,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| keys::remove_alias(
            conn, tenant, key, alias, record
        ))
    }

    async fn move_alias(
        &self,
        tenant: TenantId,
        alias: &Alias,
        from: KeyId,
        to: KeyId,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| keys::move_alias(
            conn, tenant, alias, from, to, record
        ))
    }

    async fn update_metadata(&self, key: &Key, record: &Record) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| keys::update_metadata(
            conn, key, record
        ))
    }

    async fn key_events(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<Event>> {
        history::key_events(&self.reader, tenant, key).await
    }
}

#[async_trait]
impl RotationStore for SqlStore {
    async fn start_rotation(&self, rotation: &RotationRecord, record: &Record) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| history::start_rotation(
            conn, rotation, record
        ))
    }

    async fn get_rotation(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> StoreResult<Option<RotationRecord>> {
        history::get_rotation(&self.reader, tenant, id).await
    }

    async fn list_rotations(
        &self,
        tenant: TenantId,
        filter: RotationFilter,
    ) -> StoreResult<Vec<RotationRecord>> {
        history::list_rotations(&self.reader, tenant, filter).await
    }

    async fn save_rotation(
        &self,
        from: &RotationRecord,
        rotation: &RotationRecord,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| history::save_rotation(
            conn, from, rotation, record
        ))
    }

    async fn running_rotations(&self) -> StoreResult<Vec<RotationRecord>> {
        history::running_rotations(&self.reader).await
    }

    async fn track_key(&self, tracked: &TrackedKey, record: &Record) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| tracked::insert(
            conn, tracked, record
        ))
    }

    async fn get_tracked(
        &self,
        tenant: TenantId,
        track_id: &str,
    ) -> StoreResult<Option<TrackedKey>> {
        tracked::get(&self.reader, tenant, track_id).await
    }

    async fn tracked_under(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: u32,
        limit: u64,
    ) -> StoreResult<Vec<TrackedKey>> {
        tracked::under(&self.reader, tenant, key, version, limit).await
    }

    async fn count_tracked(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<(u32, u64)>> {
        tracked::count(&self.reader, tenant, key).await
    }

    async fn rewrap_tracked(
        &self,
        tenant: TenantId,
        from_version: u32,
        to_version: u32,
        items: &[Rewrapped],
    ) -> StoreResult<u64> {
        in_transaction!(self, |conn| tracked::rewrap(
            conn,
            tenant,
            from_version,
            to_version,
            items,
        ))
    }
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, entries: &[AuditEntry]) -> StoreResult<Appended> {
        self.append_batch(entries).await
    }

    async fn audit_entries(&self, from: u64, limit: u64) -> StoreResult<Vec<(u64, String)>> {
        // The journal's entries after the table's. Taken first: an entry written into
        // the table meanwhile is then in both (and kept once), never in neither.
        let pending = self.head.pending_from(from, limit);
        let mut rows = audit::entries(&self.reader, from, limit).await?;
        let next = rows.last().map_or(from, |(index, _)| index + 1);
        let room = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(rows.len());
        rows.extend(
            pending
                .into_iter()
                .filter(|(index, _)| *index >= next)
                .take(room),
        );
        Ok(rows)
    }

    async fn save_checkpoint(&self, size: u64, note: &str, at: Timestamp) -> StoreResult<()> {
        in_transaction!(self, |conn| audit::save_checkpoint(conn, size, note, at))
    }

    async fn checkpoints(&self) -> StoreResult<Vec<(u64, String)>> {
        audit::checkpoints(&self.reader).await
    }

    async fn settle_audit(&self) -> StoreResult<()> {
        match &self.journal {
            Some(journal) => journal.drain_all().await,
            None => Ok(()),
        }
    }
}
