//! `[quotas]`: per-tenant limits on what a tenant may hold (keys, versions per key,
//! aliases, labels per key, unrevoked tokens), with overrides for single tenants under
//! `[quotas.tenants."<tenant id>"]`. The store enforces them (`coffer_core::quota`).

use std::collections::{BTreeMap, HashMap};

use coffer_core::TenantId;
use coffer_core::key::MAX_LABELS;
use coffer_core::quota::{Limits, Quotas};
use serde::Deserialize;

use super::{ConfigError, invalid};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    keys_per_tenant: Option<u64>,
    versions_per_key: Option<u64>,
    aliases_per_tenant: Option<u64>,
    labels_per_key: Option<u64>,
    tokens_per_tenant: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuotas {
    // The section's own keys (not a flattened `RawLimits`: serde cannot deny unknown
    // fields through `flatten`).
    keys_per_tenant: Option<u64>,
    versions_per_key: Option<u64>,
    aliases_per_tenant: Option<u64>,
    labels_per_key: Option<u64>,
    tokens_per_tenant: Option<u64>,
    #[serde(default)]
    tenants: BTreeMap<String, RawLimits>,
}

impl RawLimits {
    /// These limits, each missing one taken from `base`; `section` names the keys.
    fn over(self, base: Limits, section: &str) -> Result<Limits, ConfigError> {
        let pick = |name: &str, value: Option<u64>, base: u32, max: u32| match value {
            None => Ok(base),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| invalid(&format!("{section}.{name}"), format!("at most {max}"))),
        };
        Ok(Limits {
            keys_per_tenant: pick(
                "keys_per_tenant",
                self.keys_per_tenant,
                base.keys_per_tenant,
                u32::MAX,
            )?,
            versions_per_key: pick(
                "versions_per_key",
                self.versions_per_key,
                base.versions_per_key,
                u32::MAX,
            )?,
            aliases_per_tenant: pick(
                "aliases_per_tenant",
                self.aliases_per_tenant,
                base.aliases_per_tenant,
                u32::MAX,
            )?,
            // A key never holds more labels than the format allows, whatever the quota.
            labels_per_key: pick(
                "labels_per_key",
                self.labels_per_key,
                base.labels_per_key,
                MAX_LABELS as u32,
            )?,
            tokens_per_tenant: pick(
                "tokens_per_tenant",
                self.tokens_per_tenant,
                base.tokens_per_tenant,
                u32::MAX,
            )?,
        })
    }
}

impl RawQuotas {
    pub(super) fn validate(self) -> Result<Quotas, ConfigError> {
        let section = RawLimits {
            keys_per_tenant: self.keys_per_tenant,
            versions_per_key: self.versions_per_key,
            aliases_per_tenant: self.aliases_per_tenant,
            labels_per_key: self.labels_per_key,
            tokens_per_tenant: self.tokens_per_tenant,
        };
        let default = section.over(Limits::default(), "quotas")?;
        let mut tenants = HashMap::new();
        for (id, raw) in self.tenants {
            let section = format!("quotas.tenants.{id}");
            let tenant: TenantId = id
                .parse()
                .map_err(|_| invalid(&section, "expected a tenant id (a UUID)"))?;
            tenants.insert(tenant, raw.over(default, &section)?);
        }
        Ok(Quotas::new(default, tenants))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Quotas, ConfigError> {
        #[derive(Deserialize)]
        struct Wrapper {
            quotas: RawQuotas,
        }
        let wrapper: Wrapper =
            toml::from_str(text).map_err(|e| invalid("(file)", e.to_string()))?;
        wrapper.quotas.validate()
    }

    #[test]
    fn a_tenant_override_inherits_the_section_then_the_defaults() {
        let tenant = TenantId::generate();
        let quotas = parse(&format!(
            "[quotas]\nkeys_per_tenant = 5\naliases_per_tenant = 7\n\
             [quotas.tenants.\"{tenant}\"]\nkeys_per_tenant = 2\n"
        ))
        .unwrap();
        let other = TenantId::generate();
        assert_eq!(quotas.of(other).keys_per_tenant, 5);
        assert_eq!(quotas.of(tenant).keys_per_tenant, 2);
        assert_eq!(quotas.of(tenant).aliases_per_tenant, 7);
        assert_eq!(
            quotas.of(tenant).tokens_per_tenant,
            Limits::default().tokens_per_tenant
        );
    }

    #[test]
    fn bad_quotas_are_refused_with_their_key_named() {
        let err = parse("[quotas]\nlabels_per_key = 65\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`quotas.labels_per_key`"), "{err}");
        let err = parse("[quotas.tenants.acme]\nkeys_per_tenant = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`quotas.tenants.acme`"), "{err}");
        let err = parse("[quotas]\nkeys = 1\n").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
