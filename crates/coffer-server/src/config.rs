//! Configuration: one TOML file, every key overridable by a `COFFER_…` environment
//! variable, validated into real types at start with the bad key named.
//!
//! Environment names: the key in upper case with `COFFER_` in front; nested keys join
//! with `_` (`custody.method` → `COFFER_CUSTODY_METHOD`). Seed 002's `KMS_API_ADDR`
//! becomes `COFFER_API_ADDR`.

mod attestation;
mod aws;
mod backup;
mod check;
mod custody;
mod envelope;
mod get;
mod grpc;
mod limits;
mod quotas;
mod redacted;
mod rotation;
mod transport;
mod unseal;

pub use aws::{AwsConfig, StaticKey};
pub use backup::BackupConfig;
pub use check::unknown_keys;
pub use custody::{CustodyConfig, Failover, Pkcs11Settings};
pub use envelope::EnvelopeConfig;
pub use get::{Source, effective};
pub use grpc::GrpcConfig;
pub use limits::LimitsConfig;
pub use rotation::RotationConfig;
pub use transport::{ClientAuth, TlsConfig, TransportConfig, default_max_connections};
pub use unseal::UnsealConfig;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_core::HumanDuration;
use coffer_crypto::PqVerifyMode;
use serde::Deserialize;
use thiserror::Error;

/// A configuration problem, naming the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key has a bad value, or is unknown.
    #[error("invalid config key `{key}`: {reason}")]
    Invalid {
        /// The key (dotted), or the environment variable.
        key: String,
        /// Why.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// The floor of timeouts and back-offs: below a second they are a misconfiguration.
pub(super) const AT_LEAST_1S: (Duration, &str) = (Duration::from_secs(1), "must be at least 1s");

/// A duration setting: `default` when absent, refused with `reason` below `min`.
pub(super) fn duration(
    key: &str,
    text: Option<String>,
    default: Duration,
    (min, reason): (Duration, &str),
) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let value = text
        .parse::<HumanDuration>()
        .map_err(|e| invalid(key, e.to_string()))?
        .get();
    if value < min {
        return Err(invalid(key, reason));
    }
    Ok(value)
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Native API listen address (default `127.0.0.1:9446`).
    pub api_addr: SocketAddr,
    /// Operations listen address: health, readiness, metrics (default `127.0.0.1:9909`).
    pub metrics_addr: SocketAddr,
    /// Where the embedded database and custody state live.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (default: SQLite in `data_dir`).
    pub database_url: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Key cache lifetime (bounds staleness across replicas).
    pub cache_ttl: Duration,
    /// Hybrid signature acceptance.
    pub pq_verify_mode: PqVerifyMode,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Custody.
    pub custody: CustodyConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// How much heavy work is accepted.
    pub limits: LimitsConfig,
    /// In-flight caps per operation class and each tenant's guaranteed share.
    pub envelope: EnvelopeConfig,
    /// What each tenant may hold (`[quotas]`).
    pub quotas: coffer_core::quota::Quotas,
    /// The AWS front's registered access keys.
    pub aws: AwsConfig,
    /// How safely rotations retire old versions, and how their rewrap is paced.
    pub rotation: RotationConfig,
    /// Who may unseal, and the back-off on wrong passphrases.
    pub unseal: UnsealConfig,
    /// Connection timeouts and caps.
    pub transport: TransportConfig,
    /// TLS on both ports (absent: plain HTTP).
    pub tls: Option<TlsConfig>,
    /// The attestation documents trusted (`[attestation]`).
    pub attestation: coffer_attest::AttestationOptions,
    /// Scheduled backups.
    pub backup: BackupConfig,
    /// The gRPC front's port (off by default).
    pub grpc: GrpcConfig,
}

