//! The bounded pool for CPU-heavy work: at most one job per core at a time, on tokio's
//! blocking threads, so ML-DSA signing under load queues here instead of occupying the
//! async workers that serve every other request.

use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::offload::{HeavyJob, Offload};
use coffer_crypto::CryptoError;
use tokio::sync::Semaphore;

/// A pool of `permits` concurrent jobs.
pub struct BoundedPool {
    permits: Arc<Semaphore>,
}

impl BoundedPool {
    /// One permit per core.
    pub fn per_core() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores)),
        }
    }
}

#[async_trait]
impl Offload for BoundedPool {
    async fn run(&self, job: HeavyJob) -> Result<Vec<u8>, CryptoError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| CryptoError::Backend("heavy-work pool closed"))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|_| CryptoError::Backend("heavy-work task failed"))?
    }

    async fn pause(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}
