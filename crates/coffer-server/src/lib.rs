//! Coffer's HTTP service and composition root.
//!
//! Layout:
//! - this file — the routers and [`serve`]: the server is a function of its listeners,
//!   its state and a shutdown signal, so tests bind port 0.
//! - [`startup`] — opening store, custody and service from a [`Config`]; first-time
//!   [`startup::init`].
//! - [`admission`] — in-flight caps per operation class, each active tenant's floor.
//! - [`config`] — TOML + `COFFER_…` environment, validated.
//! - [`custody`] — the custody a server runs with: sealed or PKCS#11.
//! - [`hardening`] — no core dumps of a process that holds secrets.
//! - [`systemd`] — readiness, status, watchdog and stopping notices to systemd.
//! - [`transport`] — accepting connections: caps, timeouts, TLS and client
//!   certificates.
//! - [`grpc`] — the gRPC front (`grpc.addr`, off by default): the hot operations over
//!   HTTP/2, through the same service, tokens, caps and audit as the native API.
//! - [`backup_worker`] — scheduled backups under a lease; [`restore`] — opening a
//!   bundle with this deployment's custody and restoring it into an empty store.
//! - [`unseal_guard`] — the unseal token, one Argon2id at a time, back-off on wrong
//!   passphrases.
//! - [`openapi`] — the list of routes both the routers and their OpenAPI documents are
//!   built from; `routes` — that list.
//! - `handlers/` — thin handlers, one module per area; `extract` — body, batch and
//!   token extractors; `error` — errors to HTTP in one place; `context` — request ids,
//!   logs and metrics; `convert` — domain ↔ wire.

pub mod admission;
pub mod aws;
pub mod backup_worker;
pub mod config;
mod context;
mod convert;
pub mod custody;
mod error;
mod extract;
pub mod grpc;
mod handlers;
pub mod hardening;
pub mod offload;
pub mod openapi;
pub mod restore;
mod routes;
pub mod startup;
mod state;
pub mod systemd;
pub mod transport;
pub mod unseal_guard;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use coffer_api::ErrorCode;
use tokio::net::TcpListener;
use transport::{Port, PortOptions};

pub use config::{Config, ConfigError, CustodyConfig};
pub use error::ApiError;
pub use state::AppState;

/// Sets `kms_key_version_expiry_seconds{tenant,key,version}` for every primary
/// version with a validity limit (negative once expired).
async fn report_expiry(kms: &coffer_core::kms::Kms) {
    let now = coffer_core::Clock::now(&coffer_core::SystemClock);
    match kms.expiry_report().await {
        Ok(rows) => {
            for (tenant, key, version, not_after) in rows {
                let seconds = (not_after.millis() - now.millis()) as f64 / 1000.0;
                metrics::gauge!(
                    "kms_key_version_expiry_seconds",
                    "tenant" => tenant.to_string(),
                    "key" => key.to_string(),
                    "version" => version.to_string()
                )
                .set(seconds);
            }
        }
        Err(error) => tracing::warn!(%error, "expiry report failed"),
    }
}

/// The native API router (port 9446): the routes of [`routes::api`], which also make
/// its OpenAPI document (`GET /v1/openapi.json`).
pub fn api_router(state: AppState) -> Router {
    routes::api()
        .into_router()
        .fallback(async || ApiError::new(ErrorCode::NotFound, "no such endpoint"))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(context::observe))
        .with_state(state)
}

/// The operations router (port 9909): health, readiness, metrics, custody's backend,
/// and its own OpenAPI document (`GET /openapi.json`).
pub fn ops_router(state: AppState) -> Router {
    routes::ops().into_router().with_state(state)
}

/// One flush of the reference tracker; a failure is logged and counted
/// (`kms_reference_flush_failures_total`), never a request's failure.
async fn flush_references(kms: &coffer_core::kms::Kms) {
    match kms.flush_references().await {
        Ok(0) => {}
        Ok(rows) => {
            metrics::counter!("kms_reference_flush_rows_total")
                .increment(u64::try_from(rows).unwrap_or(u64::MAX));
        }
        Err(error) => {
            metrics::counter!("kms_reference_flush_failures_total").increment(1);
            tracing::warn!(%error, "flushing the reference tracker failed; kept for the next try");
        }
    }
}

/// The log line for a readiness check that found `now` after `was` (`None`: the first
/// check): `ready=1` on becoming ready, `ready=0` on ceasing to be; nothing otherwise
/// (a server that starts sealed says nothing until it is ready).
fn readiness_line(was: Option<bool>, now: bool) -> Option<&'static str> {
    match (was, now) {
        (Some(true), true) | (None | Some(false), false) => None,
        (None | Some(false), true) => Some("service=coffer ready=1"),
        (Some(true), false) => Some("service=coffer ready=0"),
    }
}