/// The audit log's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Record every operation (default). `false` exists only to measure the log's cost.
    pub enabled: bool,
    /// The log's name in its checkpoints.
    pub origin: String,
    /// A directory outside Coffer's own storage where every checkpoint is also written.
    pub anchor_dir: Option<PathBuf>,
    /// An HTTP(S) endpoint every checkpoint is also POSTed to (`text/plain`).
    pub anchor_url: Option<String>,
    /// How often a checkpoint is signed (when the log grew).
    pub checkpoint_interval: Duration,
    /// How often the stored log is re-verified.
    pub verify_interval: Duration,
    /// Refusals audited one by one per principal and window; the rest are counted.
    pub refusals: coffer_core::kms::RefusalLimit,
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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    api_addr: Option<String>,
    metrics_addr: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    max_body_bytes: Option<u64>,
    cache_ttl: Option<String>,
    pq_verify_mode: Option<String>,
    log_format: Option<String>,
    max_inflight_sign: Option<u64>,
    max_inflight_verify: Option<u64>,
    max_inflight_wrap: Option<u64>,
    max_inflight_admin: Option<u64>,
    tenant_share_min: Option<f64>,
    verify_cache_max: Option<u64>,
    verify_cache_ttl_ms: Option<u64>,
    #[serde(default)]
    custody: custody::RawCustody,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    limits: limits::RawLimits,
    #[serde(default)]
    quotas: quotas::RawQuotas,
    #[serde(default)]
    aws: aws::RawAws,
    #[serde(default)]
    rotation: rotation::RawRotation,
    #[serde(default)]
    unseal: unseal::RawUnseal,
    #[serde(default)]
    transport: transport::RawTransport,
    #[serde(default)]
    tls: transport::RawTls,
    #[serde(default)]
    attestation: attestation::RawAttestation,
    #[serde(default)]
    backup: backup::RawBackup,
    #[serde(default)]
    grpc: grpc::RawGrpc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    enabled: Option<bool>,
    origin: Option<String>,
    anchor_dir: Option<PathBuf>,
    anchor_url: Option<String>,
    checkpoint_interval: Option<String>,
    verify_interval: Option<String>,
    refusals_per_principal: Option<u64>,
    refusal_window: Option<String>,
}

/// Every key an environment variable may override, dotted.
const KEYS: &[&str] = &[
    "api_addr",
    "metrics_addr",
    "data_dir",
    "database_url",
    "max_body_bytes",
    "cache_ttl",
    "pq_verify_mode",
    "log_format",
    "max_inflight_sign",
    "max_inflight_verify",
    "max_inflight_wrap",
    "max_inflight_admin",
    "tenant_share_min",
    "verify_cache_max",
    "verify_cache_ttl_ms",
    "custody.method",
    "custody.state_file",
    "custody.key_file",
    "custody.passphrase_file",
    "custody.module",
    "custody.token_label",
    "custody.slot",
    "custody.pin_file",
    "custody.key_label",
    "custody.pool_size",
    "custody.failover",
    "audit.enabled",
    "audit.origin",
    "audit.anchor_dir",
    "audit.anchor_url",
    "audit.checkpoint_interval",
    "audit.verify_interval",
    "audit.refusals_per_principal",
    "audit.refusal_window",
    "limits.heavy_queue",
    "quotas.keys_per_tenant",
    "quotas.versions_per_key",
    "quotas.aliases_per_tenant",
    "quotas.labels_per_key",
    "quotas.tokens_per_tenant",
    "aws.static_keys_file",
    "rotation.untracked_window",
    "rotation.retire_after_quiet",
    "rotation.rewrap_rate",
    "rotation.rewrap_window",
    "unseal.token_file",
    "unseal.backoff_base",
    "unseal.backoff_max",
    "transport.header_timeout",
    "transport.body_timeout",
    "transport.idle_timeout",
    "transport.max_connections",
    "transport.ops_max_connections",
    "tls.cert_file",
    "tls.key_file",
    "tls.client_ca_file",
    "tls.client_auth",
    "attestation.authority_public_key_file",
    "attestation.nitro_root_file",
    "attestation.max_age",
    "backup.dir",
    "backup.interval",
    "backup.keep",
    "grpc.addr",
];

