//! Coffer's `Store` over SQL: SQLite (the embedded default) and PostgreSQL.
//!
//! Layout:
//! - this file — [`SqlStore`]: connecting, pool layout per backend, the trait impl that
//!   delegates to the modules below.
//! - [`migrate`] — embedded schema migrations, run at start.
//! - `tenants`, `keys`, `versions`, `history` — the queries, one module per table group.
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

mod audit;
mod errors;
mod history;
mod keys;
pub mod migrate;
mod rows;
mod secrets;
mod tenants;
#[cfg(feature = "testing")]
pub mod testing;
mod tracked;
mod versions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use coffer_core::store::{Change, RotationRecord, Store, StoreError, StoreResult, TrackedKey};
use coffer_core::token::{TokenId, TokenRecord};
use coffer_core::{
    Alias, Event, Key, KeyId, KeyVersion, Tenant, TenantId, Timestamp, VersionNumber,
};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

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
}

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
        let store = match backend {
            Backend::Sqlite => {
                let writer = sqlite_pool(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(unavailable)?;
                // WAL must be set before readers open; it persists in the file.
                writer
                    .execute("PRAGMA journal_mode=WAL")
                    .await
                    .map_err(unavailable)?;
                let reader = sqlite_pool(4)
                    .connect_with(options)
                    .await
                    .map_err(unavailable)?;
                Self {
                    reader,
                    writer,
                    backend,
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
                }
            }
        };
        migrate::run(&store.writer, backend).await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection (tests use it to reopen a file).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Wall-clock Unix milliseconds, for bookkeeping columns the domain does not own
/// (`updated_at`, `applied_at`); domain instants come from the service's clock.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn sqlite_pool(size: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // Per-connection settings: full fsync at commit (durable against power
                // loss, not only process crashes), enforced foreign keys, and waiting
                // rather than failing when another connection holds the write lock.
                conn.execute("PRAGMA synchronous=FULL").await?;
                conn.execute("PRAGMA foreign_keys=ON").await?;
                conn.execute("PRAGMA busy_timeout=10000").await?;
                Ok(())
            })
        })
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        self.reader
            .execute("SELECT 1")
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn create_tenant(
        &self,
        tenant: &Tenant,
        wrapped_kek: &[u8],
        event: &Event,
    ) -> StoreResult<()> {
        tenants::create(&self.writer, tenant, wrapped_kek, event).await
    }

    async fn get_tenant(&self, id: TenantId) -> StoreResult<Option<Tenant>> {
        tenants::get(&self.reader, "id", &id.to_string()).await
    }

    async fn get_tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        tenants::get(&self.reader, "name", name).await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        tenants::list(&self.reader).await
    }

    async fn get_tenant_kek(&self, id: TenantId) -> StoreResult<Option<Vec<u8>>> {
        tenants::kek(&self.reader, id).await
    }

    async fn replace_tenant_kek(
        &self,
        id: TenantId,
        expected: &[u8],
        new: &[u8],
    ) -> StoreResult<()> {
        tenants::replace_kek(&self.writer, id, expected, new).await
    }

    async fn shred_tenant(&self, id: TenantId, event: &Event) -> StoreResult<()> {
        tenants::shred(&self.writer, id, event).await
    }

    async fn create_key(&self, key: &Key, first: &KeyVersion, event: &Event) -> StoreResult<()> {
        keys::create(&self.writer, key, first, event).await
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
        event: &Event,
    ) -> StoreResult<()> {
        keys::add_alias(&self.writer, tenant, key, alias, event).await
    }

    async fn remove_alias(
        &self,
        tenant: TenantId,
        key: KeyId,
        alias: &Alias,
        event: &Event,
    ) -> StoreResult<()> {
        keys::remove_alias(&self.writer, tenant, key, alias, event).await
    }

    async fn update_metadata(&self, key: &Key, event: &Event) -> StoreResult<()> {
        keys::update_metadata(&self.writer, key, event).await
    }

    async fn list_versions(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<KeyVersion>> {
        versions::list(&self.reader, tenant, key).await
    }

    async fn add_version(
        &self,
        tenant: TenantId,
        version: &KeyVersion,
        event: &Event,
    ) -> StoreResult<()> {
        versions::add(&self.writer, tenant, version, event).await
    }

    async fn apply(
        &self,
        tenant: TenantId,
        key: KeyId,
        changes: &[Change],
        event: &Event,
    ) -> StoreResult<()> {
        versions::apply(&self.writer, tenant, key, changes, event).await
    }

    async fn set_cert_chain(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
        chain_pem: Option<&str>,
        event: &Event,
    ) -> StoreResult<()> {
        versions::set_cert_chain(&self.writer, tenant, key, version, chain_pem, event).await
    }

    async fn get_cert_chain(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
    ) -> StoreResult<Option<String>> {
        versions::get_cert_chain(&self.reader, tenant, key, version).await
    }

    async fn key_events(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<Event>> {
        history::key_events(&self.reader, tenant, key).await
    }

    async fn start_rotation(&self, rotation: &RotationRecord) -> StoreResult<()> {
        history::start_rotation(&self.writer, rotation).await
    }

    async fn update_rotation(&self, id: &str, step: &str, status: &str) -> StoreResult<()> {
        history::update_rotation(&self.writer, id, step, status).await
    }

    async fn get_rotation(
        &self,
        tenant: TenantId,
        id: &str,
    ) -> StoreResult<Option<RotationRecord>> {
        history::get_rotation(&self.reader, tenant, id).await
    }

    async fn put_secret(&self, name: &str, wrapped: &[u8]) -> StoreResult<()> {
        secrets::put(&self.writer, name, wrapped).await
    }

    async fn get_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        secrets::get(&self.reader, name).await
    }

    async fn insert_token(&self, record: &TokenRecord) -> StoreResult<()> {
        secrets::insert_token(&self.writer, record).await
    }

    async fn revoke_token(&self, id: TokenId, at: Timestamp) -> StoreResult<()> {
        secrets::revoke_token(&self.writer, id, at).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        secrets::list_tokens(&self.reader).await
    }

    async fn append_audit(&self, entries: &[(u64, String)]) -> StoreResult<()> {
        audit::append(&self.writer, entries).await
    }

    async fn audit_entries(&self, from: u64, limit: u64) -> StoreResult<Vec<(u64, String)>> {
        audit::entries(&self.reader, from, limit).await
    }

    async fn save_checkpoint(&self, size: u64, note: &str, at: Timestamp) -> StoreResult<()> {
        audit::save_checkpoint(&self.writer, size, note, at).await
    }

    async fn checkpoints(&self) -> StoreResult<Vec<(u64, String)>> {
        audit::checkpoints(&self.reader).await
    }

    async fn save_rotation(&self, rotation: &RotationRecord) -> StoreResult<()> {
        history::save_rotation(&self.writer, rotation).await
    }

    async fn running_rotations(&self) -> StoreResult<Vec<RotationRecord>> {
        history::running_rotations(&self.reader).await
    }

    async fn track_key(&self, tracked: &TrackedKey) -> StoreResult<()> {
        tracked::insert(&self.writer, tracked).await
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
        track_id: &str,
        from_version: u32,
        to_version: u32,
        ciphertext: &[u8],
    ) -> StoreResult<()> {
        tracked::rewrap(
            &self.writer,
            tenant,
            track_id,
            from_version,
            to_version,
            ciphertext,
        )
        .await
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        secrets::try_lease(&self.writer, name, holder, now, expires_at).await
    }
}
