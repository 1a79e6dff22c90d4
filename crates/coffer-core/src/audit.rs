//! Where the service records what it did: the `AuditSink` trait. The durable,
//! group-committed, Merkle-checkpointed implementation lives with the server (it needs
//! a runtime); the entry format and the tree math live in `coffer-audit`.

use async_trait::async_trait;
pub use coffer_audit::AuditEntry;
use thiserror::Error;

/// The entry could not be made durable; the operation must fail (fail closed).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("the audit log cannot be written: {0}")]
pub struct AuditUnavailable(pub String);

/// Records audit entries. `record` returns only once the entry is durable.
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Appends `entry`; `Err` means it is not recorded.
    async fn record(&self, entry: AuditEntry) -> Result<(), AuditUnavailable>;

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
