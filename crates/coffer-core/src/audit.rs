//! Where the service records what it did: the `AuditSink` trait. The durable,
//! group-committed, Merkle-checkpointed implementation lives with the server (it needs
//! a runtime); the entry format and the tree math live in `coffer-audit`.

use async_trait::async_trait;
pub use coffer_audit::AuditEntry;
use thiserror::Error;

use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::time::Timestamp;

/// Who asks for a change, and as which operation. A change's audit entry is built from
/// it and committed in the change's own store transaction (see [`crate::store::Record`]),
/// so no change exists without its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The caller's token id, or a worker's name for background work nobody asked for
    /// (scheduled rotation, retirement after an overlap).
    pub principal: String,
    /// The request (or worker run) the change belongs to.
    pub request_id: String,
    /// The operation, e.g. `keys.create`, `rotation.switch_pointer`.
    pub op: String,
}

impl Actor {
    /// An actor for `op`.
    pub fn new(principal: impl Into<String>, request_id: impl Into<String>, op: &str) -> Self {
        Self {
            principal: principal.into(),
            request_id: request_id.into(),
            op: op.to_owned(),
        }
    }

    /// The same caller and request acting as another operation.
    pub fn as_op(&self, op: &str) -> Self {
        Self {
            op: op.to_owned(),
            ..self.clone()
        }
    }

    /// The `ok` entry of a change this actor made.
    pub fn entry(
        &self,
        tenant: Option<TenantId>,
        subject: (Option<KeyId>, Option<VersionNumber>),
        at: Timestamp,
        detail: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            at: at.millis(),
            tenant: tenant.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            principal: self.principal.clone(),
            op: self.op.clone(),
            key: subject.0.map(|k| k.to_string()),
            version: subject.1.map(VersionNumber::get),
            outcome: "ok".to_owned(),
            request_id: self.request_id.clone(),
            detail,
        }
    }
}

/// The entry could not be made durable; the operation must fail (fail closed).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("the audit log cannot be written: {0}")]
pub struct AuditUnavailable(pub String);

std::thread_local! {
    static WRITER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as an audit writer's own: nothing but that writer runs on
/// it, so a store called from it may block it (SQLite's journal syncs in place there).
pub fn mark_audit_writer_thread() {
    WRITER_THREAD.with(|marked| marked.set(true));
}

/// True on a thread marked by [`mark_audit_writer_thread`].
pub fn on_audit_writer_thread() -> bool {
    WRITER_THREAD.with(std::cell::Cell::get)
}

/// Records audit entries. `record` returns only once the entry is durable.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Appends `entry`; `Err` means it is not recorded.
    async fn record(&self, entry: AuditEntry) -> Result<(), AuditUnavailable>;

    /// Appends the entry of a refusal (a request that changed nothing and returns
    /// nothing: 403, 404) without waiting for it to be durable, so a refusal costs no
    /// commit; `Err` means it could not even be queued. The default waits (sinks without
    /// a commit cost); a durable sink overrides it.
    async fn record_refusal(&self, entry: AuditEntry) -> Result<(), AuditUnavailable> {
        self.record(entry).await
    }

    /// Appends `entries` as one group: all recorded, or (`Err`) none. A durable sink
    /// commits them together, so a batch request pays one commit, not one per item.
    /// The default records them one after another (fine for sinks without a commit
    /// cost; a durable sink overrides it).
    async fn record_group(&self, entries: Vec<AuditEntry>) -> Result<(), AuditUnavailable> {
        for entry in entries {
            self.record(entry).await?;
        }
        Ok(())
    }

    /// Signs (and anchors) a checkpoint of everything recorded so far; returns its size.
    async fn checkpoint_now(&self) -> Result<u64, AuditUnavailable> {
        Err(AuditUnavailable(
            "this audit sink makes no checkpoints".into(),
        ))
    }

    /// The index of the last entry recorded with `request_id` and `op`, if any.
    async fn last_index_of(&self, _request_id: &str, _op: &str) -> Option<u64> {
        None
    }

    /// The size of the newest signed checkpoint, if any.
    async fn checkpointed_size(&self) -> Option<u64> {
        None
    }
}

/// Records nothing. Only for measuring the audit log's cost (`audit.enabled = false`)
/// and for unit tests of the service; production always records.
#[derive(Debug, Default)]
pub struct NoAudit;

#[async_trait]
impl AuditSink for NoAudit {
    async fn record(&self, _entry: AuditEntry) -> Result<(), AuditUnavailable> {
        Ok(())
    }
}
