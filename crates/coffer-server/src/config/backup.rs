//! `[backup]`: scheduled backups to a directory, with retention.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{AT_LEAST_1S, ConfigError, duration, invalid};

/// Default time between scheduled backups.
const INTERVAL: Duration = Duration::from_secs(3600);
/// Default number of bundles kept.
const KEEP: u64 = 24;

/// The `[backup]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// Where scheduled bundles (and their `.sha256` manifests) are written; `None`: no
    /// scheduled backups.
    pub dir: Option<PathBuf>,
    /// A new bundle once the newest in `dir` is this old.
    pub interval: Duration,
    /// Bundles kept in `dir`: older ones are deleted after each new one.
    pub keep: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    dir: Option<PathBuf>,
    interval: Option<String>,
    keep: Option<i64>,
}

impl RawBackup {
    /// Validates, with the defaults.
    pub(super) fn validate(self) -> Result<BackupConfig, ConfigError> {
        let interval = duration("backup.interval", self.interval, INTERVAL, AT_LEAST_1S)?;
        let keep = match self.keep {
            None => KEEP,
            Some(n) if (1..=100_000).contains(&n) => n.unsigned_abs(),
            Some(_) => return Err(invalid("backup.keep", "must be between 1 and 100000")),
        };
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(invalid("backup.dir", "must not be empty"));
        }
        Ok(BackupConfig {
            dir: self.dir,
            interval,
            keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_hourly_and_twenty_four_kept() {
        let backup = RawBackup::default().validate().unwrap();
        assert_eq!(backup.dir, None);
        assert_eq!(backup.interval, Duration::from_secs(3600));
        assert_eq!(backup.keep, 24);
    }

    #[test]
    fn a_zero_keep_or_a_sub_second_interval_is_refused_by_name() {
        let err = RawBackup {
            keep: Some(0),
            ..RawBackup::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("backup.keep"), "{err}");
        let err = RawBackup {
            interval: Some("0s".into()),
            ..RawBackup::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("backup.interval"), "{err}");
    }
}