fn env_name(key: &str) -> String {
    format!("COFFER_{}", key.replace('.', "_").to_uppercase())
}

impl Config {
    /// Loads `file` (if any), applies `COFFER_…` overrides from the process
    /// environment, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, |name| std::env::var(name).ok())
    }

    /// As [`Config::load`] with an explicit environment (tests).
    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| invalid("(file)", e.message().to_owned()))?
            }
            None => toml::Table::new(),
        };
        for key in KEYS {
            if let Some(value) = env(&env_name(key)) {
                set(&mut table, key, value);
            }
        }
        let raw: RawConfig = table.try_into().map_err(|e: toml::de::Error| {
            let message = e.message().to_owned();
            // serde names the unknown field in its message.
            invalid("(file)", message)
        })?;
        validate(raw)
    }
}

/// Sets dotted `key` to `value`, typed like the key expects (numbers for byte counts).
fn set(table: &mut toml::Table, key: &str, value: String) {
    let typed = match key {
        "max_body_bytes"
        | "limits.heavy_queue"
        | "audit.refusals_per_principal"
        | "quotas.keys_per_tenant"
        | "quotas.versions_per_key"
        | "quotas.aliases_per_tenant"
        | "quotas.labels_per_key"
        | "quotas.tokens_per_tenant"
        | "rotation.rewrap_rate"
        | "custody.pool_size"
        | "custody.slot"
        | "transport.max_connections"
        | "transport.ops_max_connections"
        | "backup.keep" => value
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or(toml::Value::String(value)),
        key if envelope::INTEGER_KEYS.contains(&key) => value
            .parse::<i64>()
            .map(toml::Value::Integer)
            .unwrap_or(toml::Value::String(value)),
        "tenant_share_min" => value
            .parse::<f64>()
            .map(toml::Value::Float)
            .unwrap_or(toml::Value::String(value)),
        "audit.enabled" => value
            .parse::<bool>()
            .map(toml::Value::Boolean)
            .unwrap_or(toml::Value::String(value)),
        _ => toml::Value::String(value),
    };
    match key.split_once('.') {
        Some((section, field)) => {
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                inner.insert(field.to_owned(), typed);
            }
        }
        None => {
            table.insert(key.to_owned(), typed);
        }
    }
}

/// This process's soft limit on open descriptors (the API port's default cap follows it).
fn descriptor_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65_536)
}

