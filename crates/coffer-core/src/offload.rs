//! Where CPU-heavy work runs. ML-DSA signing costs ~120 µs of CPU; run inline on an
//! async worker it would stall every request queued behind it. The server supplies a
//! bounded pool; the default runs inline (for tests and tools without a runtime).

use async_trait::async_trait;

/// A job that produces signature bytes.
pub type HeavyJob =
    Box<dyn FnOnce() -> Result<Vec<u8>, coffer_crypto::CryptoError> + Send + 'static>;

/// Runs CPU-heavy jobs.
#[async_trait]
pub trait Offload: Send + Sync + 'static {
    /// Runs `job` and returns its result.
    async fn run(&self, job: HeavyJob) -> Result<Vec<u8>, coffer_crypto::CryptoError>;

    /// Waits `duration` without holding a thread (polling loops such as the rotation's
    /// drain). The default blocks, for callers without a runtime.
    async fn pause(&self, duration: std::time::Duration) {
        std::thread::sleep(duration);
    }
}

/// Runs jobs inline on the caller's thread.
#[derive(Debug, Default)]
pub struct Inline;

#[async_trait]
impl Offload for Inline {
    async fn run(&self, job: HeavyJob) -> Result<Vec<u8>, coffer_crypto::CryptoError> {
        job()
    }
}
