//! The token half of the store: server secrets (wrapped) and token records, with the
//! tags that bind their grants and revocations (see `kms/auth.rs`).

use async_trait::async_trait;

use super::{Record, StoreResult};
use crate::time::Timestamp;
use crate::token::{TokenId, TokenRecord};

/// Server secrets (wrapped) and token records.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a wrapped server secret under `name`. `Conflict` if it exists: secrets
    /// are created once (at init) and never silently replaced.
    async fn put_secret(&self, name: &str, wrapped: &[u8]) -> StoreResult<()>;

    /// A wrapped server secret.
    async fn get_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Records a minted token.
    async fn insert_token(&self, token: &TokenRecord, record: &Record) -> StoreResult<()>;

    /// Marks a token revoked at `at`, replacing its tag with `tag` (the revoked
    /// record's, `token::revoked_tag`). `NotFound` if no such id or already revoked.
    async fn revoke_token(
        &self,
        id: TokenId,
        at: Timestamp,
        tag: &[u8; 32],
        record: &Record,
    ) -> StoreResult<()>;

    /// Every token record (the server keeps them in memory).
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>>;

    /// Binds the grants of records minted before grants were bound: sets each named
    /// record's `grant_tag` where it has none, and stores the server secret
    /// `marker` (name, wrapped value) recording that binding was done, in one
    /// transaction with `record`. `Conflict` if the marker exists (another replica bound
    /// them first); then nothing changes.
    async fn bind_token_grants(
        &self,
        tags: &[(TokenId, [u8; 32])],
        marker: (&str, &[u8]),
        record: &Record,
    ) -> StoreResult<()>;

    /// Binds the revocations made before revocations were bound: sets each named
    /// record's tag where it is revoked, and stores `marker`, in one transaction with
    /// `record`. `Conflict` if the marker exists; then nothing changes.
    async fn bind_token_revocations(
        &self,
        tags: &[(TokenId, [u8; 32])],
        marker: (&str, &[u8]),
        record: &Record,
    ) -> StoreResult<()>;
}
