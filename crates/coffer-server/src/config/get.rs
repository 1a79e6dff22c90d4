//! `coffer config get KEY`: the value a server started with this configuration uses
//! for one key, and where it comes from (seed 002 §6.1, "config get").

use std::path::Path;

use super::{
    ClientAuth, Config, ConfigError, CustodyConfig, Failover, KEYS, LogFormat, env_name, invalid,
    redacted_url,
};

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Neither the file nor the environment sets it.
    Default,
    /// The configuration file.
    File,
    /// A `COFFER_…` variable (it wins over the file).
    Env,
}

impl Source {
    /// `default`, `file` or `env`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::File => "file",
            Self::Env => "env",
        }
    }
}

/// `key`'s effective value (`None`: the key does not apply to this configuration, such
/// as a PKCS#11 key under key-file custody) and its source, for `file` and `env` as
/// [`Config::load_with`] reads them. The whole configuration must load. A database URL
/// is shown without its password.
pub fn effective(
    key: &str,
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String> + Copy,
) -> Result<(Option<String>, Source), ConfigError> {
    if !KEYS.contains(&key) {
        return Err(invalid(key, "unknown config key"));
    }
    let config = Config::load_with(file, env)?;
    let source = if env(&env_name(key)).is_some() {
        Source::Env
    } else if in_file(key, file)? {
        Source::File
    } else {
        Source::Default
    };
    Ok((value_of(&config, key, file, env)?, source))
}

fn file_table(file: Option<&Path>) -> Result<toml::Table, ConfigError> {
    let Some(path) = file else {
        return Ok(toml::Table::new());
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    text.parse()
        .map_err(|e: toml::de::Error| invalid("(file)", e.message().to_owned()))
}

fn in_file(key: &str, file: Option<&Path>) -> Result<bool, ConfigError> {
    let table = file_table(file)?;
    Ok(match key.split_once('.') {
        Some((section, field)) => table
            .get(section)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key(field)),
        None => table.contains_key(key),
    })
}

