//! The operations port: liveness, readiness, Prometheus metrics, custody's backend, the
//! running configuration.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use coffer_api::admin::{CustodyView, RunningConfigView};

use crate::state::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 only when unsealed, loaded, the store answers and custody's
/// backend (an HSM) is reachable.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.custody.as_dyn().available() && state.kms.ready().await {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let sealed = u8::from(state.custody.status() != coffer_core::SealStatus::Unsealed);
    metrics::gauge!("kms_sealed").set(f64::from(sealed));
    // Gauges of configured values, set again at each scrape: a value set before the
    // process installed its recorder would otherwise never show.
    state.kms.report_verify_cache();
    state.admission.report();
    crate::hardening::report_locked_memory();
    // Set at each scrape too: gauges left unset for ten minutes disappear.
    match state.kms.known_answer_outcome() {
        coffer_core::kms::KnownAnswers::Passed(_) => {
            metrics::gauge!("kms_known_answers_ok").set(1.0)
        }
        coffer_core::kms::KnownAnswers::Failed(_) => {
            metrics::gauge!("kms_known_answers_ok").set(0.0)
        }
        coffer_core::kms::KnownAnswers::NotRun => {}
    }
    crate::backup_worker::report();
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// `GET /custody`: custody's kind and reachability; for PKCS#11 the module, token, root
/// key handles and session pool (never the PIN).
pub async fn custody(State(state): State<AppState>) -> axum::Json<CustodyView> {
    axum::Json(state.custody.view())
}

/// `GET /config`: the configuration the server started with (each key's value and
/// whether the file, the environment or the default set it), secrets redacted as
/// `Debug` and `coffer config get` redact them (`config/redacted.rs`). No token, like
/// the rest of this port, which is kept on a private network (docs/configuration.md):
/// it answers while sealed, when an operator most needs to see what the server loaded,
/// and holds nothing `/custody` and the example configuration do not already show.
pub async fn config(State(state): State<AppState>) -> axum::Json<RunningConfigView> {
    axum::Json(RunningConfigView::clone(&state.running_config))
}
