//! Tags of keys (the AWS front's resource tags): `tag key → value` pairs stored per key,
//! apart from its labels, so AWS tools can tag without touching operator labels.

use async_trait::async_trait;

use super::{Record, StoreResult};
use crate::ids::{KeyId, TenantId};

/// A key's tags, by tag key.
pub type Tags = std::collections::BTreeMap<String, String>;

/// Tags of keys.
#[async_trait]
pub trait TagStore: Send + Sync {
    /// Sets `set` (replacing the values of tag keys already there) and removes the tag
    /// keys of `remove` on `key` of `tenant`, in one transaction with `record`. Refused
    /// with `Conflict` when the key would then carry more than `max` tags (checked
    /// inside the transaction, so concurrent changes cannot pass it together), and
    /// `NotFound` for a key of another tenant.
    async fn change_tags(
        &self,
        tenant: TenantId,
        key: KeyId,
        set: &Tags,
        remove: &[String],
        max: usize,
        record: &Record,
    ) -> StoreResult<()>;

    /// The tags of `key` in `tenant` (empty for another tenant's key).
    async fn key_tags(&self, tenant: TenantId, key: KeyId) -> StoreResult<Tags>;
}
