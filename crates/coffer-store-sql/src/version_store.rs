//! The `VersionStore` half of [`SqlStore`]: versions listed, added and changed by
//! compare-and-set (state tags included), certificate chains, and the binding of rows
//! written before key states were sealed. The queries are in `versions`.
//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses (and whose expansion
//! names `audit`, `errors`, `Record` and `StoreError`, imported here for it).

use async_trait::async_trait;
use coffer_core::store::{Change, Record, StoreError, StoreResult, VersionStore};
use coffer_core::{KeyId, KeyVersion, TenantId, VersionNumber};

use crate::{SqlStore, audit, errors, secrets, versions};

#[async_trait]
impl VersionStore for SqlStore {
    async fn list_versions(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<KeyVersion>> {
        versions::list(&self.reader, tenant, key).await
    }

    async fn add_version(
        &self,
        tenant: TenantId,
        version: &KeyVersion,
        then: &[Change],
        record: &Record,
    ) -> StoreResult<()> {
        let limits = self.quotas.of(tenant);
        in_transaction!(self, audit = record, |conn| versions::add(
            conn, &limits, tenant, version, then, record
        ))
    }

    async fn apply(
        &self,
        tenant: TenantId,
        key: KeyId,
        changes: &[Change],
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| versions::apply(
            conn, tenant, key, changes, record
        ))
    }

    async fn set_cert_chain(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
        chain_pem: Option<&str>,
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| versions::set_cert_chain(
            conn, tenant, key, version, chain_pem, record
        ))
    }

    async fn get_cert_chain(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
    ) -> StoreResult<Option<String>> {
        versions::get_cert_chain(&self.reader, tenant, key, version).await
    }

    async fn bind_key_states(
        &self,
        tags: &[(
            KeyId,
            coffer_core::state_seal::SealedRow,
            coffer_core::state_seal::StateTag,
        )],
        marker: (&str, &[u8]),
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| async {
            secrets::put(&mut *conn, marker.0, marker.1).await?;
            versions::bind_states(conn, tags).await
        })
    }
}
