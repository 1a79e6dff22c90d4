//! keys.policy and keys.grant: setting a key's policy and making, listing, revoking
//! and retiring its grants (AWS KMS's access controls; evaluated in `policy`). Each
//! change commits with its event and audit entry, and drops the cached key so this
//! replica applies it at once (other replicas within the key cache's time to live).

use super::policy::{KeyAccess, KeyPolicy};
use super::{Caller, Kms, KmsError, KmsResult};
use crate::audit::Actor;
use crate::event::Event;
use crate::ids::{KeyId, TenantId};
use crate::store::{Grant, Record, StoredPolicy};
use crate::token::Operation;

/// Most grants one key carries (AWS allows 50,000; Coffer keeps them with the key).
pub const MAX_GRANTS: usize = 100;

impl Kms {
    /// The policy and grants a key's cache entry carries (none without a policy).
    pub(super) async fn load_access(
        &self,
        tenant: TenantId,
        id: KeyId,
    ) -> KmsResult<Option<KeyAccess>> {
        let store = self.keys.store();
        let Some(stored) = store.key_policy(tenant, id).await? else {
            return Ok(None);
        };
        let policy = KeyPolicy::from_json(&stored.rules)
            .map_err(|e| KmsError::Internal(format!("stored key policy rules: {e}")))?;
        let grants = store.grants(tenant, Some(id)).await?;
        Ok(Some(KeyAccess { policy, grants }))
    }

