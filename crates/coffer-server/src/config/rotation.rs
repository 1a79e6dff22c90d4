//! `[rotation]`: how the rotation saga's tracked-key rewrap is paced.

use std::num::NonZeroU32;

use coffer_core::kms::{DailyWindow, RewrapPolicy};
use serde::Deserialize;

use super::{ConfigError, invalid};

/// The `[rotation]` section, validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationConfig {
    /// Rate and window of the saga's `rewrap_tracked` step.
    pub rewrap: RewrapPolicy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRotation {
    rewrap_rate: Option<u64>,
    rewrap_window: Option<String>,
}

impl RawRotation {
    pub(super) fn validate(self) -> Result<RotationConfig, ConfigError> {
        let rate =
            match self.rewrap_rate {
                None => None,
                Some(n) => Some(u32::try_from(n).ok().and_then(NonZeroU32::new).ok_or_else(
                    || {
                        invalid(
                            "rotation.rewrap_rate",
                            "must be between 1 and 4294967295 items per second",
                        )
                    },
                )?),
            };
        let window = self
            .rewrap_window
            .map(|text| text.parse::<DailyWindow>())
            .transpose()
            .map_err(|e| invalid("rotation.rewrap_window", e.reason))?;
        Ok(RotationConfig {
            rewrap: RewrapPolicy { rate, window },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_window_are_parsed_and_checked() {
        let config = RawRotation {
            rewrap_rate: Some(500),
            rewrap_window: Some("22:00-06:00".into()),
        }
        .validate()
        .unwrap();
        assert_eq!(config.rewrap.rate, NonZeroU32::new(500));
        assert_eq!(config.rewrap.window.unwrap().to_string(), "22:00-06:00");
        assert_eq!(
            RawRotation::default().validate().unwrap(),
            RotationConfig::default()
        );
        let zero = RawRotation {
            rewrap_rate: Some(0),
            rewrap_window: None,
        };
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("`rotation.rewrap_rate`"), "{err}");
        let bad = RawRotation {
            rewrap_rate: None,
            rewrap_window: Some("night".into()),
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("`rotation.rewrap_window`") && err.contains("HH:MM-HH:MM"),
            "{err}"
        );
    }
}