#[cfg(test)]
#[test]
fn readiness_lines_mark_each_change_once() {
    let checks = [false, false, true, true, false, false, true];
    let mut was = None;
    let mut lines = Vec::new();
    for now in checks {
        lines.extend(readiness_line(was, now));
        was = Some(now);
    }
    assert_eq!(
        lines,
        [
            "service=coffer ready=1",
            "service=coffer ready=0",
            "service=coffer ready=1"
        ]
    );
}

async fn wait_for_stop(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.changed().await;
}

/// The sockets a server listens on.
pub struct Listeners {
    /// The native API (`api_addr`).
    pub api: TcpListener,
    /// Health, readiness, metrics (`metrics_addr`).
    pub operations: TcpListener,
    /// The gRPC front (`grpc.addr`); `None`, and no port at all, unless configured.
    pub grpc: Option<TcpListener>,
}

/// An address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({key}): {error}")]
pub struct BindError {
    /// The config key that names the address.
    pub key: &'static str,
    /// The address.
    pub addr: std::net::SocketAddr,
    /// Why; in the message, not a `source`, so the CLI's cause chain says it once.
    pub error: std::io::Error,
}

impl Listeners {
    /// Binds the addresses `config` names; the gRPC port only when `grpc.addr` is set.
    pub async fn bind(config: &Config) -> Result<Self, BindError> {
        async fn bind(
            key: &'static str,
            addr: std::net::SocketAddr,
        ) -> Result<TcpListener, BindError> {
            TcpListener::bind(addr)
                .await
                .map_err(|error| BindError { key, addr, error })
        }
        let grpc = match config.grpc.addr {
            Some(addr) => Some(bind("grpc.addr", addr).await?),
            None => None,
        };
        Ok(Self {
            api: bind("api_addr", config.api_addr).await?,
            operations: bind("metrics_addr", config.metrics_addr).await?,
            grpc,
        })
    }
}

/// Serves both routers until `shutdown` resolves, then drains in-flight requests and
/// returns: [`serve_on`] without a gRPC port.
pub async fn serve(
    api: TcpListener,
    operations: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listeners = Listeners {
        api,
        operations,
        grpc: None,
    };
    serve_on(listeners, state, shutdown).await
}

