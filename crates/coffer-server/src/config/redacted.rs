//! `Debug` for [`Config`] by hand: `database_url` may carry a password, which must not
//! reach a log.

use super::{Config, redacted_url};

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("api_addr", &self.api_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redacted_url(&self.database_url))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("cache_ttl", &self.cache_ttl)
            .field("pq_verify_mode", &self.pq_verify_mode)
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
