//! The writer's own figures. A metrics recorder keeps every sample of the two
//! histograms the writer records around each commit, `kms_audit_commit_seconds` and
//! `kms_audit_batch_entries`, so commits/s and entries per commit come from the writer
//! itself rather than being inferred from the store afterwards. Every other metric goes
//! nowhere: this process serves no `/metrics`.

use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

const COMMIT_SECONDS: &str = "kms_audit_commit_seconds";
const BATCH_ENTRIES: &str = "kms_audit_batch_entries";

/// Every value one histogram received, in order. One push per commit, from the
/// writer task alone, so the mutex is never contended in the hot path.
#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl Samples {
    fn values(&self) -> std::sync::MutexGuard<'_, Vec<f64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.values().push(value);
    }
}

/// The writer's commit histograms, readable between two marks.
#[derive(Clone, Default)]
pub struct Commits {
    seconds: Arc<Samples>,
    entries: Arc<Samples>,
}

/// How many samples each histogram held at some instant.
pub struct Mark {
    seconds: usize,
    entries: usize,
}

/// The commits the writer made between two marks.
#[derive(Debug, Default, Clone)]
pub struct Window {
    /// Commits timed (`kms_audit_commit_seconds` samples).
    pub commits: u64,
    /// Batches written (`kms_audit_batch_entries` samples) and their entries.
    pub batches: u64,
    pub entries: u64,
    /// Each commit's duration, milliseconds, sorted.
    pub commit_ms: Vec<f64>,
}

impl Window {
    /// The mean batch size (0 when nothing was written).
    pub fn entries_per_commit(&self) -> f64 {
        if self.batches == 0 {
            0.0
        } else {
            self.entries as f64 / self.batches as f64
        }
    }

    /// The `p`th percentile commit duration, milliseconds.
    pub fn commit_percentile_ms(&self, p: f64) -> f64 {
        if self.commit_ms.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * (self.commit_ms.len() - 1) as f64).round() as usize;
        self.commit_ms[rank.min(self.commit_ms.len() - 1)]
    }
}

impl Commits {
    /// Installs the recorder for the whole process (the writer records from its own
    /// task, so a thread-local recorder would not see it).
    pub fn install() -> anyhow::Result<Self> {
        let commits = Self::default();
        metrics::set_global_recorder(Keeper(commits.clone()))
            .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
        Ok(commits)
    }

    /// Where both histograms stand now.
    pub fn mark(&self) -> Mark {
        Mark {
            seconds: self.seconds.values().len(),
            entries: self.entries.values().len(),
        }
    }

    /// What was recorded from `from` to `to`.
    pub fn between(&self, from: &Mark, to: &Mark) -> Window {
        let mut commit_ms: Vec<f64> = self.seconds.values()[from.seconds..to.seconds]
            .iter()
            .map(|s| s * 1000.0)
            .collect();
        commit_ms.sort_by(f64::total_cmp);
        let batches = &self.entries.values()[from.entries..to.entries];
        Window {
            commits: commit_ms.len() as u64,
            batches: batches.len() as u64,
            entries: batches.iter().map(|&n| n as u64).sum(),
            commit_ms,
        }
    }
}

/// The recorder: the two histograms kept, everything else dropped.
struct Keeper(Commits);

impl Recorder for Keeper {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match key.name() {
            COMMIT_SECONDS => Histogram::from_arc(self.0.seconds.clone()),
            BATCH_ENTRIES => Histogram::from_arc(self.0.entries.clone()),
            _ => Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_holds_only_the_commits_between_its_marks() {
        let commits = Commits::default();
        commits.seconds.record(0.5);
        commits.entries.record(100.0);
        let from = commits.mark();
        for (seconds, entries) in [(0.002, 3.0), (0.001, 5.0)] {
            commits.seconds.record(seconds);
            commits.entries.record(entries);
        }
        let window = commits.between(&from, &commits.mark());
        assert_eq!(window.commits, 2);
        assert_eq!(window.entries, 8);
        assert_eq!(window.entries_per_commit(), 4.0);
        assert_eq!(window.commit_ms, [1.0, 2.0]);
        assert_eq!(window.commit_percentile_ms(99.0), 2.0);
    }
}
