//! The post-quantum policy (seed 002 §2 and §6.4): how hybrid signatures are accepted
//! (`pq_verify_mode`), whether a hybrid key signs with the composite
//! (`pq_produce_hybrid`), and the share of keys that does (`pq_rollout_percent`). The
//! server's configuration gives the defaults; a tenant may override each one.
//!
//! **What a hybrid key signs when the composite does not apply**: the classical half
//! alone, a plain Ed25519 signature (RFC 8032) over the message itself, made with the
//! key's Ed25519 component. A verifier that is not PQ-ready checks it with any Ed25519
//! library and the last 32 bytes of the composite public key, so rolling the composite
//! out key by key never breaks such a verifier. Coffer verifies it under the `or` mode
//! only: `and` and `pq_only` ask for the ML-DSA half it lacks, and refuse it as a PQ-policy
//! rejection.
//!
//! **Rollout buckets** are a hash, not a draw: SHA-256 of a label, the tenant and the
//! key, read as a number modulo 100. A key is in the rollout when its bucket is below the
//! percent, so a key keeps its bucket on every replica and across restarts, and raising
//! the percent only ever adds keys.

use std::fmt;
use std::str::FromStr;

use coffer_crypto::PqVerifyMode;

use crate::error::InvalidInput;
use crate::ids::{KeyId, TenantId};

/// The share of a tenant's hybrid keys that sign with the composite, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RolloutPercent(u8);

impl RolloutPercent {
    /// Every key (the default).
    pub const ALL: Self = Self(100);

    /// `percent`, refused above 100.
    pub fn new(percent: u8) -> Result<Self, InvalidInput> {
        if percent > 100 {
            return Err(InvalidInput::new(
                "pq_rollout_percent",
                "must be between 0 and 100",
            ));
        }
        Ok(Self(percent))
    }

    /// The percent.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Whether `key` of `tenant` is in the rollout: its bucket is below the percent.
    pub fn includes(self, tenant: TenantId, key: KeyId) -> bool {
        bucket(tenant, key) < self.0
    }
}

impl fmt::Display for RolloutPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RolloutPercent {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let percent = s
            .parse::<u8>()
            .map_err(|_| InvalidInput::new("pq_rollout_percent", "must be between 0 and 100"))?;
        Self::new(percent)
    }
}

/// Domain separation of the rollout hash, so no other use of SHA-256 over ids collides.
const BUCKET_LABEL: &[u8] = b"coffer/pq-rollout/v1";

/// The key's rollout bucket, 0 to 99: the same on every replica, for ever.
pub fn bucket(tenant: TenantId, key: KeyId) -> u8 {
    let hash = coffer_crypto::hash::sha256(&[BUCKET_LABEL, tenant.as_bytes(), key.as_bytes()]);
    let mut head = [0u8; 8];
    head.copy_from_slice(&hash[..8]);
    // 2^64 mod 100 = 16: the first 16 buckets are more likely by 2^-60, nothing to
    // correct for.
    u8::try_from(u64::from_be_bytes(head) % 100).unwrap_or(0)
}

/// What a hybrid key's signature is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HybridSigning {
    /// The composite ML-DSA-65 + Ed25519 signature (`pq_produce_hybrid = true`).
    Composite,
    /// The classical half alone: Ed25519 over the message (`pq_produce_hybrid = false`).
    ClassicalHalf,
}

impl HybridSigning {
    /// `true` for the composite, as the setting is written.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Composite => "true",
            Self::ClassicalHalf => "false",
        }
    }

    /// From the setting's boolean.
    pub const fn from_produce_hybrid(produce: bool) -> Self {
        if produce {
            Self::Composite
        } else {
            Self::ClassicalHalf
        }
    }
}

impl FromStr for HybridSigning {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "true" => Ok(Self::Composite),
            "false" => Ok(Self::ClassicalHalf),
            _ => Err(InvalidInput::new(
                "pq_produce_hybrid",
                "must be true or false",
            )),
        }
    }
}

/// The server's PQ settings (its configuration), which tenants may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PqDefaults {
    /// `pq_verify_mode`.
    pub verify_mode: PqVerifyMode,
    /// `pq_produce_hybrid`.
    pub signing: HybridSigning,
    /// `pq_rollout_percent`.
    pub rollout: RolloutPercent,
}

impl Default for PqDefaults {
    /// `and`, the composite, every key: a hybrid key signs and verifies as the
    /// composite construction defines.
    fn default() -> Self {
        Self {
            verify_mode: PqVerifyMode::And,
            signing: HybridSigning::Composite,
            rollout: RolloutPercent::ALL,
        }
    }
}

/// A tenant's overrides: `None` where the server's default applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PqOverrides {
    /// Its `pq_verify_mode`.
    pub verify_mode: Option<PqVerifyMode>,
    /// Its `pq_produce_hybrid`.
    pub signing: Option<HybridSigning>,
    /// Its `pq_rollout_percent`.
    pub rollout: Option<RolloutPercent>,
}

impl PqOverrides {
    /// No override at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What a change does to one override.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<T> {
    /// Left as it is.
    Keep,
    /// Removed: the server's default applies again.
    Clear,
    /// Set to this value.
    Set(T),
}

impl<T: Copy> Change<T> {
    /// The override after this change.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(value) => Some(value),
        }
    }
}

/// A change to a tenant's overrides, one [`Change`] per setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PqChange {
    /// `pq_verify_mode`.
    pub verify_mode: Change<PqVerifyMode>,
    /// `pq_produce_hybrid`.
    pub signing: Change<HybridSigning>,
    /// `pq_rollout_percent`.
    pub rollout: Change<RolloutPercent>,
}

