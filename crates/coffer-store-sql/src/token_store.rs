//! The token and lease halves of the store: server secrets, token records and their
//! bound grants, and the leases that elect one replica for a background task.

//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses (and whose expansion
//! names `audit`, `errors` and `StoreError`, imported here for it).

use async_trait::async_trait;
use coffer_core::store::{LeaseStore, Record, StoreError, StoreResult, TokenStore};
use coffer_core::time::Timestamp;
use coffer_core::token::{TokenId, TokenKind, TokenRecord};

use crate::{SqlStore, audit, errors, quota, secrets};

#[async_trait]
impl TokenStore for SqlStore {
    async fn put_secret(&self, name: &str, wrapped: &[u8]) -> StoreResult<()> {
        in_transaction!(self, |conn| secrets::put(conn, name, wrapped))
    }

    async fn get_secret(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        secrets::get(&self.reader, name).await
    }

    async fn insert_token(&self, token: &TokenRecord, record: &Record) -> StoreResult<()> {
        // Admin tokens belong to no tenant, so no tenant quota counts them.
        let limits = match token.kind {
            TokenKind::Tenant(tenant) => Some((tenant, self.quotas.of(tenant))),
            TokenKind::Admin => None,
        };
        in_transaction!(self, audit = record, |conn| async {
            if let Some((tenant, limits)) = &limits {
                quota::admit_token(&mut *conn, limits, *tenant).await?;
            }
            secrets::insert_token(conn, token, record).await
        })
    }

    async fn revoke_token(
        &self,
        id: TokenId,
        at: Timestamp,
        tag: &[u8; 32],
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| secrets::revoke_token(
            conn, id, at, tag, record
        ))
    }

    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        secrets::list_tokens(&self.reader).await
    }

    async fn bind_token_grants(
        &self,
        tags: &[(TokenId, [u8; 32])],
        marker: (&str, &[u8]),
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| async {
            secrets::put(&mut *conn, marker.0, marker.1).await?;
            secrets::bind_grants(conn, tags).await
        })
    }

    async fn bind_token_revocations(
        &self,
        tags: &[(TokenId, [u8; 32])],
        marker: (&str, &[u8]),
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| async {
            secrets::put(&mut *conn, marker.0, marker.1).await?;
            secrets::bind_revocations(conn, tags).await
        })
    }
}

#[async_trait]
impl LeaseStore for SqlStore {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<bool> {
        in_transaction!(self, |conn| secrets::try_lease(
            conn, name, holder, now, expires_at
        ))
    }
}