/// `key` as the environment or the file gives it (for keys whose value the validated
/// configuration does not keep).
fn raw_given(
    key: &str,
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    if let Some(value) = env(&env_name(key)) {
        return Ok(Some(value));
    }
    let table = file_table(file)?;
    let Some((section, field)) = key.split_once('.') else {
        return Ok(None);
    };
    Ok(table
        .get(section)
        .and_then(|s| s.get(field))
        .and_then(toml::Value::as_str)
        .map(str::to_owned))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn duration(d: std::time::Duration) -> String {
    coffer_core::HumanDuration::new(d).to_string()
}

/// The value of `key` in `config`.
fn value_of(
    config: &Config,
    key: &str,
    file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let pkcs11 = match &config.custody {
        CustodyConfig::Pkcs11(settings) => Some(settings),
        _ => None,
    };
    let tls = config.tls.as_ref();
    let quota = config.quotas.default_limits();
    let caps = config.envelope.max_inflight;
    let value = match key {
        "api_addr" => Some(config.api_addr.to_string()),
        "metrics_addr" => Some(config.metrics_addr.to_string()),
        "data_dir" => Some(path(&config.data_dir)),
        "database_url" => Some(redacted_url(&config.database_url)),
        "max_body_bytes" => Some(config.max_body_bytes.to_string()),
        "cache_ttl" => Some(duration(config.cache_ttl)),
        "pq_verify_mode" => Some(config.pq_verify_mode.as_str().to_owned()),
        "log_format" => Some(match config.log_format {
            LogFormat::Text => "text".to_owned(),
            LogFormat::Json => "json".to_owned(),
        }),
        "max_inflight_sign" => Some(caps[0].to_string()),
        "max_inflight_verify" => Some(caps[1].to_string()),
        "max_inflight_wrap" => Some(caps[2].to_string()),
        "max_inflight_admin" => Some(caps[3].to_string()),
        "tenant_share_min" => Some(config.envelope.tenant_share_min.to_string()),
        "verify_cache_max" => Some(config.envelope.verify_cache.max_entries.to_string()),
        "verify_cache_ttl_ms" => Some(config.envelope.verify_cache.ttl.as_millis().to_string()),
        "custody.method" => Some(
            match config.custody {
                CustodyConfig::KeyFile { .. } => "key-file",
                CustodyConfig::Passphrase { .. } => "passphrase",
                CustodyConfig::Shamir { .. } => "shamir",
                CustodyConfig::Pkcs11(_) => "pkcs11",
            }
            .to_owned(),
        ),
        "custody.state_file" => match &config.custody {
            CustodyConfig::KeyFile { state_file, .. }
            | CustodyConfig::Passphrase { state_file, .. }
            | CustodyConfig::Shamir { state_file } => Some(path(state_file)),
            CustodyConfig::Pkcs11(_) => None,
        },
        "custody.key_file" => match &config.custody {
            CustodyConfig::KeyFile { key_file, .. } => Some(path(key_file)),
            _ => None,
        },
        "custody.passphrase_file" => match &config.custody {
            CustodyConfig::Passphrase {
                passphrase_file, ..
            } => passphrase_file.as_deref().map(path),
            _ => None,
        },
        "custody.module" => pkcs11.map(|s| path(&s.module)),
        "custody.token_label" => pkcs11.and_then(|s| match &s.token {
            coffer_custody_pkcs11::TokenSelector::Label(label) => Some(label.clone()),
            coffer_custody_pkcs11::TokenSelector::Slot(_) => None,
        }),
        "custody.slot" => pkcs11.and_then(|s| match &s.token {
            coffer_custody_pkcs11::TokenSelector::Slot(slot) => Some(slot.to_string()),
            coffer_custody_pkcs11::TokenSelector::Label(_) => None,
        }),
        "custody.pin_file" => pkcs11.and_then(|s| s.pin_file.as_deref().map(path)),
        "custody.key_label" => pkcs11.map(|s| s.key_label.clone()),
        "custody.pool_size" => pkcs11.map(|s| s.pool_size.to_string()),
        "custody.failover" => pkcs11.map(|s| {
            match s.failover {
                Failover::None => "none",
                Failover::VerifyOnly => "verify-only",
            }
            .to_owned()
        }),
        "audit.enabled" => Some(config.audit.enabled.to_string()),
        "audit.origin" => Some(config.audit.origin.clone()),
        "audit.anchor_dir" => config.audit.anchor_dir.as_deref().map(path),
        "audit.anchor_url" => config.audit.anchor_url.as_deref().map(redacted_url),
        "audit.checkpoint_interval" => Some(duration(config.audit.checkpoint_interval)),
        "audit.verify_interval" => Some(duration(config.audit.verify_interval)),
        "limits.heavy_queue" => Some(config.limits.heavy_queue.to_string()),
        // The server keeps what these files hold, not their names: read as given.
        "aws.static_keys_file"
        | "attestation.authority_public_key_file"
        | "attestation.nitro_root_file" => raw_given(key, file, env)?,
        "attestation.max_age" => Some(duration(config.attestation.max_age)),
        "rotation.untracked_window" => Some(duration(config.rotation.untracked_window)),
        "rotation.retire_after_quiet" => Some(duration(config.rotation.retire_after_quiet)),
        "rotation.rewrap_rate" => config.rotation.rewrap.rate.map(|r| r.to_string()),
        "rotation.rewrap_window" => config.rotation.rewrap.window.map(|w| w.to_string()),
        "unseal.token_file" => config.unseal.token_file.as_deref().map(path),
        "unseal.backoff_base" => Some(duration(config.unseal.backoff_base)),
        "unseal.backoff_max" => Some(duration(config.unseal.backoff_max)),
        "transport.header_timeout" => Some(duration(config.transport.header_timeout)),
        "transport.body_timeout" => Some(duration(config.transport.body_timeout)),
        "transport.idle_timeout" => Some(duration(config.transport.idle_timeout)),
        "transport.max_connections" => Some(config.transport.max_connections.to_string()),
        "transport.ops_max_connections" => Some(config.transport.ops_max_connections.to_string()),
        "audit.refusals_per_principal" => Some(config.audit.refusals.per_principal.to_string()),
        "audit.refusal_window" => Some(duration(config.audit.refusals.window)),
        "quotas.keys_per_tenant" => Some(quota.keys_per_tenant.to_string()),
        "quotas.versions_per_key" => Some(quota.versions_per_key.to_string()),
        "quotas.aliases_per_tenant" => Some(quota.aliases_per_tenant.to_string()),
        "quotas.labels_per_key" => Some(quota.labels_per_key.to_string()),
        "quotas.tokens_per_tenant" => Some(quota.tokens_per_tenant.to_string()),
        "backup.dir" => config.backup.dir.as_deref().map(path),
        "backup.interval" => Some(duration(config.backup.interval)),
        "backup.keep" => Some(config.backup.keep.to_string()),
        "grpc.addr" => config.grpc.addr.map(|a| a.to_string()),
        "tls.cert_file" => tls.map(|t| path(&t.cert_file)),
        "tls.key_file" => tls.map(|t| path(&t.key_file)),
        "tls.client_ca_file" => tls.and_then(|t| t.client_ca_file.as_deref().map(path)),
        "tls.client_auth" => tls.map(|t| {
            match t.client_auth {
                ClientAuth::None => "none",
                ClientAuth::Optional => "optional",
                ClientAuth::Required => "required",
            }
            .to_owned()
        }),
        _ => return Err(invalid(key, "unknown config key")),
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_value_rule_and_sources_are_told_apart() {
        let dir = std::env::temp_dir().join(format!("coffer-get-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("coffer.toml");
        std::fs::write(
            &file,
            "max_inflight_sign = 100\ncache_ttl = \"1m\"\ndatabase_url = \"postgres://u:pw@h/db\"\n",
        )
        .unwrap();
        let env = |name: &str| (name == "COFFER_CACHE_TTL").then(|| "2m".to_owned());
        for key in KEYS {
            effective(key, Some(&file), env).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        let get = |key| effective(key, Some(&file), env).unwrap();
        assert_eq!(get("max_inflight_sign"), (Some("100".into()), Source::File));
        assert_eq!(get("cache_ttl"), (Some("2m".into()), Source::Env));
        assert_eq!(
            get("max_inflight_verify"),
            (Some("1024".into()), Source::Default)
        );
        assert_eq!(
            get("database_url"),
            (Some("postgres://u:***@h/db".into()), Source::File)
        );
        assert_eq!(get("custody.module"), (None, Source::Default));
        let err = effective("max_inflight_sing", Some(&file), env).unwrap_err();
        assert!(err.to_string().contains("`max_inflight_sing`"), "{err}");
    }
}
