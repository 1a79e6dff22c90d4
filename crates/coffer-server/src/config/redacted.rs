//! What of the configuration may be shown, in one place: `Debug` for [`Config`] by hand,
//! and each key's value for `coffer config get` and the operations port's `/config`.
//! `database_url` and `audit.anchor_url` may carry a password, shown as `***`; secret
//! files (unseal key, passphrase, PIN, AWS keys) are shown by name, never read here.

use std::path::Path;

use super::{ClientAuth, Config, ConfigError, CustodyConfig, Failover, LogFormat, invalid};

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_addr", &self.api_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redacted_url(&self.database_url))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("cache_ttl", &self.cache_ttl)
            .field("pq", &self.pq)
            .field("log_format", &self.log_format)
            .field("custody", &self.custody)
            .field("audit", &self.audit)
            .field("limits", &self.limits)
            .field("envelope", &self.envelope)
            .field("quotas", &self.quotas)
            .field("aws", &self.aws)
            .field("rotation", &self.rotation)
            .field("unseal", &self.unseal)
            .field("transport", &self.transport)
            .field("tls", &self.tls)
            .field("attestation", &self.attestation)
            .field("backup", &self.backup)
            .field("grpc", &self.grpc)
            .finish()
    }
}

/// `scheme://user:***@host/…`: the URL without its password.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn duration(d: std::time::Duration) -> String {
    coffer_core::HumanDuration::new(d).to_string()
}

/// The value of `key` in `config` as it may be shown (secrets redacted): `None` when
/// the key does not apply to this configuration.
pub(super) fn shown_value(config: &Config, key: &str) -> Result<Option<String>, ConfigError> {
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
        "pq_verify_mode" => Some(config.pq.verify_mode.as_str().to_owned()),
        "pq_produce_hybrid" => Some(config.pq.signing.as_str().to_owned()),
        "pq_rollout_percent" => Some(config.pq.rollout.to_string()),
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
        | "attestation.nitro_root_file" => config.origin.given(key),
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
