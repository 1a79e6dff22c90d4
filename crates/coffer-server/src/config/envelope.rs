//! Seed 002's operating envelope: in-flight caps per operation class, the fair share
//! each active tenant is guaranteed, and the verify cache (top-level keys, as the seed
//! names them: `max_inflight_sign` ↔ `COFFER_MAX_INFLIGHT_SIGN`).

use std::time::Duration;

use coffer_core::kms::VerifyCacheOptions;
use serde::Deserialize;

use super::{ConfigError, invalid};

/// Default caps: sign 512 and verify 1024 (seed 002), wrap as verify (one AEAD
/// operation and an audit entry each), admin 64 (store writes; a burst of them only
/// queues on the writer).
const DEFAULT_CAPS: [u64; 4] = [512, 1024, 1024, 64];

/// Largest accepted cap (each request in flight holds its body in memory).
const CAP_MAX: u64 = 1_000_000;

/// Largest accepted `verify_cache_max` (an entry is about 100 bytes).
const VERIFY_CACHE_MAX: u64 = 100_000_000;

/// Largest accepted `verify_cache_ttl_ms`: a day.
const VERIFY_CACHE_TTL_MAX_MS: u64 = 86_400_000;

/// The integer keys (typed as numbers when they come from the environment).
pub(super) const INTEGER_KEYS: [&str; 6] = [
    "max_inflight_sign",
    "max_inflight_verify",
    "max_inflight_wrap",
    "max_inflight_admin",
    "verify_cache_max",
    "verify_cache_ttl_ms",
];

/// The config keys of the caps, in [`crate::admission::Class::ALL`] order.
pub(super) const CAP_KEYS: [&str; 4] = [
    "max_inflight_sign",
    "max_inflight_verify",
    "max_inflight_wrap",
    "max_inflight_admin",
];

/// The envelope, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeConfig {
    /// Requests in flight per class: sign, verify, wrap, admin.
    pub max_inflight: [usize; 4],
    /// The share of each class guaranteed to every active tenant, in (0, 1].
    pub tenant_share_min: f64,
    /// Size and lifetime of the verify cache.
    pub verify_cache: VerifyCacheOptions,
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        RawEnvelope::default()
            .validate()
            .expect("the defaults are valid")
    }
}

/// The envelope's keys as read (top level of the file).
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawEnvelope {
    pub(super) max_inflight_sign: Option<u64>,
    pub(super) max_inflight_verify: Option<u64>,
    pub(super) max_inflight_wrap: Option<u64>,
    pub(super) max_inflight_admin: Option<u64>,
    pub(super) tenant_share_min: Option<f64>,
    pub(super) verify_cache_max: Option<u64>,
    pub(super) verify_cache_ttl_ms: Option<u64>,
}

impl RawEnvelope {
    pub(super) fn validate(self) -> Result<EnvelopeConfig, ConfigError> {
        let given = [
            self.max_inflight_sign,
            self.max_inflight_verify,
            self.max_inflight_wrap,
            self.max_inflight_admin,
        ];
        let mut max_inflight = [0usize; 4];
        for (i, value) in given.into_iter().enumerate() {
            let n = value.unwrap_or(DEFAULT_CAPS[i]);
            if !(1..=CAP_MAX).contains(&n) {
                return Err(invalid(
                    CAP_KEYS[i],
                    format!("must be between 1 and {CAP_MAX}"),
                ));
            }
            max_inflight[i] = usize::try_from(n)
                .map_err(|_| invalid(CAP_KEYS[i], "too large for this platform"))?;
        }
        let tenant_share_min = self.tenant_share_min.unwrap_or(0.05);
        if !(tenant_share_min > 0.0 && tenant_share_min <= 1.0) {
            return Err(invalid(
                "tenant_share_min",
                "must be a fraction above 0 and at most 1 (0.05 is 5 %)",
            ));
        }
        let defaults = VerifyCacheOptions::default();
        let max_entries = self.verify_cache_max.unwrap_or(defaults.max_entries);
        if max_entries > VERIFY_CACHE_MAX {
            return Err(invalid(
                "verify_cache_max",
                format!("must be between 0 (no cache) and {VERIFY_CACHE_MAX}"),
            ));
        }
        let ttl_ms = self
            .verify_cache_ttl_ms
            .unwrap_or(defaults.ttl.as_millis() as u64);
        if !(1..=VERIFY_CACHE_TTL_MAX_MS).contains(&ttl_ms) {
            return Err(invalid(
                "verify_cache_ttl_ms",
                format!("must be between 1 and {VERIFY_CACHE_TTL_MAX_MS} (milliseconds)"),
            ));
        }
        Ok(EnvelopeConfig {
            max_inflight,
            tenant_share_min,
            verify_cache: VerifyCacheOptions {
                max_entries,
                ttl: Duration::from_millis(ttl_ms),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let config = EnvelopeConfig::default();
        assert_eq!(config.max_inflight, [512, 1024, 1024, 64]);
        assert!((config.tenant_share_min - 0.05).abs() < f64::EPSILON);
        assert_eq!(config.verify_cache.max_entries, 262_144);
        assert_eq!(config.verify_cache.ttl, Duration::from_millis(300_000));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let zero = RawEnvelope {
            max_inflight_verify: Some(0),
            ..RawEnvelope::default()
        };
        let err = zero.validate().unwrap_err().to_string();
        assert!(err.contains("`max_inflight_verify`"), "{err}");
        for share in [0.0, -0.1, 1.5, f64::NAN] {
            let raw = RawEnvelope {
                tenant_share_min: Some(share),
                ..RawEnvelope::default()
            };
            let err = raw.validate().unwrap_err().to_string();
            assert!(err.contains("`tenant_share_min`"), "{share}: {err}");
        }
        let ttl = RawEnvelope {
            verify_cache_ttl_ms: Some(0),
            ..RawEnvelope::default()
        };
        let err = ttl.validate().unwrap_err().to_string();
        assert!(err.contains("`verify_cache_ttl_ms`"), "{err}");
        let size = RawEnvelope {
            verify_cache_max: Some(VERIFY_CACHE_MAX + 1),
            ..RawEnvelope::default()
        };
        let err = size.validate().unwrap_err().to_string();
        assert!(err.contains("`verify_cache_max`"), "{err}");
    }
}
