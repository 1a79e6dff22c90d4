//! The progress line of a migration: done of total, rate and ETA, on stderr.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters shared by the batches of one run.
pub struct Progress {
    total: u64,
    migrated: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    started: Instant,
}

/// This run's counts.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Counts {
    pub migrated: u64,
    pub skipped: u64,
    pub failed: u64,
    pub retries: u64,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Self {
            total: total as u64,
            migrated: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    pub fn add_migrated(&self, n: usize) {
        self.migrated.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_skipped(&self, n: usize) {
        self.skipped.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            migrated: self.migrated.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// `12000/100000 items (2400/s, ETA 33s), 3 failed`.
    pub fn line(&self) -> String {
        let counts = self.counts();
        let done = counts.migrated + counts.skipped + counts.failed;
        let seconds = self.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / seconds;
        let eta = if rate > 0.0 {
            format!("{:.0}s", self.total.saturating_sub(done) as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "{done}/{} items ({rate:.0}/s, ETA {eta}), {} failed",
            self.total, counts.failed
        )
    }

    /// Prints the line every second on a terminal (rewriting it), every ten seconds
    /// otherwise, until the task is aborted.
    pub async fn report_every(self: std::sync::Arc<Self>) {
        let terminal = std::io::stderr().is_terminal();
        let period = Duration::from_secs(if terminal { 1 } else { 10 });
        loop {
            tokio::time::sleep(period).await;
            if terminal {
                eprint!("\r{}\x1b[K", self.line());
            } else {
                eprintln!("progress: {}", self.line());
            }
        }
    }
}
