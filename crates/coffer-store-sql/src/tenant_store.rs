//! The tenant half of the store: tenants, their wrapped keys (KEKs), shredding, and
//! their post-quantum policy overrides.
//!
//! Declared after `in_transaction!` in `lib.rs`, which it uses (and whose expansion
//! names `audit`, `errors` and `StoreError`, imported here for it).

use async_trait::async_trait;
use coffer_core::store::{Record, StoreError, StoreResult, TenantStore};
use coffer_core::{Tenant, TenantId};

use crate::{SqlStore, audit, errors, tenant_pq, tenants};

#[async_trait]
impl TenantStore for SqlStore {
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        wrapped_kek: &[u8],
        record: &Record,
    ) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| tenants::create(
            conn,
            tenant,
            wrapped_kek,
            record
        ))
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
        in_transaction!(self, |conn| tenants::replace_kek(conn, id, expected, new))
    }

    async fn shred_tenant(&self, id: TenantId, record: &Record) -> StoreResult<()> {
        in_transaction!(self, audit = record, |conn| tenants::shred(
            conn, id, record
        ))
    }

    async fn change_tenant_pq_policy(
        &self,
        id: TenantId,
        change: &coffer_core::pq::PqChange,
        record: &Record,
    ) -> StoreResult<coffer_core::pq::PqOverrides> {
        in_transaction!(self, audit = record, |conn| tenant_pq::change(
            conn, id, change, record
        ))
    }

    async fn tenant_pq_policies(
        &self,
    ) -> StoreResult<Vec<(TenantId, coffer_core::pq::PqOverrides)>> {
        tenant_pq::all(&self.reader).await
    }
}
