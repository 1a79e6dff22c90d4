//! Key policies and grants (the AWS front's access controls), kept per key in their own
//! tables (migration 0024), apart from the keys' other columns.

use async_trait::async_trait;

use super::{Record, StoreResult};
use crate::ids::{KeyId, TenantId};
use crate::time::Timestamp;

/// A key's policy: the document as given, and its rules as Coffer evaluates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The policy document, as the caller wrote it.
    pub document: String,
    /// The normalised rules (JSON of `kms::KeyPolicy`).
    pub rules: String,
}

/// A grant: a grantee token may use the listed AWS operations on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Grant id (random, hex).
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Key.
    pub key: KeyId,
    /// The grantee: a token id of the tenant.
    pub grantee: String,
    /// The token id that may retire the grant, if any.
    pub retiring: Option<String>,
    /// AWS operation names (`Encrypt`, `Decrypt`, …).
    pub operations: Vec<String>,
    /// The caller's name for it.
    pub name: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// Key policies and grants.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Sets (or replaces) the policy of `key`, in one transaction with `record`;
    /// `NotFound` for a key of another tenant.
    async fn put_key_policy(
        &self,
        tenant: TenantId,
        key: KeyId,
        policy: &StoredPolicy,
        record: &Record,
    ) -> StoreResult<()>;

    /// The policy of `key`, if one was set.
    async fn key_policy(&self, tenant: TenantId, key: KeyId) -> StoreResult<Option<StoredPolicy>>;

    /// Stores a grant, in one transaction with `record`; `NotFound` for a key of
    /// another tenant.
    async fn create_grant(&self, grant: &Grant, record: &Record) -> StoreResult<()>;

    /// The grants of `key` (every key of the tenant when `None`), by grant id.
    async fn grants(&self, tenant: TenantId, key: Option<KeyId>) -> StoreResult<Vec<Grant>>;

    /// Deletes a grant of `key`, in one transaction with `record`; `NotFound` when the
    /// key has no such grant.
    async fn delete_grant(
        &self,
        tenant: TenantId,
        key: KeyId,
        id: &str,
        record: &Record,
    ) -> StoreResult<()>;
}