    /// Sets a key's policy: `document` as given, `policy` its rules. Refused when the
    /// rules would not let the caller change the policy again (AWS's lockout check),
    /// unless `bypass_lockout_check`.
    pub async fn put_key_policy(
        &self,
        caller: &Caller,
        reference: &str,
        document: &str,
        policy: &KeyPolicy,
        bypass_lockout_check: bool,
    ) -> KmsResult<KeyId> {
        let actor = caller.actor("keys.policy.put");
        let result = async {
            let entry = self
                .key_for(caller, Operation::KeysManage, reference)
                .await?;
            let me = caller.token_id.to_string();
            let asked = super::policy::Asked::Aws("PutKeyPolicy");
            if !bypass_lockout_check && !policy.permits(&me, asked, &[]) {
                return Err(KmsError::Invalid(
                    "the policy would not let this caller change it again (lockout)".into(),
                ));
            }
            let rules = policy.to_json();
            let stored = StoredPolicy {
                document: document.to_owned(),
                rules,
            };
            let (tenant, id) = (entry.key.tenant, entry.key.id);
            let record = self.access_record(&actor, tenant, id, "key.policy", "set");
            let result = self
                .keys
                .store()
                .put_key_policy(tenant, id, &stored, &record)
                .await;
            self.forget_key(tenant, id);
            result?;
            Ok(id)
        }
        .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// A key's policy document, if one was set.
    pub async fn key_policy(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<(KeyId, Option<String>)> {
        let result = async {
            let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
            let (tenant, id) = (entry.key.tenant, entry.key.id);
            let stored = self.keys.store().key_policy(tenant, id).await?;
            Ok((id, stored.map(|s| s.document)))
        }
        .await;
        self.audited(caller, "keys.policy.get", Some(reference), result)
            .await
    }

    /// Makes a grant on a key for `grantee` (a token id of the tenant).
    pub async fn create_grant(
        &self,
        caller: &Caller,
        reference: &str,
        mut grant: Grant,
    ) -> KmsResult<Grant> {
        let actor = caller.actor("keys.grant.create");
        let result = async {
            let entry = self
                .key_for(caller, Operation::KeysManage, reference)
                .await?;
            let (tenant, id) = (entry.key.tenant, entry.key.id);
            if self.keys.store().grants(tenant, Some(id)).await?.len() >= MAX_GRANTS {
                return Err(KmsError::LimitReached(format!(
                    "a key carries at most {MAX_GRANTS} grants"
                )));
            }
            grant.tenant = tenant;
            grant.key = id;
            grant.created_at = self.keys.clock().now();
            let detail = format!(
                "{} to {}: {}",
                grant.id,
                grant.grantee,
                grant.operations.join(" ")
            );
            let record = self.access_record(&actor, tenant, id, "key.grant", &detail);
            let result = self.keys.store().create_grant(&grant, &record).await;
            self.forget_key(tenant, id);
            result?;
            Ok(grant)
        }
        .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// The grants of a key.
    pub async fn list_grants(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<(KeyId, Vec<Grant>)> {
        let result = async {
            let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
            let (tenant, id) = (entry.key.tenant, entry.key.id);
            Ok((id, self.keys.store().grants(tenant, Some(id)).await?))
        }
        .await;
        self.audited(caller, "keys.grant.list", Some(reference), result)
            .await
    }

    /// Revokes a grant of a key (the key's manager).
    pub async fn revoke_grant(
        &self,
        caller: &Caller,
        reference: &str,
        grant_id: &str,
    ) -> KmsResult<KeyId> {
        let actor = caller.actor("keys.grant.revoke");
        let result = async {
            let entry = self
                .key_for(caller, Operation::KeysManage, reference)
                .await?;
            self.delete_grant(&actor, entry.key.tenant, entry.key.id, grant_id, "revoked")
                .await
        }
        .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Retires a grant: by its retiring principal or its grantee (no other power over
    /// the key needed, as at AWS), or by a token that may manage the key.
    pub async fn retire_grant(&self, caller: &Caller, grant_id: &str) -> KmsResult<KeyId> {
        let actor = caller.actor("keys.grant.retire");
        let result = async {
            let tenant = Self::tenant_of(caller)?;
            let grant = self
                .keys
                .store()
                .grants(tenant, None)
                .await?
                .into_iter()
                .find(|g| g.id == grant_id)
                .ok_or(KmsError::NotFound("grant"))?;
            let me = caller.token_id.to_string();
            let named = grant.grantee == me || grant.retiring.as_deref() == Some(me.as_str());
            if !named {
                self.key_for(caller, Operation::KeysManage, &grant.key.to_string())
                    .await?;
            }
            self.delete_grant(&actor, tenant, grant.key, grant_id, "retired")
                .await
        }
        .await;
        self.settled(caller, &actor, None, result).await
    }

    /// The tenant's grants that `retiring` (a token id) may retire.
    pub async fn retirable_grants(&self, caller: &Caller, retiring: &str) -> KmsResult<Vec<Grant>> {
        if !caller.grants.allows_op(Operation::KeysRead) {
            return Err(KmsError::Forbidden(
                "the token does not allow this operation",
            ));
        }
        let tenant = Self::tenant_of(caller)?;
        let mut grants = self.keys.store().grants(tenant, None).await?;
        grants.retain(|g| g.retiring.as_deref() == Some(retiring));
        // Only keys within the token's scope.
        let mut visible = Vec::with_capacity(grants.len());
        for grant in grants {
            if self.entry_in_scope(caller, tenant, grant.key).await.is_ok() {
                visible.push(grant);
            }
        }
        Ok(visible)
    }

    async fn delete_grant(
        &self,
        actor: &Actor,
        tenant: TenantId,
        id: KeyId,
        grant_id: &str,
        how: &str,
    ) -> KmsResult<KeyId> {
        let record =
            self.access_record(actor, tenant, id, "key.grant", &format!("{grant_id} {how}"));
        let result = self
            .keys
            .store()
            .delete_grant(tenant, id, grant_id, &record)
            .await;
        self.forget_key(tenant, id);
        result.map_err(|e| match KmsError::from(e) {
            KmsError::NotFound(_) => KmsError::NotFound("grant"),
            other => other,
        })?;
        Ok(id)
    }

    fn access_record(
        &self,
        actor: &Actor,
        tenant: TenantId,
        id: KeyId,
        kind: &str,
        detail: &str,
    ) -> Record {
        let event = Event::key(tenant, id, None, kind, detail, self.keys.clock().now());
        Record::event(actor, event)
    }
}
