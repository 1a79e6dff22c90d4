//! The open-loop generator: requests on a fixed schedule (`rate` per second for
//! `duration`), each sent whatever happened to the ones before, latency counted from
//! its scheduled time. Bounded by the schedule's end, a request count and the number
//! in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::load::Request;
use crate::scenarios::Pick;

/// What one phase saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub target_rate: f64,
    pub seconds: f64,
    pub sent: u64,
    pub ok: u64,
    /// 429 answers (a tenant over its share).
    pub shed_429: u64,
    /// 503 answers (a class at its cap, the heavy queue full, too many connections).
    pub shed_503: u64,
    /// Any other answer, or no answer (timeout, connection error).
    pub failed: u64,
    /// Verifications answered 200 with `valid: false`.
    pub invalid: u64,
    /// Due while `max_outstanding` requests were in flight: not sent.
    pub dropped: u64,
    /// Microseconds from the scheduled time to the whole answer, successful requests
    /// only, sorted.
    pub latencies: Vec<u32>,
}

impl Outcome {
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        f64::from(self.latencies[rank.min(self.latencies.len() - 1)]) / 1000.0
    }

    /// 429 and 503 answers over requests answered or failed.
    pub fn shed_share(&self) -> f64 {
        let answered = self.ok + self.invalid + self.shed_429 + self.shed_503 + self.failed;
        if answered == 0 {
            return 0.0;
        }
        (self.shed_429 + self.shed_503) as f64 / answered as f64
    }

    pub fn json(&self, phase: &str) -> serde_json::Value {
        serde_json::json!({
            "phase": phase,
            "target_rate": self.target_rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "ok": self.ok,
            "shed_429": self.shed_429,
            "shed_503": self.shed_503,
            "failed": self.failed,
            "invalid": self.invalid,
            "dropped": self.dropped,
            "ok_per_second": self.ok as f64 / self.seconds.max(1e-9),
            "shed_share": self.shed_share(),
            "p50_ms": self.percentile_ms(50.0),
            "p95_ms": self.percentile_ms(95.0),
            "p99_ms": self.percentile_ms(99.0),
        })
    }
}

enum Answer {
    Ok(u32),
    Invalid,
    Shed429,
    Shed503,
    Failed,
}

/// Sends `requests` (chosen by `pick`) at `rate` per second for `duration`, at most
/// `max_requests` of them and at most `max_outstanding` in flight.
pub async fn run(
    requests: Arc<Vec<Request>>,
    pick: Pick,
    rate: f64,
    duration: Duration,
    max_requests: u64,
    max_outstanding: usize,
) -> Outcome {
    coffer_client::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    let total = ((rate * duration.as_secs_f64()) as u64).min(max_requests);
    let mut outcome = Outcome {
        target_rate: rate,
        seconds: duration.as_secs_f64(),
        ..Outcome::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        // Everything due by now, then a millisecond's sleep: the timer's resolution,
        // so rates above 1,000/s are sent in small groups on schedule.
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
        while next < due {
            let scheduled = start + Duration::from_secs_f64(next as f64 / rate);
            let index = pick(0, next);
            next += 1;
            if in_flight.load(Ordering::Relaxed) >= max_outstanding {
                outcome.dropped += 1;
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            outcome.sent += 1;
            let request = requests[index].clone();
            let (client, tx, in_flight) = (client.clone(), tx.clone(), in_flight.clone());
            tokio::spawn(async move {
                let mut builder = client
                    .post(&request.url)
                    .header(CONTENT_TYPE, "application/json")
                    .body(request.body.clone());
                if let Some(token) = &request.token {
                    builder = builder.header(AUTHORIZATION, token.clone());
                }
                let answer = match builder.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.bytes().await;
                        // Parsed only where asked: the answers of a burst are not read.
                        let valid = request.expect_valid
                            && body.as_ref().is_ok_and(|b| {
                                serde_json::from_slice::<serde_json::Value>(b)
                                    .is_ok_and(|v| v["valid"] == true)
                            });
                        match status {
                            200..=299 if request.expect_valid && !valid => Answer::Invalid,
                            200..=299 if body.is_ok() => Answer::Ok(
                                u32::try_from(scheduled.elapsed().as_micros()).unwrap_or(u32::MAX),
                            ),
                            429 => Answer::Shed429,
                            503 => Answer::Shed503,
                            _ => Answer::Failed,
                        }
                    }
                    Err(_) => Answer::Failed,
                };
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(answer);
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        while let Ok(answer) = rx.try_recv() {
            outcome.add(answer);
        }
    }
    drop(tx);
    // The last requests' answers (each bounded by the client's timeout).
    while let Some(answer) = rx.recv().await {
        outcome.add(answer);
    }
    outcome.latencies.sort_unstable();
    outcome
}

impl Outcome {
    fn add(&mut self, answer: Answer) {
        match answer {
            Answer::Ok(micros) => {
                self.ok += 1;
                self.latencies.push(micros);
            }
            Answer::Invalid => self.invalid += 1,
            Answer::Shed429 => self.shed_429 += 1,
            Answer::Shed503 => self.shed_503 += 1,
            Answer::Failed => self.failed += 1,
        }
    }
}
