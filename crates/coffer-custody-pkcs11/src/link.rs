//! Whether the token is reachable, and when to try again: a failed connection backs off
//! exponentially with jitter, so a flapping HSM is not hammered by every caller.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::Connection;

pub(crate) enum Link {
    Up(Arc<Connection>),
    Down {
        reason: String,
        failures: u32,
        retry_at: Instant,
    },
}

/// The delay before attempt `failures + 1`: `min · 2^(failures-1)`, capped at `max`, then
/// scaled by a random factor in [0.5, 1) so many nodes do not retry in step.
pub(crate) fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = min.saturating_mul(1u32 << exponent).min(max);
    let mut byte = [0u8; 2];
    // Jitter needs no secrecy; a failed draw just means no jitter this time.
    let jitter = match coffer_crypto::SecretBytes::random(2) {
        Ok(random) => {
            byte.copy_from_slice(random.expose_secret());
            f64::from(u16::from_be_bytes(byte)) / f64::from(u16::MAX)
        }
        Err(_) => 1.0,
    };
    base.mul_f64(0.5 + jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for failures in 1..10 {
            let want = (min * (1 << (failures - 1))).min(max);
            let got = backoff(failures, min, max);
            assert!(
                got >= want / 2 && got <= want,
                "{failures}: {got:?} vs {want:?}"
            );
        }
        let draws: std::collections::HashSet<_> = (0..20).map(|_| backoff(3, min, max)).collect();
        assert!(draws.len() > 1, "jitter varies the delay");
    }
}
