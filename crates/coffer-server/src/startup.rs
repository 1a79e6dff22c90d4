//! Opening a deployment from its configuration, and initialising a new one.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use coffer_core::kms::{Kms, KmsError, KmsOptions};
use coffer_core::{Clock, CustodyError, SealStatus, Store, StoreError, SystemClock};
use coffer_custody_sealed::{Passphrase, SealedCustody, UnsealShare};
use coffer_store_sql::SqlStore;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use thiserror::Error;

use crate::config::{Config, CustodyConfig};
use crate::custody::ServerCustody;
use crate::offload::BoundedPool;
use crate::state::AppState;
use crate::transport::tls::TlsSource;
use crate::unseal_guard::UnsealGuard;
use coffer_audit_log::AuditLog;
use coffer_core::audit::{AuditSink, NoAudit};
use coffer_custody_pkcs11::Pkcs11Custody;

/// Why the server could not start or initialise. A variant that names its layer
/// ("store: …") carries the cause in its message, not as a `source`: the CLI prints the
/// whole chain (`{:#}`), which would otherwise say the cause twice.
#[derive(Debug, Error)]
pub enum StartError {
    /// The database.
    #[error("store: {0}")]
    Store(StoreError),
    /// Custody.
    #[error("custody: {0}")]
    Custody(CustodyError),
    /// The service.
    #[error("service: {0}")]
    Kms(KmsError),
    /// No custody state yet.
    #[error("not initialised: {0} does not exist (run `coffer init` first)")]
    NotInitialized(String),
    /// `init` on an initialised deployment.
    #[error("already initialised: {0} exists")]
    AlreadyInitialized(String),
    /// Files and directories.
    #[error("{0}")]
    Io(String),
    /// PKCS#11 custody (module, token, PIN, root key).
    #[error("pkcs11 custody: {0}")]
    Pkcs11(coffer_custody_pkcs11::Pkcs11Error),
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

macro_rules! start_error_from {
    ($($cause:ty => $variant:ident),* $(,)?) => {$(
        impl From<$cause> for StartError {
            fn from(cause: $cause) -> Self {
                Self::$variant(cause)
            }
        }
    )*};
}

start_error_from! {
    StoreError => Store,
    CustodyError => Custody,
    KmsError => Kms,
    coffer_custody_pkcs11::Pkcs11Error => Pkcs11,
}

/// How `init` protects the unseal key.
pub enum InitMethod {
    /// A key file (development; unseals automatically).
    KeyFile,
    /// A passphrase (Argon2id).
    Passphrase(Passphrase),
    /// `shares` Shamir shares, `threshold` of which unseal.
    Shamir {
        /// Number of shares.
        shares: u8,
        /// Shares needed.
        threshold: u8,
    },
    /// A new root key in the configured PKCS#11 token.
    Pkcs11,
}

/// What `init` hands back, once.
pub struct Initialized {
    /// The first admin token.
    pub admin_token: String,
    /// Shamir shares (empty for other methods): give one to each holder.
    pub shares: Vec<UnsealShare>,
}

/// The process-wide Prometheus recorder (installed once, shared by every server a
/// process starts, as tests do).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ];
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets_for_metric(Matcher::Full("kms_latency_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            // Gauges not set for ten minutes disappear: the expiry gauge of a version that
            // stopped being primary must not keep alerting (every gauge is refreshed well
            // within that: expiry each minute, audit size each verification pass).
            let builder = builder.idle_timeout(
                metrics_util::MetricKindMask::GAUGE,
                Some(std::time::Duration::from_secs(600)),
            );
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then its handle is not ours
            // and /metrics shows what this recorder saw (nothing), which tests notice.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

pub(crate) fn ensure_dir(path: &Path) -> Result<(), StartError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StartError::Io(format!("cannot create {}: {e}", path.display())))
}

pub(crate) fn read_secret_file(path: &Path) -> Result<String, StartError> {
    let meta =
        std::fs::metadata(path).map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(StartError::Io(format!(
            "{} must not be readable by group or others (chmod 600)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| StartError::Io(format!("{}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// What [`kms`] composes.
struct Service {
    kms: Arc<Kms>,
    audit: Option<Arc<AuditLog>>,
    heavy: Arc<BoundedPool>,
}

/// The service, its audit log (opened, checked, writer started) and the bounded pool its
/// heavy signing runs on: the one place production wires the pool into `Kms`.
async fn kms(
    config: &Config,
    store: Arc<dyn Store>,
    custody: &ServerCustody,
) -> Result<Service, StartError> {
    let options = KmsOptions {
        pq: config.pq,
        cache_ttl: Some(config.cache_ttl),
        untracked_window: config.rotation.untracked_window,
        retire_after_quiet: config.rotation.retire_after_quiet,
        rewrap: config.rotation.rewrap,
        verify_cache: config.envelope.verify_cache,
        refusals: config.audit.refusals,
        attestation: config.attestation.clone(),
    };
    let (sink, log): (Arc<dyn AuditSink>, _) = if config.audit.enabled {
        let (log, _) = AuditLog::open(
            store.clone(),
            &config.audit.origin,
            coffer_audit_log::Anchor {
                dir: config.audit.anchor_dir.clone(),
                url: config.audit.anchor_url.clone(),
            },
        )
        .await?;
        (log.clone(), Some(log))
    } else {
        tracing::warn!("the audit log is disabled (audit.enabled = false): for measurement only");
        (Arc::new(NoAudit), None)
    };
    let heavy = Arc::new(BoundedPool::per_core(config.limits.heavy_queue));
    let kms = Kms::new(
        store,
        custody.as_dyn(),
        Arc::new(SystemClock) as Arc<dyn Clock>,
        sink,
        heavy.clone(),
        custody.key_hsm(),
        options,
    );
    Ok(Service {
        kms: Arc::new(kms),
        audit: log,
        heavy,
    })
}

/// After unseal: loads the service's secrets (token key, audit signing key). False when
/// the deployment was never initialised.
pub async fn after_unseal(state: &AppState) -> Result<bool, StartError> {
    let loaded = state.kms.load().await?;
    // The root keys are in memory now: say at once if their pages could not be locked.
    crate::hardening::report_locked_memory();
    if let (true, Some(log)) = (loaded, &state.audit) {
        log.load_signer(state.custody.as_dyn().as_ref())
            .await
            .map_err(StartError::Io)?;
        // A log rewritten behind the server's back (tail cut, history re-chained, stored
        // checkpoints deleted) no longer extends the anchored checkpoint: alarm, and no
        // checkpoint is signed over it.
        log.check_against_checkpoints().await;
    }
    // Rotations a crash interrupted are not resumed here: the rotation worker `serve`
    // runs picks them up once the service is ready, and leaves paused ones paused.
    Ok(loaded)
}

fn state(
    config: &Config,
    Service { kms, audit, heavy }: Service,
    custody: ServerCustody,
) -> Result<AppState, StartError> {
    let unseal_token = match &config.unseal.token_file {
        Some(file) => Some(zeroize::Zeroizing::new(read_secret_file(file)?)),
        None => None,
    };
    if unseal_token.as_ref().is_some_and(|t| t.is_empty()) {
        return Err(StartError::Io("unseal.token_file is empty".into()));
    }
    let unseal = Arc::new(UnsealGuard::new(
        &config.unseal,
        unseal_token.as_ref().map(|t| t.as_str()),
    ));
    let tls = match &config.tls {
        Some(tls) => Some(TlsSource::load(tls).map_err(|e| StartError::Io(e.to_string()))?),
        None => None,
    };
    Ok(AppState::new(crate::state::Shared {
        kms,
        heavy,
        custody,
        audit,
        backup: config.backup.clone(),
        audit_intervals: (
            config.audit.checkpoint_interval,
            config.audit.verify_interval,
        ),
        metrics: metrics_handle(),
        max_body_bytes: config.max_body_bytes,
        unseal,
        transport: config.transport.clone(),
        tls,
        aws_keys: config.aws.static_keys.clone(),
        running_config: std::sync::Arc::new(config.running_view()),
        aws_accounts: std::sync::Arc::default(),
        admission: std::sync::Arc::new(crate::admission::Admission::new(
            config.envelope.max_inflight,
            config.envelope.tenant_share_min,
        )),
        // Started by systemd (`Type=notify`) or not; read once, here.
        systemd: crate::systemd::Notifier::from_env(),
    }))
}

/// The configured database, migrated, with the configured quotas.
async fn open_store(config: &Config) -> Result<SqlStore, StartError> {
    let store = SqlStore::connect(&config.database_url).await?;
    store.set_quotas(config.quotas.clone());
    Ok(store)
}

/// Initialises a new deployment: custody state, schema, token root key, first admin
/// token. Leaves custody unsealed in this process.
pub async fn init(
    config: &Config,
    method: InitMethod,
) -> Result<(AppState, Initialized), StartError> {
    ensure_dir(&config.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(open_store(config).await?);
    let (custody, shares) = match (&config.custody, method) {
        (CustodyConfig::Pkcs11(settings), InitMethod::Pkcs11) => {
            let pkcs11 = settings.resolve(|name| std::env::var(name).ok())?;
            let custody = tokio::task::spawn_blocking(move || Pkcs11Custody::init(pkcs11))
                .await
                .map_err(|e| StartError::Io(e.to_string()))??;
            (
                ServerCustody::Pkcs11(custody, settings.failover),
                Vec::new(),
            )
        }
        (_, InitMethod::Pkcs11) | (CustodyConfig::Pkcs11(_), _) => {
            return Err(StartError::Io(
                "the init method must match custody.method in the configuration".into(),
            ));
        }
        (custody_config, method) => {
            let (custody, shares) = init_sealed(custody_config, method)?;
            (ServerCustody::Sealed(Arc::new(custody)), shares)
        }
    };
    let service = kms(config, store, &custody).await?;
    let admin_token = service.kms.initialize().await?.ok_or_else(|| {
        StartError::AlreadyInitialized("the database already holds a token root key".into())
    })?;
    let state = state(config, service, custody)?;
    after_unseal(&state).await?;
    Ok((
        state,
        Initialized {
            admin_token,
            shares,
        },
    ))
}

/// A new sealed custody state file, unsealed in this process.
fn init_sealed(
    custody: &CustodyConfig,
    method: InitMethod,
) -> Result<(SealedCustody, Vec<UnsealShare>), StartError> {
    let Some(state_file) = custody.state_file() else {
        return Err(StartError::Io("sealed custody needs a state file".into()));
    };
    if state_file.exists() {
        return Err(StartError::AlreadyInitialized(
            state_file.display().to_string(),
        ));
    }
    Ok(match (custody, method) {
        (CustodyConfig::KeyFile { key_file, .. }, InitMethod::KeyFile) => {
            let custody = SealedCustody::init_key_file(state_file, key_file)?;
            custody.unseal_key_file(key_file)?;
            (custody, Vec::new())
        }
        (CustodyConfig::Passphrase { .. }, InitMethod::Passphrase(passphrase)) => {
            let custody = SealedCustody::init_passphrase(state_file, &passphrase)?;
            custody.unseal_passphrase(&passphrase)?;
            (custody, Vec::new())
        }
        (CustodyConfig::Shamir { .. }, InitMethod::Shamir { shares, threshold }) => {
            let (custody, shares) = SealedCustody::init_shamir(state_file, shares, threshold)?;
            for share in shares.iter().take(usize::from(threshold)) {
                custody.submit_share(share.expose_secret())?;
            }
            (custody, shares)
        }
        _ => {
            return Err(StartError::Io(
                "the init method must match custody.method in the configuration".into(),
            ));
        }
    })
}

/// Opens an initialised deployment. Key-file custody (and passphrase custody with a
/// `passphrase_file`) unseal at once; otherwise the server starts sealed and waits for
/// `POST /v1/sys/unseal`.
pub async fn open(config: &Config) -> Result<AppState, StartError> {
    let custody = open_custody(config).await?;
    let store: Arc<dyn Store> = Arc::new(open_store(config).await?);
    if let ServerCustody::Sealed(sealed) = &custody {
        unseal_at_start(config, sealed).await?;
    }
    let service = kms(config, store, &custody).await?;
    let state = state(config, service, custody.clone())?;
    if custody.status() == SealStatus::Unsealed {
        match after_unseal(&state).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(StartError::NotInitialized(
                    "the database holds no token root key".into(),
                ));
            }
            // The token is away at start and the policy is to keep serving what can be
            // served: listen now (not ready), and load once the token answers.
            Err(StartError::Kms(KmsError::BackendUnavailable(why)))
                if custody.starts_without_token() =>
            {
                tracing::warn!(
                    reason = %why,
                    "the HSM is unavailable at start; serving not-ready until it is back"
                );
                tokio::spawn(load_when_the_token_returns(state.clone()));
            }
            Err(other) => return Err(other),
        }
    }
    if custody.status() != SealStatus::Unsealed {
        tracing::warn!("starting sealed: unseal with `coffer unseal`");
    }
    Ok(state)
}

/// The custody of an initialised deployment, as configured (still sealed, for sealed
/// custody).
pub(crate) async fn open_custody(config: &Config) -> Result<ServerCustody, StartError> {
    Ok(match (&config.custody, config.custody.state_file()) {
        (CustodyConfig::Pkcs11(settings), _) => {
            let pkcs11 = settings.resolve(|name| std::env::var(name).ok())?;
            // An absent token is not fatal: custody starts down and reconnects.
            let custody = tokio::task::spawn_blocking(move || Pkcs11Custody::open(pkcs11))
                .await
                .map_err(|e| StartError::Io(e.to_string()))??;
            ServerCustody::Pkcs11(custody, settings.failover)
        }
        (_, Some(state_file)) if state_file.exists() => {
            ServerCustody::Sealed(Arc::new(SealedCustody::open(state_file)?))
        }
        (_, state_file) => {
            return Err(StartError::NotInitialized(
                state_file
                    .map(|f| f.display().to_string())
                    .unwrap_or_default(),
            ));
        }
    })
}

/// Retries [`after_unseal`] until the token answers (every 500 ms; the custody's own
/// reconnects back off underneath), then the server becomes ready.
async fn load_when_the_token_returns(state: AppState) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        match after_unseal(&state).await {
            Ok(true) => {
                tracing::info!("the HSM is back: service secrets loaded, serving");
                return;
            }
            Ok(false) => {
                tracing::error!("the database holds no token root key; not serving");
                return;
            }
            Err(StartError::Kms(KmsError::BackendUnavailable(_))) => {}
            Err(error) => tracing::warn!(%error, "loading the service secrets failed; retrying"),
        }
    }
}

/// Key-file custody, and passphrase custody with a `passphrase_file`, unseal at start.
pub(crate) async fn unseal_at_start(
    config: &Config,
    custody: &Arc<SealedCustody>,
) -> Result<(), StartError> {
    match &config.custody {
        CustodyConfig::KeyFile { key_file, .. } => custody.unseal_key_file(key_file)?,
        CustodyConfig::Passphrase {
            passphrase_file: Some(file),
            ..
        } => {
            let passphrase = Passphrase::new(read_secret_file(file)?);
            let custody = custody.clone();
            tokio::task::spawn_blocking(move || custody.unseal_passphrase(&passphrase))
                .await
                .map_err(|e| StartError::Io(e.to_string()))??;
        }
        _ => {}
    }
    Ok(())
}