/// Serves the native API, the operations port and (when it has a listener) the gRPC
/// front until `shutdown` resolves, then drains every port's in-flight requests and
/// returns. Also refreshes token records periodically (revocations made by other
/// replicas sharing the database), runs the scheduler, and runs the rotation worker
/// (`coffer_core::kms::RotationWorker`), which drives every running saga not paused.
/// Started by systemd (`AppState`'s `systemd`), it also says `READY=1`, `STATUS=`,
/// `STOPPING=1` and feeds the watchdog ([`systemd`]).
pub async fn serve_on(
    listeners: Listeners,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners {
        api,
        operations,
        grpc,
    } = listeners;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let refresher = {
        let kms = state.kms.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if kms.ready().await
                            && let Err(error) = kms.refresh_tokens().await {
                                tracing::warn!(%error, "token refresh failed");
                            }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };
    // The reference tracker's use of key versions, moved to the store about once a
    // second and once more after the servers stopped taking requests, so a graceful
    // stop loses none of it; a failed flush keeps the use for the next try.
    let flusher = {
        let kms = state.kms.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        flush_references(&kms).await;
                        // Closed windows of suppressed refusals get their summary entry.
                        kms.flush_refusal_summaries(coffer_core::kms::Close::Due).await;
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };
    // This replica's name in the store's leases (scheduler, rotation sagas).
    let instance = uuid::Uuid::new_v4().to_string();
    // Rotation sagas run here, never in the request that started them; a saga paused
    // with `until` stays paused across restarts and unseals, as the worker skips it.
    let rotations = {
        let worker = coffer_core::kms::RotationWorker::new(state.kms.clone(), instance.clone());
        tokio::spawn(worker.run(wait_for_stop(stop_rx.clone())))
    };
    let backups = tokio::spawn(backup_worker::run(
        state.kms.clone(),
        state.backup.clone(),
        instance.clone(),
        stop_rx.clone(),
    ));
    let scheduler = {
        let kms = state.kms.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if kms.ready().await {
                            if let Err(error) = kms.scheduled_pass(&instance).await {
                                tracing::warn!(%error, "scheduler pass failed");
                            }
                            report_expiry(&kms).await;
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };
    let auditor = state.audit.clone().map(|log| {
        let (checkpoint_every, verify_every) = (state.audit_intervals.0, state.audit_intervals.1);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut checkpoint_tick = tokio::time::interval(checkpoint_every);
            let mut verify_tick = tokio::time::interval(verify_every);
            let mut follow_tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut last_size = None;
            loop {
                tokio::select! {
                    _ = checkpoint_tick.tick() => {
                        let size = log.size();
                        if last_size != Some(size) && log.verifier_key().is_some() {
                            match log.checkpoint(coffer_core::Clock::now(&coffer_core::SystemClock)).await {
                                Ok(_) => last_size = Some(size),
                                Err(error) => tracing::warn!(%error, "periodic checkpoint failed"),
                            }
                        }
                    }
                    _ = verify_tick.tick() => {
                        log.verify_stored().await;
                    }
                    _ = follow_tick.tick() => {
                        // Entries of state changes and of other replicas.
                        log.follow().await;
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    });
    // Seed 002's "logs show service=… ready=1": one line when the server becomes ready
    // (as `/readyz` judges it), its opposite when it stops being; `kms_ready` the same.
    // Under systemd the same check says READY=1 (and STATUS=) at each change.
    let readiness = {
        let state = state.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut was = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = state.custody.as_dyn().available() && state.kms.ready().await;
                        metrics::gauge!("kms_ready").set(f64::from(u8::from(now)));
                        match readiness_line(was, now) {
                            Some(line) if now => tracing::info!("{line}"),
                            Some(line) => tracing::warn!("{line}"),
                            None => {}
                        }
                        if let Some(notifier) = state.systemd.as_ref().filter(|_| was != Some(now)) {
                            let sealed = state.custody.status() != coffer_core::SealStatus::Unsealed;
                            notifier.send(&systemd::readiness_message(now, sealed));
                        }
                        was = Some(now);
                    }
                    _ = stop.changed() => break,
                }
            }
        })
    };
    let state_kms = state.kms.clone();
    let state_audit = state.audit.clone();
    let notifier = state.systemd.clone();
    let watchdog = notifier.as_ref().and_then(|notifier| {
        let interval = notifier.watchdog()?;
        let probe = match &state.tls {
            None => systemd::Probe::port(operations.local_addr().ok()?),
            Some(_) => systemd::Probe::Router(ops_router(state.clone())),
        };
        Some(tokio::spawn(systemd::watchdog(
            notifier.clone(),
            interval,
            probe,
            stop_rx.clone(),
        )))
    });
    let tls_watch = state
        .tls
        .clone()
        .map(|tls| tokio::spawn(tls.watch(stop_rx.clone())));
    let api_options = PortOptions::new(Port::Api, &state.transport, state.tls.clone());
    let ops_options = PortOptions::new(Port::Ops, &state.transport, state.tls.clone());
    let grpc_options = PortOptions::new(Port::Grpc, &state.transport, state.tls.clone());
    let api_server =
        transport::serve_port(api, api_router(state.clone()), api_options, stop_rx.clone());
    let grpc_server = {
        let (router, stop) = (grpc::router(state.clone()), stop_rx.clone());
        async move {
            match grpc {
                Some(listener) => transport::serve_port(listener, router, grpc_options, stop).await,
                None => Ok(()),
            }
        }
    };
    let ops_server = transport::serve_port(operations, ops_router(state), ops_options, stop_rx);
    let trigger = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        if let Some(notifier) = &notifier {
            notifier.send("STOPPING=1\nSTATUS=stopping: draining in-flight requests");
        }
        let _ = stop_tx.send(true);
    };
    let (api_result, ops_result, grpc_result, ()) =
        tokio::join!(api_server, ops_server, grpc_server, trigger);
    if let Some(tls_watch) = tls_watch {
        tls_watch.abort();
    }
    refresher.abort();
    readiness.abort();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    scheduler.abort();
    backups.abort();
    // After every server drained its requests: their use is in the map now.
    let _ = flusher.await;
    flush_references(&state_kms).await;
    // Refusals suppressed in windows still open are summarised before the log stops.
    state_kms
        .flush_refusal_summaries(coffer_core::kms::Close::All)
        .await;
    // The worker stops its drivers on the signal; a saga cut mid-step continues from its
    // persisted step (the steps are idempotent).
    let _ = rotations.await;
    // SQLite's audit journal into the database, so a stopped deployment's table holds
    // the whole log (what cannot be written stays in the journal, for the next start).
    if let Some(audit) = &state_audit {
        audit.settle().await;
    }
    if let Err(error) = state_kms.key_service().store().settle_audit().await {
        tracing::warn!(%error, "audit entries stay in the journal until the next start");
    }
    if let Some(auditor) = auditor {
        auditor.abort();
    }
    api_result.and(ops_result).and(grpc_result)
}
