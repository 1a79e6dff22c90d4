//! `[unseal]`: who may call the unseal route, and how fast wrong passphrases may come.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{AT_LEAST_1S, ConfigError, duration, invalid};

/// Wait after the first wrong passphrase; it doubles with each further one.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait between wrong passphrases.
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The `[unseal]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsealConfig {
    /// A file (mode 0600) holding the unseal token. When set, `POST /v1/sys/unseal`
    /// needs the token in `X-Coffer-Unseal-Token`; without it the route is open, as the
    /// share or passphrase is the credential.
    pub token_file: Option<PathBuf>,
    /// After the n-th consecutive wrong passphrase, the next attempt is refused (429,
    /// `Retry-After`) for `backoff_base × 2^(n−1)`, at most `backoff_max`. Default 1 s.
    pub backoff_base: Duration,
    /// The longest such wait. Default 5 min.
    pub backoff_max: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUnseal {
    token_file: Option<PathBuf>,
    backoff_base: Option<String>,
    backoff_max: Option<String>,
}

impl RawUnseal {
    /// Validates, with the defaults.
    pub(super) fn validate(self) -> Result<UnsealConfig, ConfigError> {
        let backoff_base = duration(
            "unseal.backoff_base",
            self.backoff_base,
            BACKOFF_BASE,
            AT_LEAST_1S,
        )?;
        let backoff_max = duration(
            "unseal.backoff_max",
            self.backoff_max,
            BACKOFF_MAX,
            AT_LEAST_1S,
        )?;
        if backoff_max < backoff_base {
            return Err(invalid(
                "unseal.backoff_max",
                "must not be shorter than unseal.backoff_base",
            ));
        }
        Ok(UnsealConfig {
            token_file: self.token_file,
            backoff_base,
            backoff_max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_one_second_doubling_to_five_minutes_and_no_token() {
        let unseal = RawUnseal::default().validate().unwrap();
        assert_eq!(unseal.backoff_base, Duration::from_secs(1));
        assert_eq!(unseal.backoff_max, Duration::from_secs(300));
        assert!(unseal.token_file.is_none());
    }

    #[test]
    fn a_maximum_below_the_base_or_a_sub_second_base_is_refused() {
        let err = RawUnseal {
            backoff_base: Some("10s".into()),
            backoff_max: Some("5s".into()),
            ..RawUnseal::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("unseal.backoff_max"), "{err}");
        let err = RawUnseal {
            backoff_base: Some("0s".into()),
            ..RawUnseal::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("unseal.backoff_base"), "{err}");
    }
}