impl PqChange {
    /// Whether it changes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.verify_mode == Change::Keep
            && self.signing == Change::Keep
            && self.rollout == Change::Keep
    }

    /// `overrides` after this change.
    pub fn apply(&self, overrides: PqOverrides) -> PqOverrides {
        PqOverrides {
            verify_mode: self.verify_mode.apply(overrides.verify_mode),
            signing: self.signing.apply(overrides.signing),
            rollout: self.rollout.apply(overrides.rollout),
        }
    }

    /// What it sets, for its audit entry: `pq_rollout_percent=25, pq_verify_mode=server
    /// default`; settings it keeps are not named.
    pub fn describe(&self) -> String {
        fn one<T>(name: &str, change: Change<T>, show: impl Fn(T) -> String) -> Option<String> {
            match change {
                Change::Keep => None,
                Change::Clear => Some(format!("{name}=server default")),
                Change::Set(value) => Some(format!("{name}={}", show(value))),
            }
        }
        [
            one("pq_verify_mode", self.verify_mode, |m| {
                m.as_str().to_owned()
            }),
            one("pq_produce_hybrid", self.signing, |s| s.as_str().to_owned()),
            one("pq_rollout_percent", self.rollout, |r| r.to_string()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_keeps_its_bucket_and_raising_the_percent_only_adds_keys() {
        let tenant = TenantId::generate();
        let key = KeyId::generate();
        let first = bucket(tenant, key);
        for _ in 0..10 {
            assert_eq!(bucket(tenant, key), first);
        }
        // The same key id under another tenant is another key: its own bucket, drawn
        // independently (equal by chance one time in a hundred, so over many).
        let differ = (0..200)
            .filter(|_| bucket(TenantId::generate(), key) != first)
            .count();
        assert!(differ > 150, "{differ}");
        let mut included_before = false;
        for percent in 0..=100 {
            let included = RolloutPercent::new(percent).unwrap().includes(tenant, key);
            assert!(
                included || !included_before,
                "left the rollout at {percent}"
            );
            included_before = included;
        }
        assert!(!RolloutPercent::new(0).unwrap().includes(tenant, key));
        assert!(RolloutPercent::ALL.includes(tenant, key));
    }

    #[test]
    fn a_bucket_is_a_fixed_function_of_tenant_and_key() {
        // Pinned (computed apart, with Python's hashlib): every replica, every release,
        // puts these keys in these buckets.
        let tenant: TenantId = "00000000-0000-4000-8000-000000000001".parse().unwrap();
        let key: KeyId = "00000000-0000-4000-8000-000000000002".parse().unwrap();
        assert_eq!(bucket(tenant, key), 16);
        let key: KeyId = "00000000-0000-4000-8000-000000000003".parse().unwrap();
        assert_eq!(bucket(tenant, key), 64);
        assert!(!RolloutPercent::new(64).unwrap().includes(tenant, key));
        assert!(RolloutPercent::new(65).unwrap().includes(tenant, key));
    }

    #[test]
    fn over_many_keys_the_share_in_the_rollout_is_near_the_percent() {
        let tenant = TenantId::generate();
        let keys: Vec<KeyId> = (0..20_000).map(|_| KeyId::generate()).collect();
        for percent in [0u8, 1, 10, 25, 50, 75, 90, 99, 100] {
            let rollout = RolloutPercent::new(percent).unwrap();
            let inside = keys
                .iter()
                .filter(|k| rollout.includes(tenant, **k))
                .count();
            let share = inside as f64 / keys.len() as f64 * 100.0;
            // 20,000 keys: one standard deviation is at most 0.35 points; allow 1.5.
            assert!(
                (share - f64::from(percent)).abs() <= 1.5,
                "{percent}%: {share:.2}% of keys"
            );
        }
    }

    #[test]
    fn percents_and_settings_parse_at_the_edge() {
        assert_eq!("0".parse::<RolloutPercent>().unwrap().get(), 0);
        assert_eq!(
            "100".parse::<RolloutPercent>().unwrap(),
            RolloutPercent::ALL
        );
        for bad in ["101", "-1", "50%", "", "1e2"] {
            assert!(bad.parse::<RolloutPercent>().is_err(), "{bad}");
        }
        assert_eq!(
            "true".parse::<HybridSigning>().unwrap(),
            HybridSigning::Composite
        );
        assert_eq!(
            "false".parse::<HybridSigning>().unwrap(),
            HybridSigning::ClassicalHalf
        );
        assert!("yes".parse::<HybridSigning>().is_err());
    }

    #[test]
    fn a_change_keeps_clears_or_sets_each_override_and_names_what_it_sets() {
        let before = PqOverrides {
            verify_mode: Some(PqVerifyMode::Or),
            signing: Some(HybridSigning::ClassicalHalf),
            rollout: None,
        };
        let change = PqChange {
            verify_mode: Change::Keep,
            signing: Change::Clear,
            rollout: Change::Set(RolloutPercent::new(25).unwrap()),
        };
        assert_eq!(
            change.apply(before),
            PqOverrides {
                verify_mode: Some(PqVerifyMode::Or),
                signing: None,
                rollout: Some(RolloutPercent::new(25).unwrap()),
            }
        );
        assert_eq!(
            change.describe(),
            "pq_produce_hybrid=server default, pq_rollout_percent=25"
        );
        assert!(!change.is_empty());
        assert!(PqOverrides::default().is_empty());
    }
}
