//! Per-tenant PQ policy (seed 002 §2 and §6.4): the hybrid verify mode a tenant's
//! verifications use, whether its hybrid keys sign with the composite, and the share of
//! its keys that do, each overriding the server's setting at runtime, with no restart.
//! Set by an operator (`admin:tenants`), recorded with its audit entry
//! (`tenant.pq_policy`) in the store, held in memory here; other replicas follow at
//! their next token refresh (every 10 s). What the settings mean: [`crate::pq`].
//!
//! PQ-policy rejections, counted in `kms_reject_total{reason="pq_policy"}` so the
//! operator sees the policy, not a forgery, at work (seed 002's `KMS_PQ_Policy_Rejects`):
//! - a hybrid key's signature that fails the tenant's mode (`and`, `pq_only`) but would
//!   pass `or`: a classical-half signature, or a composite whose ML-DSA half fails. Still
//!   answered `valid: false`.
//! - a sign request naming the form (composite or classical half) the policy does not
//!   have that key produce now: refused with `400 invalid_request`, nothing signed.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use coffer_crypto::{KeySpec, PqVerifyMode, SignatureAlgorithm};

use super::trail::Subject;
use super::{Caller, Kms, KmsError, KmsResult};
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::key::Key;
use crate::pq::{HybridSigning, PqChange, PqOverrides, RolloutPercent};
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

/// One effective setting and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value in force.
    pub value: T,
    /// Whose it is.
    pub source: SettingSource,
}

impl<T> Setting<T> {
    /// The tenant's override if it has one, else the server's default.
    fn of(overridden: Option<T>, default: T) -> Self {
        match overridden {
            Some(value) => Self {
                value,
                source: SettingSource::Tenant,
            },
            None => Self {
                value: default,
                source: SettingSource::Server,
            },
        }
    }
}

/// A tenant's effective PQ policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PqPolicy {
    /// How its hybrid signatures are accepted (`pq_verify_mode`).
    pub verify_mode: Setting<PqVerifyMode>,
    /// Whether its hybrid keys in the rollout sign with the composite
    /// (`pq_produce_hybrid`).
    pub signing: Setting<HybridSigning>,
    /// The share of its hybrid keys in the rollout (`pq_rollout_percent`).
    pub rollout: Setting<RolloutPercent>,
}

impl PqPolicy {
    /// What `key`, a hybrid key of `tenant`, signs with under this policy: the
    /// composite when the policy produces it and the key's bucket is in the rollout,
    /// else the classical half.
    pub fn signing_for(&self, tenant: TenantId, key: KeyId) -> HybridSigning {
        match self.signing.value {
            HybridSigning::Composite if self.rollout.value.includes(tenant, key) => {
                HybridSigning::Composite
            }
            _ => HybridSigning::ClassicalHalf,
        }
    }
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
    overrides: RwLock<HashMap<TenantId, PqOverrides>>,
}

impl PqPolicies {
    fn get(&self, tenant: TenantId) -> PqOverrides {
        self.overrides
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&tenant)
            .copied()
            .unwrap_or_default()
    }

    fn set(&self, tenant: TenantId, overrides: PqOverrides) {
        let mut all = self
            .overrides
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if overrides.is_empty() {
            all.remove(&tenant);
        } else {
            all.insert(tenant, overrides);
        }
    }

    fn replace(&self, all: HashMap<TenantId, PqOverrides>) {
        *self
            .overrides
            .write()
            .unwrap_or_else(PoisonError::into_inner) = all;
    }
}

/// The two forms a hybrid key's signature takes.
const HYBRID_FORMS: [SignatureAlgorithm; 2] = [
    SignatureAlgorithm::MlDsa65Ed25519,
    SignatureAlgorithm::Ed25519,
];

