//! Per-tenant quotas: how many keys, versions per key, aliases, labels per key and live
//! tokens a tenant may hold, so that no token holder can grow the store without bound.
//!
//! The store enforces them, inside the transaction that would add the object: it takes
//! the tenant's row lock first (PostgreSQL; SQLite has one writer), counts, and refuses
//! with [`QuotaExceeded`] before writing anything. Two concurrent creations therefore
//! cannot both take the last slot, and a refused request changes nothing. The limits are
//! the store's configuration ([`Quotas`]), not an argument of each write: every write
//! path is covered by construction, including workers nobody called (scheduled
//! rotations stop at the version quota like any other).

use std::collections::HashMap;
use std::fmt;

use crate::ids::TenantId;
use crate::key::MAX_LABELS;

/// One quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// Keys of a tenant that are not destroyed.
    KeysPerTenant,
    /// Versions of one key (destroyed ones included: their rows remain).
    VersionsPerKey,
    /// Aliases of a tenant.
    AliasesPerTenant,
    /// Labels of one key.
    LabelsPerKey,
    /// Unrevoked tokens of a tenant (an expired token counts until it is revoked).
    TokensPerTenant,
}

impl Quota {
    /// The name in configuration, error messages and the audit record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeysPerTenant => "keys_per_tenant",
            Self::VersionsPerKey => "versions_per_key",
            Self::AliasesPerTenant => "aliases_per_tenant",
            Self::LabelsPerKey => "labels_per_key",
            Self::TokensPerTenant => "tokens_per_tenant",
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A write refused because it would take a tenant over one of its quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The quota.
    pub quota: Quota,
    /// Its limit for the tenant.
    pub limit: u32,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quota exceeded: {} is limited to {} for this tenant",
            self.quota, self.limit
        )
    }
}

/// One tenant's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Keys not destroyed.
    pub keys_per_tenant: u32,
    /// Versions of one key.
    pub versions_per_key: u32,
    /// Aliases.
    pub aliases_per_tenant: u32,
    /// Labels of one key (at most [`MAX_LABELS`], the format's own bound).
    pub labels_per_key: u32,
    /// Unrevoked tokens.
    pub tokens_per_tenant: u32,
}

impl Default for Limits {
    /// Generous for any real tenant (a key rotated hourly for a year stays under the
    /// version limit; keys as many as AWS KMS allows an account in a region by
    /// default); they stop runaway growth, not use.
    fn default() -> Self {
        Self {
            keys_per_tenant: 100_000,
            versions_per_key: 10_000,
            aliases_per_tenant: 10_000,
            labels_per_key: MAX_LABELS as u32,
            tokens_per_tenant: 10_000,
        }
    }
}

impl Limits {
    /// The limit of `quota`.
    pub fn limit(&self, quota: Quota) -> u32 {
        match quota {
            Quota::KeysPerTenant => self.keys_per_tenant,
            Quota::VersionsPerKey => self.versions_per_key,
            Quota::AliasesPerTenant => self.aliases_per_tenant,
            Quota::LabelsPerKey => self.labels_per_key,
            Quota::TokensPerTenant => self.tokens_per_tenant,
        }
    }

    /// `Ok` if holding `current` and adding `adding` stays within `quota`.
    pub fn admit(&self, quota: Quota, current: u64, adding: u64) -> Result<(), QuotaExceeded> {
        let limit = self.limit(quota);
        if current.saturating_add(adding) > u64::from(limit) {
            return Err(QuotaExceeded { quota, limit });
        }
        Ok(())
    }
}

/// The limits of every tenant: a default and overrides by tenant id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas {
    default: Limits,
    tenants: HashMap<TenantId, Limits>,
}

impl Quotas {
    /// `default` for every tenant, except those in `tenants`.
    pub fn new(default: Limits, tenants: HashMap<TenantId, Limits>) -> Self {
        Self { default, tenants }
    }

    /// The limits of every tenant without an override.
    pub fn default_limits(&self) -> &Limits {
        &self.default
    }

    /// The limits of `tenant`.
    pub fn of(&self, tenant: TenantId) -> &Limits {
        self.tenants.get(&tenant).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_slot_is_admitted_and_the_next_is_not() {
        let limits = Limits {
            keys_per_tenant: 3,
            ..Limits::default()
        };
        assert!(limits.admit(Quota::KeysPerTenant, 2, 1).is_ok());
        let refused = limits.admit(Quota::KeysPerTenant, 3, 1).unwrap_err();
        assert_eq!(
            refused,
            QuotaExceeded {
                quota: Quota::KeysPerTenant,
                limit: 3
            }
        );
        assert_eq!(
            refused.to_string(),
            "quota exceeded: keys_per_tenant is limited to 3 for this tenant"
        );
        // Several at once (a key created with aliases) count together.
        let aliases = Limits {
            aliases_per_tenant: 4,
            ..Limits::default()
        };
        assert!(aliases.admit(Quota::AliasesPerTenant, 2, 2).is_ok());
        assert!(aliases.admit(Quota::AliasesPerTenant, 2, 3).is_err());
    }

    #[test]
    fn a_tenant_override_replaces_the_default_for_that_tenant_only() {
        let (small, other) = (TenantId::generate(), TenantId::generate());
        let limits = Limits {
            tokens_per_tenant: 1,
            ..Limits::default()
        };
        let quotas = Quotas::new(Limits::default(), HashMap::from([(small, limits)]));
        assert_eq!(quotas.of(small).tokens_per_tenant, 1);
        assert_eq!(quotas.of(other), &Limits::default());
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        // docs/configuration.md, `quotas.*`.
        let limits = Limits::default();
        assert_eq!(limits.keys_per_tenant, 100_000);
        assert_eq!(limits.versions_per_key, 10_000);
        assert_eq!(limits.aliases_per_tenant, 10_000);
        assert_eq!(limits.labels_per_key, 64);
        assert_eq!(limits.tokens_per_tenant, 10_000);
    }
}
