//! Progress of the `rewrap_tracked` steps this process is running, for the rotation's
//! status (done, rate, ETA, waiting for the window) and the metrics
//! `kms_rotation_rewrap_remaining{key}` and `kms_rotation_rewrapped_total{key}`.
//!
//! Kept in memory by the replica that drives the step: it is a view of work in
//! progress, not state the saga needs (the saga resumes from the tracked keys
//! themselves). Other replicas answer `remaining` from the store and no rate.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::rewrap_policy::DailyWindow;
use crate::ids::KeyId;

/// The span over which the rate is measured: long enough to smooth paced batches,
/// short enough that a stall shows within seconds.
const RATE_SPAN: Duration = Duration::from_secs(10);

/// A running rewrap as the rotation status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RewrapProgress {
    /// Tracked data keys this run has moved to the new version.
    pub done: u64,
    /// Items per second over the last ten seconds.
    pub rate_per_second: f64,
    /// Set while the step waits for its daily window to open.
    pub waiting_for_window: Option<DailyWindow>,
}

impl RewrapProgress {
    /// How long the `remaining` items take at the current rate; `None` while waiting
    /// for the window or before a rate is known.
    pub fn eta(&self, remaining: u64) -> Option<Duration> {
        if self.waiting_for_window.is_some() || self.rate_per_second <= 0.0 {
            return None;
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "item counts stay far below 2^52"
        )]
        let seconds = remaining as f64 / self.rate_per_second;
        Some(Duration::from_secs_f64(seconds.min(1e9)))
    }
}

struct Run {
    key: KeyId,
    done: u64,
    remaining: u64,
    samples: VecDeque<(Instant, u64)>,
    waiting_for_window: Option<DailyWindow>,
}

impl Run {
    /// Items moved since the oldest batch within the span, over the time since it
    /// ended. Measured from a batch's end, not the step's start: the first batch of a
    /// paced run goes at once, and counting it over its own few milliseconds would
    /// report a burst as the rate.
    fn rate(&self, now: Instant) -> f64 {
        let mut recent = self
            .samples
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= RATE_SPAN);
        let Some(&(oldest, at_oldest)) = recent.next() else {
            return 0.0;
        };
        if recent.next().is_none() {
            return 0.0;
        }
        let elapsed = now.duration_since(oldest).as_secs_f64();
        #[expect(
            clippy::cast_precision_loss,
            reason = "item counts stay far below 2^52"
        )]
        let moved = (self.done - at_oldest) as f64;
        moved / elapsed
    }

    fn gauge(&self) {
        #[expect(
            clippy::cast_precision_loss,
            reason = "item counts stay far below 2^52"
        )]
        metrics::gauge!("kms_rotation_rewrap_remaining", "key" => self.key.to_string())
            .set(self.remaining as f64);
    }
}

/// The rewraps in progress here, by rotation id.
#[derive(Default)]
pub(super) struct RewrapBoard {
    runs: Mutex<HashMap<String, Run>>,
}

impl RewrapBoard {
    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Run>> {
        // Counters only; a panic elsewhere cannot leave them half-updated.
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the run of `rotation` on `key` with `remaining` items; it is removed
    /// when the returned handle drops (the step ended, failed or was abandoned).
    pub(super) fn begin(self: &Arc<Self>, rotation: &str, key: KeyId, remaining: u64) -> RunHandle {
        let run = Run {
            key,
            done: 0,
            remaining,
            samples: VecDeque::new(),
            waiting_for_window: None,
        };
        run.gauge();
        self.runs().insert(rotation.to_owned(), run);
        RunHandle {
            board: self.clone(),
            rotation: rotation.to_owned(),
        }
    }

    /// The progress of `rotation`'s rewrap, if this process is running it.
    pub(super) fn progress(&self, rotation: &str) -> Option<RewrapProgress> {
        let runs = self.runs();
        let run = runs.get(rotation)?;
        Some(RewrapProgress {
            done: run.done,
            rate_per_second: run.rate(Instant::now()),
            waiting_for_window: run.waiting_for_window,
        })
    }
}

/// One run's handle: the step reports through it.
pub(super) struct RunHandle {
    board: Arc<RewrapBoard>,
    rotation: String,
}

impl RunHandle {
    fn with(&self, f: impl FnOnce(&mut Run)) {
        if let Some(run) = self.board.runs().get_mut(&self.rotation) {
            f(run);
        }
    }

    /// `moved` more items are under the new version.
    pub(super) fn moved(&self, moved: u64) {
        self.with(|run| {
            run.done += moved;
            run.remaining = run.remaining.saturating_sub(moved);
            let now = Instant::now();
            run.samples.push_back((now, run.done));
            while run
                .samples
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RATE_SPAN)
            {
                run.samples.pop_front();
            }
            metrics::counter!("kms_rotation_rewrapped_total", "key" => run.key.to_string())
                .increment(moved);
            run.gauge();
        });
    }

    /// The store's count of what is left (after a wait, when others may have moved items).
    pub(super) fn remaining(&self, remaining: u64) {
        self.with(|run| {
            run.remaining = remaining;
            run.gauge();
        });
    }

    /// Sets the gauge again without a change: the server drops gauges left unset for
    /// ten minutes, and a wait for the window can last hours.
    pub(super) fn refresh(&self) {
        self.with(|run| run.gauge());
    }

    /// Marks the run as waiting for `window` (or, with `None`, working again).
    pub(super) fn waiting(&self, window: Option<DailyWindow>) {
        self.with(|run| {
            run.waiting_for_window = window;
            // The wait is no part of the rate.
            run.samples.clear();
        });
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if let Some(run) = self.board.runs().remove(&self.rotation) {
            // The last count stays: zero when the step finished, what was left when
            // it failed or this process stopped driving it.
            run.gauge();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_moves_and_ends_with_the_run() {
        let board = Arc::new(RewrapBoard::default());
        let key = KeyId::generate();
        let handle = board.begin("r1", key, 300);
        handle.moved(100);
        handle.moved(100);
        let progress = board.progress("r1").unwrap();
        assert_eq!(progress.done, 200);
        assert_eq!(progress.waiting_for_window, None);
        handle.waiting("22:00-06:00".parse().ok());
        let waiting = board.progress("r1").unwrap();
        assert!(waiting.waiting_for_window.is_some());
        assert_eq!(waiting.eta(100), None, "no ETA while the window is closed");
        drop(handle);
        assert_eq!(board.progress("r1"), None);
    }

    #[test]
    fn the_eta_is_remaining_over_rate() {
        let progress = RewrapProgress {
            done: 10,
            rate_per_second: 50.0,
            waiting_for_window: None,
        };
        assert_eq!(progress.eta(500), Some(Duration::from_secs(10)));
    }
}
