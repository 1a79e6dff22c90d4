//! `[rotation]`: how safely a rotation retires the version it replaces, and how the
//! saga's tracked-key rewrap is paced.

use std::num::NonZeroU32;
use std::time::Duration;

use coffer_core::kms::{DailyWindow, RETIRE_AFTER_QUIET, RewrapPolicy, UNTRACKED_WINDOW};
use serde::Deserialize;

use super::{ConfigError, duration, invalid};

/// The floor of this section's durations, and its refusal.
const LONGER_THAN_ZERO: (Duration, &str) = (Duration::from_nanos(1), "must be longer than zero");

/// The `[rotation]` section, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationConfig {
    /// How far back a rotation's preflight looks for use of the old version for
    /// untracked material (plain wrap/unwrap, untracked data keys); any such use refuses
    /// the start unless the operator passes `--retire-untracked`. Default 90 days.
    pub untracked_window: Duration,
    /// How long a `retiring` version of a key without an overlap policy must go unused,
    /// and have been retiring, before the scheduler retires it. Default 7 days.
    pub retire_after_quiet: Duration,
    /// Rate and window of the saga's `rewrap_tracked` step (default: unpaced, any time).
    pub rewrap: RewrapPolicy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRotation {
    untracked_window: Option<String>,
    retire_after_quiet: Option<String>,
    rewrap_rate: Option<u64>,
    rewrap_window: Option<String>,
}

fn rewrap(rate: Option<u64>, window: Option<String>) -> Result<RewrapPolicy, ConfigError> {
    let rate = match rate {
        None => None,
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    invalid(
                        "rotation.rewrap_rate",
                        "must be between 1 and 4294967295 items per second",
                    )
                })?,
        ),
    };
    let window = window
        .map(|text| text.parse::<DailyWindow>())
        .transpose()
        .map_err(|e| invalid("rotation.rewrap_window", e.reason))?;
    Ok(RewrapPolicy { rate, window })
}

impl RawRotation {
    /// Validates, with the defaults.
    pub(super) fn validate(self) -> Result<RotationConfig, ConfigError> {
        Ok(RotationConfig {
            untracked_window: duration(
                "rotation.untracked_window",
                self.untracked_window,
                UNTRACKED_WINDOW,
                LONGER_THAN_ZERO,
            )?,
            retire_after_quiet: duration(
                "rotation.retire_after_quiet",
                self.retire_after_quiet,
                RETIRE_AFTER_QUIET,
                LONGER_THAN_ZERO,
            )?,
            rewrap: rewrap(self.rewrap_rate, self.rewrap_window)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_90_days_and_7_days() {
        let rotation = RawRotation::default().validate().unwrap();
        assert_eq!(rotation.untracked_window, Duration::from_secs(90 * 86_400));
        assert_eq!(rotation.retire_after_quiet, Duration::from_secs(7 * 86_400));
        assert_eq!(rotation.rewrap, RewrapPolicy::default());
    }

    #[test]
    fn zero_and_malformed_durations_are_refused() {
        let zero = RawRotation {
            retire_after_quiet: Some("0d".into()),
            ..RawRotation::default()
        };
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("`rotation.retire_after_quiet`"), "{err}");
        let bad = RawRotation {
            untracked_window: Some("soon".into()),
            ..RawRotation::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("`rotation.untracked_window`"), "{err}");
    }

    #[test]
    fn rewrap_rate_and_window_are_parsed_and_checked() {
        let config = RawRotation {
            rewrap_rate: Some(500),
            rewrap_window: Some("22:00-06:00".into()),
            ..RawRotation::default()
        }
        .validate()
        .unwrap();
        assert_eq!(config.rewrap.rate, NonZeroU32::new(500));
        assert_eq!(config.rewrap.window.unwrap().to_string(), "22:00-06:00");
        let zero = RawRotation {
            rewrap_rate: Some(0),
            ..RawRotation::default()
        };
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("`rotation.rewrap_rate`"), "{err}");
        let bad = RawRotation {
            rewrap_window: Some("night".into()),
            ..RawRotation::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("`rotation.rewrap_window`") && err.contains("HH:MM-HH:MM"),
            "{err}"
        );
    }
}
