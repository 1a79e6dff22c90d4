//! Per-request context: the request id (echoed in `x-request-id`, in error bodies and in
//! logs), the tenant once authenticated (for metrics labels), and the middleware that
//! logs and measures every request, on the native API and the gRPC front alike.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use coffer_api::ErrorCode;

tokio::task_local! {
    static REQUEST: RequestContext;
}

struct RequestContext {
    id: String,
    tenant: OnceLock<String>,
    /// The code (and reason) of an error answered in a form that carries no response
    /// extension: a gRPC status (`grpc::status`).
    error: OnceLock<(ErrorCode, Option<&'static str>)>,
}

/// The current request's id ("" outside a request).
pub fn request_id() -> String {
    REQUEST.try_with(|c| c.id.clone()).unwrap_or_default()
}

/// Records the authenticated tenant for this request's metrics.
pub fn set_tenant(tenant: String) {
    let _ = REQUEST.try_with(|c| c.tenant.set(tenant));
}

/// Records the code of this request's error answer, and the `rejected_total` reason
/// when more specific than the code, for its metrics.
pub fn note_error(code: ErrorCode, reason: Option<&'static str>) {
    let _ = REQUEST.try_with(|c| c.error.set((code, reason)));
}

/// A request id: the caller's `x-request-id` if it is short and plain, else a new one.
fn choose_id(request: &Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The operation name of a route, for metric labels (bounded set: route templates).
fn operation(path: &str) -> &'static str {
    match path {
        "/v1/kms/wrap" => "wrap",
        "/v1/kms/unwrap" => "unwrap",
        "/v1/kms/datakey" => "datakey",
        "/v1/kms/rewrap" => "rewrap",
        "/v1/kms/sign" => "sign",
        "/v1/kms/verify" => "verify",
        "/v1/kms/encrypt" => "encrypt",
        "/v1/kms/decrypt" => "decrypt",
        "/v1/kms/mac" => "mac",
        "/v1/kms/verify-mac" => "verify_mac",
        // The gRPC front's methods carry their native route's label.
        p if p.starts_with(crate::grpc::PREFIX) => crate::grpc::operation(p),
        "/v1/kms/keys" => "keys",
        "/" => "aws",
        "/v1/kms/aliases" => "aliases",
        // Action routes end in the `{action}` parameter; the action itself is read from
        // the request path by `action_label` (a fixed set, so labels stay bounded).
        p if p.starts_with("/v1/kms/keys") && p.ends_with("/references") => "keys_references",
        p if p.starts_with("/v1/kms/keys") && p.ends_with("/history") => "keys_history",
        p if p.starts_with("/v1/kms/keys") && p.ends_with("/attestation-policy") => {
            "keys_attestation_policy"
        }
        p if p.starts_with("/v1/jwks") => "jwks",
        p if p.starts_with("/v1/kms/keys") && p.ends_with("{action}") => "keys_action",
        p if p.starts_with("/v1/kms/keys") => "keys_show",
        p if p.starts_with("/v1/kms/rotations") => "rotations",
        p if p.starts_with("/v1/kms/tracked") => "tracked",
        p if p.starts_with("/v1/audit") => "audit",
        p if p.starts_with("/v1/admin") => "admin",
        p if p.starts_with("/v1/sys") => "sys",
        _ => "other",
    }
}

/// `keys_rotate`, `keys_enable`, … from the last path segment of a key action.
fn action_label(path: &str) -> &'static str {
    match path.rsplit('/').next() {
        Some("rotate") => "keys_rotate",
        Some("enable") => "keys_enable",
        Some("disable") => "keys_disable",
        Some("schedule-deletion") => "keys_schedule_deletion",
        Some("cancel-deletion") => "keys_cancel_deletion",
        Some("add-spare") => "keys_add_spare",
        Some("activate") => "keys_activate",
        Some("register") => "keys_register",
        Some("publish") => "keys_publish",
        _ => "keys_action",
    }
}

/// Tenants that get their own `tenant` label on `kms_latency_seconds` (per process);
/// later ones share `other`. A histogram is about 20 series per label set, so this
/// bounds the metric at roughly `20 × ops × 65` series however many tenants there are.
pub const LATENCY_TENANTS: usize = 64;

/// The `tenant` label of `kms_latency_seconds`: the first [`LATENCY_TENANTS`] tenants
/// seen keep theirs (`admin` and `-` included), the rest are `other`.
fn latency_tenant(tenant: &str) -> String {
    static SEEN: OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.contains(tenant) {
        return tenant.to_owned();
    }
    if seen.len() < LATENCY_TENANTS {
        seen.insert(tenant.to_owned());
        return tenant.to_owned();
    }
    "other".to_owned()
}

/// Request id, logging and metrics around every API request.
pub async fn observe(request: Request, next: Next) -> Response {
    let id = choose_id(&request);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let op = match operation(&route) {
        "keys_action" => action_label(request.uri().path()),
        other => other,
    };
    let context = RequestContext {
        id: id.clone(),
        tenant: OnceLock::new(),
        error: OnceLock::new(),
    };
    let started = Instant::now();
    let (mut response, tenant, noted) = REQUEST
        .scope(context, async move {
            let response = next.run(request).await;
            let (tenant, noted) =
                REQUEST.with(|c| (c.tenant.get().cloned(), c.error.get().copied()));
            (response, tenant.unwrap_or_else(|| "-".to_owned()), noted)
        })
        .await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .copied()
        .or(noted.map(|(code, _)| code));
    let outcome = match code {
        None => "ok",
        Some(code) if code.status() >= 500 => "error",
        Some(_) => "rejected",
    };
    metrics::histogram!("kms_latency_seconds", "op" => op, "tenant" => latency_tenant(&tenant))
        .record(elapsed.as_secs_f64());
    metrics::counter!("kms_ops_total", "tenant" => tenant, "op" => op, "outcome" => outcome)
        .increment(1);
    if let Some(code) = code {
        let reason = response
            .extensions()
            .get::<crate::error::RejectReason>()
            .map(|r| r.0)
            .or(noted.and_then(|(_, reason)| reason))
            .unwrap_or(code.as_str());
        metrics::counter!("rejected_total", "reason" => reason).increment(1);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(request_id = %id, %method, route = %route, status, latency_us = elapsed.as_micros() as u64, "request");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_tenant_label_is_bounded() {
        let mut labels = std::collections::HashSet::new();
        for n in 0..LATENCY_TENANTS * 3 {
            labels.insert(latency_tenant(&format!("tenant-{n}")));
        }
        // Other tests of this process may have taken some of the slots first.
        assert!(labels.len() <= LATENCY_TENANTS + 1, "{}", labels.len());
        assert!(labels.contains("other"));
        // A tenant that got its label keeps it.
        let first = labels.iter().find(|l| *l != "other").unwrap().clone();
        assert_eq!(latency_tenant(&first), first);
    }
}
