//! The generator: `concurrency` tasks, each on its own keep-alive connection, sending
//! until the deadline; latencies recorded per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::scenarios::Scenario;

/// One prepared request.
#[derive(Clone)]
pub struct Request {
    pub url: String,
    pub body: axum::body::Bytes,
    pub token: Option<HeaderValue>,
    /// Items per request (batch forms), for items/s.
    pub items: u64,
    /// Label for per-kind latency (mixed scenarios).
    pub kind: &'static str,
    /// A verification whose answer must say `"valid":true` (drills count the others).
    pub expect_valid: bool,
}

impl Request {
    pub fn new(url: String, body: String, token: Option<&str>, kind: &'static str) -> Self {
        let token = token.and_then(|t| HeaderValue::try_from(format!("Bearer {t}")).ok());
        Self {
            url,
            body: axum::body::Bytes::from(body),
            token,
            items: 1,
            kind,
            expect_valid: false,
        }
    }
}

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    pub items: u64,
    pub elapsed: Duration,
    /// Microseconds, sorted, per kind.
    pub latencies: Vec<(&'static str, Vec<u32>)>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn all(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .latencies
            .iter()
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.all(), p)
    }

    pub fn kind_percentile_ms(&self, kind: &str, p: f64) -> Option<f64> {
        self.latencies
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, l)| percentile(l, p))
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

/// Runs `scenario` with `concurrency` connections for one second of warm-up plus
/// `duration`.
pub async fn run(scenario: &Scenario, concurrency: usize, duration: Duration) -> Stats {
    let warmup = Duration::from_secs(1);
    let start = Instant::now();
    let (measure_from, deadline) = (start + warmup, start + warmup + duration);
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let requests = scenario.requests.clone();
        let pick = scenario.pick.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            // One client per task: one keep-alive connection each, as separate callers.
            coffer_client::install_tls_provider();
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("HTTP client");
            let mut local = Stats::default();
            let mut by_kind: Vec<(&'static str, Vec<u32>)> = Vec::new();
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let request = &requests[pick(worker, n)];
                let mut builder = client
                    .post(&request.url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(request.body.clone());
                if let Some(token) = &request.token {
                    builder = builder.header(AUTHORIZATION, token.clone());
                }
                let sent = Instant::now();
                let outcome = builder.send().await;
                let ok = match outcome {
                    Ok(response) => {
                        let status = response.status();
                        let _ = response.bytes().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                if sent < measure_from {
                    continue;
                }
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                if ok {
                    local.ok += 1;
                    local.items += request.items;
                    match by_kind.iter_mut().find(|(k, _)| *k == request.kind) {
                        Some((_, list)) => list.push(micros),
                        None => by_kind.push((request.kind, vec![micros])),
                    }
                } else {
                    local.errors += 1;
                }
            }
            local.latencies = by_kind;
            local
        }));
    }
    let mut total = Stats {
        elapsed: duration,
        ..Stats::default()
    };
    for task in tasks {
        if let Ok(part) = task.await {
            total.ok += part.ok;
            total.errors += part.errors;
            total.items += part.items;
            for (kind, list) in part.latencies {
                match total.latencies.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, all)) => all.extend(list),
                    None => total.latencies.push((kind, list)),
                }
            }
        }
    }
    for (_, list) in &mut total.latencies {
        list.sort_unstable();
    }
    total
}
