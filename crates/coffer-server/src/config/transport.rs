//! `[transport]` and `[tls]`: how connections are accepted, bounded and encrypted.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{AT_LEAST_1S, ConfigError, duration, invalid};

/// Descriptors kept back from the API port's default cap: the operations port, the
/// database pool, custody and log files.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Connections the operations port holds at most by default (health checks and
/// scrapes are few and short).
const OPS_MAX_CONNECTIONS: usize = 64;

/// The `[transport]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// A connection that has not sent a request's complete headers within this time
    /// (slow-loris, a silent new socket, or a keep-alive connection waiting for its next
    /// request) is closed. Default 10 s.
    pub header_timeout: Duration,
    /// A request body not complete this long after the handler began reading it is
    /// answered 408. Default 30 s.
    pub body_timeout: Duration,
    /// A connection with no request in flight and no byte read or written for this long
    /// is closed (it bites first when shorter than `header_timeout`), and a TLS
    /// handshake not finished within it. Default 60 s.
    pub idle_timeout: Duration,
    /// Open API connections at most; one more is answered 503 with `Retry-After` and
    /// closed (plain HTTP) or closed (TLS). Default: half the descriptor limit, less
    /// 128 kept for the operations port, the database and files.
    pub max_connections: usize,
    /// Open operations-port connections at most, counted apart from the API's so an
    /// API flood leaves health and metrics reachable. Default 64.
    pub ops_max_connections: usize,
}

/// Whether API clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates asked for.
    None,
    /// Asked for; a certificate given must chain to `client_ca_file` and binds the
    /// connection to the principal it names; connections without one use tokens alone.
    Optional,
    /// A certificate chaining to `client_ca_file` is required for the handshake.
    Required,
}

/// The `[tls]` section, validated. Absent: both ports speak plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first) served on both ports.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) of the leaf.
    pub key_file: PathBuf,
    /// PEM CA certificates client certificates must chain to (API port only).
    pub client_ca_file: Option<PathBuf>,
    /// Whether API clients must present a certificate.
    pub client_auth: ClientAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransport {
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<u64>,
    ops_max_connections: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth: Option<String>,
}

fn count(key: &str, value: Option<u64>, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=1_000_000).contains(&n) => {
            usize::try_from(n).map_err(|_| invalid(key, "too large for this platform"))
        }
        Some(_) => Err(invalid(key, "must be between 1 and 1000000")),
    }
}

/// The API port's default cap for a process allowed `nofile` descriptors.
pub fn default_max_connections(nofile: u64) -> usize {
    let cap = (nofile / 2).saturating_sub(RESERVED_DESCRIPTORS).max(16);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

impl RawTransport {
    /// Validates, with the defaults for a process allowed `nofile` descriptors.
    pub(super) fn validate(self, nofile: u64) -> Result<TransportConfig, ConfigError> {
        Ok(TransportConfig {
            header_timeout: duration(
                "transport.header_timeout",
                self.header_timeout,
                Duration::from_secs(10),
                AT_LEAST_1S,
            )?,
            body_timeout: duration(
                "transport.body_timeout",
                self.body_timeout,
                Duration::from_secs(30),
                AT_LEAST_1S,
            )?,
            idle_timeout: duration(
                "transport.idle_timeout",
                self.idle_timeout,
                Duration::from_secs(60),
                AT_LEAST_1S,
            )?,
            max_connections: count(
                "transport.max_connections",
                self.max_connections,
                default_max_connections(nofile),
            )?,
            ops_max_connections: count(
                "transport.ops_max_connections",
                self.ops_max_connections,
                OPS_MAX_CONNECTIONS,
            )?,
        })
    }
}

impl RawTls {
    /// Validates: no key at all means plain HTTP; a certificate needs its key.
    pub(super) fn validate(self) -> Result<Option<TlsConfig>, ConfigError> {
        let client_auth = match self.client_auth.as_deref() {
            None | Some("none") => ClientAuth::None,
            Some("optional") => ClientAuth::Optional,
            Some("required") => ClientAuth::Required,
            Some(_) => {
                return Err(invalid(
                    "tls.client_auth",
                    "expected none, optional or required",
                ));
            }
        };
        let (cert_file, key_file) = match (self.cert_file, self.key_file) {
            (None, None) if self.client_ca_file.is_none() && client_auth == ClientAuth::None => {
                return Ok(None);
            }
            (Some(cert), Some(key)) => (cert, key),
            (None, _) => return Err(invalid("tls.cert_file", "required when [tls] is set")),
            (Some(_), None) => {
                return Err(invalid("tls.key_file", "required with tls.cert_file"));
            }
        };
        if client_auth != ClientAuth::None && self.client_ca_file.is_none() {
            return Err(invalid(
                "tls.client_ca_file",
                "required when tls.client_auth is optional or required",
            ));
        }
        Ok(Some(TlsConfig {
            cert_file,
            key_file,
            client_ca_file: self.client_ca_file,
            client_auth,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(default_max_connections(1024), 384);
        assert_eq!(default_max_connections(65_536), 32_640);
        assert_eq!(default_max_connections(64), 16);
        let t = RawTransport::default().validate(1024).unwrap();
        assert_eq!(t.header_timeout, Duration::from_secs(10));
        assert_eq!(t.ops_max_connections, 64);
    }

    #[test]
    fn tls_needs_a_key_and_client_auth_needs_a_ca() {
        assert_eq!(RawTls::default().validate().unwrap(), None);
        let err = RawTls {
            cert_file: Some("c.pem".into()),
            ..RawTls::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("tls.key_file"), "{err}");
        let err = RawTls {
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
            client_auth: Some("required".into()),
            ..RawTls::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("tls.client_ca_file"), "{err}");
    }
}
