//! The operations port's routes (9909), described like the API's.

use coffer_api::admin::{CustodyView, RunningConfigView};
use coffer_api::paths;

use crate::handlers::ops;
use crate::openapi::{Op, Routes};

/// The operations port's routes.
pub fn ops() -> Routes {
    let op = |id: &'static str, summary: &'static str| Op::new(id, "ops", summary).public();
    Routes::new("Coffer operations port", paths::OPS_OPENAPI)
        .get(
            paths::HEALTHZ,
            ops::healthz,
            op("healthz", "Liveness.").answers_text(200, "ok", "text/plain"),
        )
        .get(
            paths::READYZ,
            ops::readyz,
            op(
                "readyz",
                "Readiness: unsealed, store and custody reachable.",
            )
            .answers_text(200, "ready", "text/plain")
            .answers_text(503, "not ready", "text/plain"),
        )
        .get(
            paths::METRICS,
            ops::metrics,
            op("metrics", "Prometheus metrics.").answers_text(
                200,
                "Text format 0.0.4.",
                "text/plain",
            ),
        )
        .get(
            paths::CUSTODY,
            ops::custody,
            op("custody", "Custody's backend.").answers::<CustodyView>(200, "The backend."),
        )
        .get(
            paths::CONFIG,
            ops::config,
            op(
                "config",
                "The configuration the server started with, secrets redacted.",
            )
            .answers::<RunningConfigView>(200, "Every key, its value and its source."),
        )
        .finish()
}