impl Kms {
    /// The PQ policy `tenant`'s requests run under now. Memory only.
    pub fn pq_policy(&self, tenant: TenantId) -> PqPolicy {
        let overrides = self.pq_policies.get(tenant);
        let defaults = self.options.pq;
        PqPolicy {
            verify_mode: Setting::of(overrides.verify_mode, defaults.verify_mode),
            signing: Setting::of(overrides.signing, defaults.signing),
            rollout: Setting::of(overrides.rollout, defaults.rollout),
        }
    }

    /// The algorithm `key` (a hybrid key) signs with now: the composite or its
    /// classical half (`ed25519`), as its tenant's policy has it. A request naming only
    /// the other form is refused by the policy (counted as `pq_policy`); one naming
    /// neither is refused as for any key.
    pub(super) fn hybrid_signing_algorithm(
        &self,
        key: &Key,
        among: &[SignatureAlgorithm],
    ) -> KmsResult<SignatureAlgorithm> {
        let algorithm = match self.pq_policy(key.tenant).signing_for(key.tenant, key.id) {
            HybridSigning::Composite => SignatureAlgorithm::MlDsa65Ed25519,
            HybridSigning::ClassicalHalf => SignatureAlgorithm::Ed25519,
        };
        if among.is_empty() || among.contains(&algorithm) {
            return Ok(algorithm);
        }
        if !among.iter().any(|a| HYBRID_FORMS.contains(a)) {
            return Ok(SignatureAlgorithm::choose_among(key.spec, among)?);
        }
        super::count_reject("pq_policy");
        Err(KmsError::Invalid(format!(
            "the tenant's PQ policy (pq_produce_hybrid, pq_rollout_percent) has this key \
             sign as {algorithm} now"
        )))
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

    /// Changes a tenant's PQ overrides (each kept, cleared back to the server's
    /// default, or set); in effect on this replica when this returns. The change is one
    /// store transaction with its audit entry, applied to the stored overrides there,
    /// so concurrent changes to different settings both hold.
    pub async fn change_tenant_pq_policy(
        &self,
        caller: &Caller,
        reference: &str,
        change: PqChange,
    ) -> KmsResult<PqPolicy> {
        let actor = caller.actor("tenant.pq_policy");
        let result = async {
            if let Some(why) = caller.grants.refuses_admin(Operation::AdminTenants) {
                return Err(KmsError::Forbidden(why));
            }
            if change.is_empty() {
                return Err(KmsError::Invalid(
                    "name at least one of pq_verify_mode, pq_produce_hybrid, pq_rollout_percent"
                        .into(),
                ));
            }
            let tenant = self.find_tenant(reference).await?;
            let entry = actor.entry(
                Some(tenant.id),
                (None, None),
                self.keys.clock().now(),
                Some(change.describe()),
            );
            let overrides = self
                .keys
                .store()
                .change_tenant_pq_policy(tenant.id, &change, &Record::audit(entry))
                .await?;
            self.pq_policies.set(tenant.id, overrides);
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
        let all = self.keys.store().tenant_pq_policies().await?;
        self.pq_policies.replace(all.into_iter().collect());
        Ok(())
    }
}

/// The form a hybrid key's signature is checked as: the one `among` names first, or
/// (nothing named) the one its length says: 64 bytes is the classical half, anything
/// else the composite. `None` when `among` names neither.
pub(super) fn hybrid_verify_algorithm(
    among: &[SignatureAlgorithm],
    signature: &[u8],
) -> Option<SignatureAlgorithm> {
    if among.is_empty() {
        return Some(if signature.len() == 64 {
            SignatureAlgorithm::Ed25519
        } else {
            SignatureAlgorithm::MlDsa65Ed25519
        });
    }
    among.iter().copied().find(|a| HYBRID_FORMS.contains(a))
}

/// Whether `spec` is the hybrid spec, whose signing form the PQ policy decides.
pub(super) fn is_hybrid(spec: KeySpec) -> bool {
    spec == KeySpec::HybridEd25519MlDsa65
}
