//! Per-tenant PQ policy (seed 002 §6.4): the hybrid verify mode a tenant's
//! verifications use, overriding the server's `pq_verify_mode` at runtime, with no
//! restart. Set by an operator (`admin:tenants`), recorded with its audit entry
//! (`tenant.pq_policy`) in the store, held in memory here; other replicas follow at
//! their next token refresh (every 10 s).
//!
//! A hybrid signature that fails the tenant's mode (`and`, `pq_only`) but would pass
//! `or` is a PQ-policy rejection: still answered `valid: false`, and counted in
//! `kms_reject_total{reason="pq_policy"}` so the operator sees the policy, not a
//! forgery, at work (seed 002's `KMS_PQ_Policy_Rejects`).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use coffer_crypto::PqVerifyMode;

use super::trail::Subject;
use super::{Caller, Kms, KmsError, KmsResult};
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::store::Record;
use crate::tenant::Tenant;
use crate::token::Operation;

/// Where an effective setting comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingSource {
    /// The server's configuration (file, environment or built-in default).
    Server,
    /// The tenant's own override.
    Tenant,
}

impl SettingSource {
    /// `server` or `tenant`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Tenant => "tenant",
        }
    }
}

/// A tenant's effective PQ policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PqPolicy {
    /// How its hybrid signatures are accepted.
    pub verify_mode: PqVerifyMode,
    /// Where that comes from.
    pub source: SettingSource,
}

impl Subject for PqPolicy {
    fn subject(&self) -> (Option<KeyId>, Option<VersionNumber>) {
        (None, None)
    }
}

impl Subject for (Tenant, PqPolicy) {
    fn subject(&self) -> (Option<KeyId>, Option<VersionNumber>) {
        (None, None)
    }
}

/// The overrides in memory.
#[derive(Debug, Default)]
pub(crate) struct PqPolicies {
    verify_modes: RwLock<HashMap<TenantId, PqVerifyMode>>,
}

impl PqPolicies {
    fn get(&self, tenant: TenantId) -> Option<PqVerifyMode> {
        self.verify_modes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant)
            .copied()
    }

    fn set(&self, tenant: TenantId, mode: Option<PqVerifyMode>) {
        let mut modes = self
            .verify_modes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match mode {
            Some(mode) => modes.insert(tenant, mode),
            None => modes.remove(&tenant),
        };
    }

    fn replace(&self, all: HashMap<TenantId, PqVerifyMode>) {
        *self
            .verify_modes
            .write()
            .unwrap_or_else(PoisonError::into_inner) = all;
    }
}

impl Kms {
    /// The PQ policy `tenant`'s requests run under now. Memory only.
    pub fn pq_policy(&self, tenant: TenantId) -> PqPolicy {
        match self.pq_policies.get(tenant) {
            Some(verify_mode) => PqPolicy {
                verify_mode,
                source: SettingSource::Tenant,
            },
            None => PqPolicy {
                verify_mode: self.options.pq_verify_mode,
                source: SettingSource::Server,
            },
        }
    }

    /// A tenant and its effective PQ policy (`coffer tenant show`; `admin:tenants`).
    pub async fn show_tenant(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<(Tenant, PqPolicy)> {
        let result = match caller.grants.refuses_admin(Operation::AdminTenants) {
            Some(why) => Err(KmsError::Forbidden(why)),
            None => match self.find_tenant(reference).await {
                Ok(tenant) => {
                    let policy = self.pq_policy(tenant.id);
                    Ok((tenant, policy))
                }
                Err(error) => Err(error),
            },
        };
        self.audited(caller, "tenant.show", Some(reference), result)
            .await
    }

    /// Sets (`Some`) or clears (`None`: the server's default again) a tenant's PQ
    /// verify mode; in effect on this replica when this returns.
    pub async fn set_tenant_pq_verify_mode(
        &self,
        caller: &Caller,
        reference: &str,
        mode: Option<PqVerifyMode>,
    ) -> KmsResult<PqPolicy> {
        let actor = caller.actor("tenant.pq_policy");
        let result = async {
            if let Some(why) = caller.grants.refuses_admin(Operation::AdminTenants) {
                return Err(KmsError::Forbidden(why));
            }
            let tenant = self.find_tenant(reference).await?;
            let detail = format!(
                "pq_verify_mode={}",
                mode.map_or("server default", PqVerifyMode::as_str)
            );
            let entry = actor.entry(
                Some(tenant.id),
                (None, None),
                self.keys.clock().now(),
                Some(detail),
            );
            self.keys
                .store()
                .set_tenant_pq_verify_mode(
                    tenant.id,
                    mode.map(PqVerifyMode::as_str),
                    &Record::audit(entry),
                )
                .await?;
            self.pq_policies.set(tenant.id, mode);
            // Verdicts were cached under the old mode's name; they stay correct, but
            // nothing depends on that: drop them.
            self.cache.verdicts.invalidate_all();
            Ok(self.pq_policy(tenant.id))
        }
        .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Reads every override from the store (at start and with each token refresh, so
    /// another replica's change is followed).
    pub(super) async fn refresh_pq_policies(&self) -> KmsResult<()> {
        let mut all = HashMap::new();
        for (tenant, mode) in self.keys.store().tenant_pq_verify_modes().await? {
            let mode = mode
                .parse()
                .map_err(|_| KmsError::Internal(format!("stored pq_verify_mode {mode:?}")))?;
            all.insert(tenant, mode);
        }
        self.pq_policies.replace(all);
        Ok(())
    }
}