fn addr(key: &str, value: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
    value
        .as_deref()
        .unwrap_or(default)
        .parse()
        .map_err(|_| invalid(key, "expected host:port, e.g. 127.0.0.1:9446"))
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("coffer-data"));
    let database_url = match raw.database_url {
        Some(url)
            if url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:") =>
        {
            url
        }
        Some(_) => {
            return Err(invalid(
                "database_url",
                "must start with sqlite: or postgres:",
            ));
        }
        None => format!("sqlite://{}?mode=rwc", data_dir.join("coffer.db").display()),
    };
    let max_body_bytes = raw.max_body_bytes.unwrap_or(64 * 1024);
    if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid(
            "max_body_bytes",
            "must be between 1024 and 16777216",
        ));
    }
    let cache_ttl = match raw.cache_ttl {
        Some(text) => text
            .parse::<HumanDuration>()
            .map_err(|e| invalid("cache_ttl", e.to_string()))?
            .get(),
        None => Duration::from_secs(30),
    };
    let pq_verify_mode = match raw.pq_verify_mode {
        Some(text) => text
            .parse()
            .map_err(|_| invalid("pq_verify_mode", "expected and, or or pq_only"))?,
        None => PqVerifyMode::And,
    };
    let log_format = match raw.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(_) => return Err(invalid("log_format", "expected text or json")),
    };
    let state_file = raw
        .custody
        .state_file
        .clone()
        .unwrap_or_else(|| data_dir.join("custody.json"));
    let custody = match raw.custody.method.as_deref().unwrap_or("key-file") {
        "key-file" => CustodyConfig::KeyFile {
            state_file,
            key_file: raw
                .custody
                .key_file
                .clone()
                .unwrap_or_else(|| data_dir.join("unseal.key")),
        },
        "passphrase" => CustodyConfig::Passphrase {
            state_file,
            passphrase_file: raw.custody.passphrase_file.clone(),
        },
        "shamir" => CustodyConfig::Shamir { state_file },
        "pkcs11" => CustodyConfig::Pkcs11(custody::pkcs11(raw.custody)?),
        _ => {
            return Err(invalid(
                "custody.method",
                "expected key-file, passphrase, shamir or pkcs11",
            ));
        }
    };
    let interval =
        |key: &str, text: Option<String>, default: u64| -> Result<Duration, ConfigError> {
            match text {
                Some(t) => t
                    .parse::<HumanDuration>()
                    .map(HumanDuration::get)
                    .map_err(|e| invalid(key, e.to_string())),
                None => Ok(Duration::from_secs(default)),
            }
        };
    let audit = AuditConfig {
        enabled: raw.audit.enabled.unwrap_or(true),
        origin: raw
            .audit
            .origin
            .unwrap_or_else(|| "coffer/audit".to_owned()),
        anchor_dir: raw.audit.anchor_dir,
        anchor_url: match raw.audit.anchor_url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some(url),
            Some(_) => {
                return Err(invalid(
                    "audit.anchor_url",
                    "must be an http:// or https:// URL",
                ));
            }
            None => None,
        },
        checkpoint_interval: interval(
            "audit.checkpoint_interval",
            raw.audit.checkpoint_interval,
            60,
        )?,
        verify_interval: interval("audit.verify_interval", raw.audit.verify_interval, 300)?,
        refusals: coffer_core::kms::RefusalLimit {
            per_principal: match raw.audit.refusals_per_principal {
                None => coffer_core::kms::RefusalLimit::default().per_principal,
                Some(n) => u32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("audit.refusals_per_principal", "at least 1"))?,
            },
            window: interval("audit.refusal_window", raw.audit.refusal_window, 10)?,
        },
    };
    for (key, value) in [
        ("audit.checkpoint_interval", audit.checkpoint_interval),
        ("audit.verify_interval", audit.verify_interval),
        ("audit.refusal_window", audit.refusals.window),
    ] {
        if value.is_zero() {
            return Err(invalid(key, "must be longer than zero"));
        }
    }
    if audit.origin.is_empty() || audit.origin.contains('\n') {
        return Err(invalid("audit.origin", "must be one non-empty line"));
    }
    let envelope = envelope::RawEnvelope {
        max_inflight_sign: raw.max_inflight_sign,
        max_inflight_verify: raw.max_inflight_verify,
        max_inflight_wrap: raw.max_inflight_wrap,
        max_inflight_admin: raw.max_inflight_admin,
        tenant_share_min: raw.tenant_share_min,
        verify_cache_max: raw.verify_cache_max,
        verify_cache_ttl_ms: raw.verify_cache_ttl_ms,
    }
    .validate()?;
    Ok(Config {
        audit,
        envelope,
        limits: raw.limits.validate(crate::offload::cores())?,
        quotas: raw.quotas.validate()?,
        aws: raw.aws.validate()?,
        rotation: raw.rotation.validate()?,
        unseal: raw.unseal.validate()?,
        transport: raw.transport.validate(descriptor_limit())?,
        tls: raw.tls.validate()?,
        attestation: raw.attestation.validate()?,
        backup: raw.backup.validate()?,
        grpc: raw.grpc.validate()?,
        api_addr: addr("api_addr", raw.api_addr, "127.0.0.1:9446")?,
        metrics_addr: addr("metrics_addr", raw.metrics_addr, "127.0.0.1:9909")?,
        data_dir,
        database_url,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(64 * 1024),
        cache_ttl,
        pq_verify_mode,
        log_format,
        custody,
    })
}

#[cfg(test)]
mod tests;
