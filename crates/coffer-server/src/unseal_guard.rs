//! What stands before an unseal attempt: the optional unseal token, one Argon2id at a
//! time, and an exponential back-off on wrong passphrases.
//!
//! The unseal route is reachable while sealed, before any token key exists, so these
//! are its only defences: without them, guesses ran Argon2id (19 MiB each) in parallel
//! on the blocking pool as fast as they came. Per server, not per caller: a guesser
//! with many addresses gains nothing, and a server being guessed at slows down for
//! everyone — operators keep the unseal token, or a passphrase file, for that case.
//!
//! Schedule: after the n-th consecutive wrong passphrase the next attempt is refused
//! with 429 and `Retry-After` for `backoff_base × 2^(n−1)` (1 s, 2 s, 4 s, … by
//! default), at most `backoff_max` (5 min); a successful unseal resets it. While one
//! Argon2id runs, any other passphrase attempt is refused at once with 429 and
//! `Retry-After: 1` rather than queued. Shares are not slowed: they cost no Argon2id,
//! and a share that does not match its tag is refused on its own.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coffer_api::ErrorCode;
use coffer_crypto::hash::sha256;
use coffer_crypto::secret::constant_time_eq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::UnsealConfig;
use crate::error::ApiError;

/// The header that carries the unseal token.
pub const UNSEAL_TOKEN_HEADER: &str = "x-coffer-unseal-token";

/// The unseal route's guard, one per server.
pub struct UnsealGuard {
    /// SHA-256 of the unseal token, when one is configured: compared in constant time
    /// against the digest of what was sent, so neither length nor prefix leaks.
    token_digest: Option<[u8; 32]>,
    kdf: Arc<Semaphore>,
    backoff: Mutex<Backoff>,
    base: Duration,
    max: Duration,
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

fn refused(reason: &'static str, message: String, retry_after: Duration) -> ApiError {
    metrics::counter!("kms_unseal_refused_total", "reason" => reason).increment(1);
    let mut error = ApiError::new(ErrorCode::TooManyRequests, message);
    error.retry_after = Some(retry_after);
    error
}

impl UnsealGuard {
    /// A guard with `config`'s back-off and `token` (the unseal token's text, if any).
    pub fn new(config: &UnsealConfig, token: Option<&str>) -> Self {
        Self {
            token_digest: token.map(|t| sha256(&[t.as_bytes()])),
            kdf: Arc::new(Semaphore::new(1)),
            backoff: Mutex::new(Backoff::default()),
            base: config.backoff_base,
            max: config.backoff_max,
        }
    }

    /// Whether a token is required.
    pub fn token_required(&self) -> bool {
        self.token_digest.is_some()
    }

    /// Checks the unseal token sent (if one is configured): 401 when missing or wrong.
    pub fn check_token(&self, sent: Option<&[u8]>) -> Result<(), ApiError> {
        let Some(expected) = &self.token_digest else {
            return Ok(());
        };
        match sent {
            Some(sent) if constant_time_eq(&sha256(&[sent]), expected) => Ok(()),
            _ => {
                metrics::counter!("kms_unseal_refused_total", "reason" => "token").increment(1);
                Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    format!("unsealing needs the unseal token in {UNSEAL_TOKEN_HEADER}"),
                ))
            }
        }
    }

    /// Admits one passphrase attempt: refused while backing off or while another
    /// attempt's Argon2id runs. The permit is held until the derivation ends, even if
    /// the caller went away.
    pub fn admit_passphrase(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Some(wait) = self.remaining_backoff() {
            return Err(refused(
                "backoff",
                "too many wrong passphrases: wait before the next attempt".into(),
                wait,
            ));
        }
        self.kdf.clone().try_acquire_owned().map_err(|_| {
            refused(
                "busy",
                "another unseal attempt is running: retry shortly".into(),
                Duration::from_secs(1),
            )
        })
    }

    fn remaining_backoff(&self) -> Option<Duration> {
        let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        let wait = backoff.not_before?.checked_duration_since(Instant::now())?;
        (!wait.is_zero()).then_some(wait)
    }

    /// Records a wrong passphrase; returns the wait now imposed.
    pub fn record_failure(&self) -> Duration {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.failures = backoff.failures.saturating_add(1);
        let wait = self.delay_after(backoff.failures);
        backoff.not_before = Some(Instant::now() + wait);
        wait
    }

    /// Forgets earlier failures (after a successful unseal).
    pub fn record_success(&self) {
        *self.backoff.lock().unwrap_or_else(PoisonError::into_inner) = Backoff::default();
    }

    /// `base × 2^(failures−1)`, at most `max`.
    fn delay_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .map_or(self.max, |d| d.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>) -> UnsealGuard {
        UnsealGuard::new(
            &UnsealConfig {
                token_file: None,
                backoff_base: Duration::from_secs(1),
                backoff_max: Duration::from_secs(300),
            },
            token,
        )
    }

    #[test]
    fn the_wait_doubles_from_one_second_up_to_five_minutes() {
        let g = guard(None);
        let waits: Vec<u64> = (1..=12).map(|n| g.delay_after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(g.delay_after(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn a_failure_blocks_the_next_attempt_and_success_clears_it() {
        let g = guard(None);
        drop(g.admit_passphrase().unwrap());
        g.record_failure();
        let err = g.admit_passphrase().unwrap_err();
        assert_eq!(err.code, ErrorCode::TooManyRequests);
        assert!(err.retry_after.is_some_and(|d| d <= Duration::from_secs(1)));
        g.record_success();
        drop(g.admit_passphrase().unwrap());
    }

    #[test]
    fn a_second_attempt_while_one_runs_is_refused() {
        let g = guard(None);
        let running = g.admit_passphrase().unwrap();
        assert_eq!(
            g.admit_passphrase().unwrap_err().code,
            ErrorCode::TooManyRequests
        );
        drop(running);
        drop(g.admit_passphrase().unwrap());
    }

    #[test]
    fn the_token_is_needed_only_when_configured() {
        guard(None).check_token(None).unwrap();
        let g = guard(Some("s3cret-token"));
        assert_eq!(
            g.check_token(None).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert!(g.check_token(Some(b"s3cret-toke")).is_err());
        g.check_token(Some(b"s3cret-token")).unwrap();
    }
}
