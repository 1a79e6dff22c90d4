//! The bounded pool for CPU-heavy work: at most one job per worker at a time, on
//! tokio's blocking threads, so ML-DSA signing under load queues here instead of
//! occupying the async workers that serve every other request.
//!
//! The queue in front of the workers is bounded too (`limits.heavy_queue`): a job that
//! finds every worker busy and the queue full is refused at once (`503` with
//! `Retry-After`), because an unbounded backlog only grows latency until every caller
//! has timed out while the server still signs for them.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use coffer_core::offload::{HeavyJob, Offload, OffloadError};
use tokio::sync::Semaphore;

/// What a refused caller is told to wait. A queued job takes well under a millisecond,
/// so a full queue clears long before this; one second is the shortest `Retry-After`.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A pool of `workers` concurrent jobs with at most `queue` more waiting.
pub struct BoundedPool {
    /// Jobs running or waiting: `workers + queue` permits, taken without waiting.
    admitted: Arc<Semaphore>,
    /// Jobs running: one permit per worker.
    running: Arc<Semaphore>,
    /// Jobs this pool ran (its own count, beside the process-wide metric, so a test can
    /// tell that one server's signing went through its pool).
    jobs_run: AtomicU64,
}

/// The machine's cores (2 when unknown): the default worker count.
pub fn cores() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN.saturating_add(1))
}

impl BoundedPool {
    /// `workers` concurrent jobs, `queue` more waiting.
    pub fn new(workers: NonZeroUsize, queue: usize) -> Self {
        Self {
            admitted: Arc::new(Semaphore::new(workers.get().saturating_add(queue))),
            running: Arc::new(Semaphore::new(workers.get())),
            jobs_run: AtomicU64::new(0),
        }
    }

    /// One worker per core, `queue` jobs waiting.
    pub fn per_core(queue: usize) -> Self {
        Self::new(cores(), queue)
    }

    /// Jobs this pool has run.
    pub fn jobs_run(&self) -> u64 {
        self.jobs_run.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Offload for BoundedPool {
    async fn run(&self, job: HeavyJob) -> Result<Vec<u8>, OffloadError> {
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            metrics::counter!("kms_heavy_jobs_total", "outcome" => "rejected").increment(1);
            return Err(OffloadError::Saturated {
                retry_after: RETRY_AFTER,
            });
        };
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| OffloadError::Failed("pool closed"))?;
        self.jobs_run.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kms_heavy_jobs_total", "outcome" => "run").increment(1);
        // The permits travel with the job: if the request is dropped (client gone), the
        // blocking thread still runs to the end, and its slot stays taken until then.
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            job()
        })
        .await
        .map_err(|_| OffloadError::Failed("heavy-work task panicked"))?
        .map_err(OffloadError::from)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use axum::response::IntoResponse;
    use coffer_core::kms::KmsError;

    use super::*;
    use crate::error::ApiError;

    /// A job that blocks until `release` sends (or is dropped), then signs nothing.
    fn held(release: mpsc::Receiver<()>) -> HeavyJob {
        Box::new(move || {
            let _ = release.recv();
            Ok(b"done".to_vec())
        })
    }

    async fn wait_until(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_503_with_retry_after() {
        let pool = Arc::new(BoundedPool::new(NonZeroUsize::MIN, 1));
        let (release_running, running_rx) = mpsc::channel();
        let (release_queued, queued_rx) = mpsc::channel();
        let running = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(held(running_rx)).await }
        });
        wait_until(|| pool.jobs_run() == 1).await;
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(held(queued_rx)).await }
        });
        wait_until(|| pool.admitted.available_permits() == 0).await;

        let refused = pool.run(Box::new(|| Ok(Vec::new()))).await.unwrap_err();
        let OffloadError::Saturated { retry_after } = refused else {
            panic!("expected saturation, got {refused:?}");
        };
        let response =
            ApiError::from(KmsError::from(OffloadError::Saturated { retry_after })).into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");

        // Once the queue drains, jobs are admitted again.
        release_running.send(()).unwrap();
        release_queued.send(()).unwrap();
        assert_eq!(running.await.unwrap().unwrap(), b"done");
        assert_eq!(queued.await.unwrap().unwrap(), b"done");
        assert_eq!(pool.run(Box::new(|| Ok(vec![7]))).await.unwrap(), vec![7]);
        assert_eq!(pool.jobs_run(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_caller_keeps_its_worker_until_the_job_ends() {
        let pool = Arc::new(BoundedPool::new(NonZeroUsize::MIN, 0));
        let (release, rx) = mpsc::channel();
        let caller = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(held(rx)).await }
        });
        wait_until(|| pool.jobs_run() == 1).await;
        caller.abort();
        let _ = caller.await;
        // The blocking job still runs: its slot is not free for another.
        assert!(matches!(
            pool.run(Box::new(|| Ok(Vec::new()))).await,
            Err(OffloadError::Saturated { .. })
        ));
        release.send(()).unwrap();
        wait_until(|| pool.running.available_permits() == 1).await;
        assert!(pool.run(Box::new(|| Ok(Vec::new()))).await.is_ok());
    }
}
