//! Where CPU-heavy work runs. ML-DSA signing costs ~120 µs of CPU; run inline on an
//! async worker it would stall every request queued behind it. The server passes its
//! bounded pool to `Kms::new`; [`Inline`] is for tests and tools that choose it
//! explicitly (there is no default, so production cannot fall back to it unnoticed).

use std::time::Duration;

use async_trait::async_trait;
use coffer_crypto::CryptoError;
use thiserror::Error;

/// A job that produces signature bytes.
pub type HeavyJob = Box<dyn FnOnce() -> Result<Vec<u8>, CryptoError> + Send + 'static>;

/// Why a heavy job produced no result.
#[derive(Debug, Error)]
pub enum OffloadError {
    /// Every worker is busy and the queue is full. Refusing at once keeps a burst from
    /// growing an unbounded backlog whose callers have long given up.
    #[error("the heavy-work queue is full")]
    Saturated {
        /// When a retry has a fair chance.
        retry_after: Duration,
    },
    /// The pool could not run the job (closed, or the job's thread panicked).
    #[error("the heavy-work pool failed: {0}")]
    Failed(&'static str),
    /// The job ran and failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Runs CPU-heavy jobs.
#[async_trait]
pub trait Offload: Send + Sync + 'static {
    /// Runs `job` and returns its result, or refuses it when the pool is saturated.
    async fn run(&self, job: HeavyJob) -> Result<Vec<u8>, OffloadError>;
}

/// Runs jobs inline on the caller's thread: never saturated, never off the caller.
#[derive(Debug, Default)]
pub struct Inline;

#[async_trait]
impl Offload for Inline {
    async fn run(&self, job: HeavyJob) -> Result<Vec<u8>, OffloadError> {
        Ok(job()?)
    }
}
