//! Shared state of the routers.

use std::sync::Arc;

use coffer_core::kms::Kms;
use metrics_exporter_prometheus::PrometheusHandle;

/// What every handler may use. Every request clones it (axum's `State`), so it is one
/// reference count: the fields themselves were a dozen, about 3 % of a wrap's CPU with
/// their drops.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind [`AppState`], built once at start.
pub struct Shared {
    /// The service.
    pub kms: Arc<Kms>,
    /// The bounded pool the service's heavy signing runs on (the same one `kms` holds;
    /// here for its counters).
    pub heavy: Arc<crate::offload::BoundedPool>,
    /// Custody, for seal status and unseal.
    pub custody: crate::custody::ServerCustody,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The AWS front's operator-registered access keys (`aws.static_keys_file`).
    pub aws_keys: std::sync::Arc<std::collections::HashMap<String, crate::config::StaticKey>>,
    /// AWS account ids of tenants, once read (they never change).
    pub aws_accounts:
        std::sync::Arc<std::sync::RwLock<std::collections::HashMap<coffer_core::TenantId, String>>>,
    /// Body limit, for the 413 message.
    pub max_body_bytes: usize,
    /// The audit log (absent only when `audit.enabled = false`).
    pub audit: Option<Arc<coffer_audit_log::AuditLog>>,
    /// The unseal route's guard: token, one Argon2id at a time, back-off.
    pub unseal: Arc<crate::unseal_guard::UnsealGuard>,
    /// Connection caps and timeouts (the body timeout is applied where bodies are read).
    pub transport: crate::config::TransportConfig,
    /// TLS on both ports, when configured.
    pub tls: Option<Arc<crate::transport::tls::TlsSource>>,
    /// In-flight caps per operation class and tenant (`admission`).
    pub admission: Arc<crate::admission::Admission>,
    /// How often to sign a checkpoint and to re-verify the stored log.
    pub audit_intervals: (std::time::Duration, std::time::Duration),
    /// Scheduled backups (`[backup]`).
    pub backup: crate::config::BackupConfig,
    /// systemd's notification socket, when systemd started the process (`systemd`).
    pub systemd: Option<crate::systemd::Notifier>,
    /// The configuration the server started with, secrets redacted (`GET /config`).
    pub running_config: Arc<coffer_api::admin::RunningConfigView>,
}
