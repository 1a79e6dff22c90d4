//! `[limits]`: how much heavy work the server accepts before it refuses more.

use std::num::NonZeroUsize;

use serde::Deserialize;

use super::{ConfigError, invalid};

/// Waiting heavy jobs allowed per worker by default. An ML-DSA-65 or hybrid signature
/// takes ~0.15 ms of CPU, so the last of 32 queued jobs waits ~5 ms: deep enough to
/// absorb a burst, far below the 250 ms p99 alert. A deeper backlog only adds latency
/// that callers time out on; past it the server answers 503 with `Retry-After`.
const HEAVY_QUEUE_PER_CORE: usize = 32;

/// Largest accepted `limits.heavy_queue` (each waiting job holds its message in memory).
const HEAVY_QUEUE_MAX: u64 = 65_536;

/// The `[limits]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Heavy signing jobs (ML-DSA, hybrid) that may wait for a worker of the bounded
    /// pool (one worker per core); one more is refused with 503 and `Retry-After`.
    pub heavy_queue: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    heavy_queue: Option<u64>,
}

impl RawLimits {
    /// Validates, with defaults sized for `cores` workers.
    pub(super) fn validate(self, cores: NonZeroUsize) -> Result<LimitsConfig, ConfigError> {
        let heavy_queue = match self.heavy_queue {
            Some(n) if n <= HEAVY_QUEUE_MAX => usize::try_from(n)
                .map_err(|_| invalid("limits.heavy_queue", "too large for this platform"))?,
            Some(_) => {
                return Err(invalid(
                    "limits.heavy_queue",
                    format!("must be between 0 and {HEAVY_QUEUE_MAX}"),
                ));
            }
            None => HEAVY_QUEUE_PER_CORE.saturating_mul(cores.get()),
        };
        Ok(LimitsConfig { heavy_queue })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn the_default_queue_scales_with_cores() {
        let limits = RawLimits::default().validate(cores(4)).unwrap();
        assert_eq!(limits.heavy_queue, 128);
    }

    #[test]
    fn an_explicit_queue_is_kept_within_bounds() {
        let zero = RawLimits {
            heavy_queue: Some(0),
        };
        assert_eq!(zero.validate(cores(8)).unwrap().heavy_queue, 0);
        let huge = RawLimits {
            heavy_queue: Some(HEAVY_QUEUE_MAX + 1),
        };
        let err = huge.validate(cores(8)).unwrap_err().to_string();
        assert!(err.contains("`limits.heavy_queue`"), "{err}");
    }
}
