//! Use of key versions, as the reference tracker records it: which principal used which
//! version, in which way, first and last when, and how often.
//!
//! The kind of use is what lets a rotation tell material Coffer can rewrap itself
//! (tracked data keys) from material only the caller holds (anything sealed or opened
//! with `wrap`, `unwrap`, `rewrap` or an untracked data key): retiring a version that
//! sealed the latter makes those ciphertexts undecryptable, so preflight refuses it.

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::time::Timestamp;
use crate::token::TokenId;

/// How a version was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UseKind {
    /// Sealed material the caller keeps: `wrap`, `rewrap`'s destination, a data key
    /// without a track id.
    Encrypt,
    /// Opened material the caller holds: `unwrap`, `rewrap`'s source. An envelope does
    /// not say whether it is a tracked data key's, so every unwrap counts here.
    Decrypt,
    /// A data key registered with a track id: rotations rewrap it themselves.
    TrackedDatakey,
    /// Signed (messages, digests, certificates).
    Sign,
    /// Verified a signature.
    Verify,
    /// Sealed or opened a ciphertext whose encryption context carries
    /// [`PROBE_CONTEXT_KEY`]: a test round trip (`coffer rotate validate`) that keeps
    /// nothing. The key is bound into the ciphertext, so no other ciphertext can be
    /// opened as a probe. Use for the quiet period; not untracked use for preflight.
    Probe,
}

/// The encryption-context key that declares a ciphertext disposable (see
/// [`UseKind::Probe`]). Its value is free (the smoke test names itself).
pub const PROBE_CONTEXT_KEY: &str = "coffer:probe";

impl UseKind {
    /// Every kind.
    pub const ALL: &'static [Self] = &[
        Self::Encrypt,
        Self::Decrypt,
        Self::TrackedDatakey,
        Self::Sign,
        Self::Verify,
        Self::Probe,
    ];

    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::TrackedDatakey => "tracked-datakey",
            Self::Sign => "sign",
            Self::Verify => "verify",
            Self::Probe => "probe",
        }
    }

    /// True for use of material only the caller holds: retiring the version strands it.
    pub const fn is_untracked(self) -> bool {
        matches!(self, Self::Encrypt | Self::Decrypt)
    }

    /// `untracked` (`Encrypt` or `Decrypt`), unless `context` declares the ciphertext a
    /// probe.
    pub fn of_ciphertext(untracked: Self, context: &coffer_crypto::EncryptionContext) -> Self {
        if context.pairs().any(|(key, _)| key == PROBE_CONTEXT_KEY) {
            Self::Probe
        } else {
            untracked
        }
    }
}

impl fmt::Display for UseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UseKind {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| InvalidInput::new("UseKind", "unknown kind of use"))
    }
}

/// Where one tracker row counts: a version, a principal, a kind of use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UseOf {
    /// Tenant.
    pub tenant: TenantId,
    /// Key.
    pub key: KeyId,
    /// Version.
    pub version: VersionNumber,
    /// The token that used it.
    pub principal: TokenId,
    /// How.
    pub kind: UseKind,
}

/// How much and when, for one [`UseOf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UseCount {
    /// First use.
    pub first_seen: Timestamp,
    /// Last use.
    pub last_seen: Timestamp,
    /// Operations.
    pub count: u64,
}

impl UseCount {
    /// One use at `at`.
    pub const fn once(at: Timestamp) -> Self {
        Self {
            first_seen: at,
            last_seen: at,
            count: 1,
        }
    }

    /// Adds `other`: counts add, the earlier first and the later last use stay. The
    /// store's upsert does the same, so flushing in any order gives one answer.
    pub fn add(&mut self, other: Self) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.count = self.count.saturating_add(other.count);
    }
}

/// One row of the tracker: a version's use by one principal in one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionUse {
    /// What was used, by whom, how.
    pub of: UseOf,
    /// How much and when.
    pub count: UseCount,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for &kind in UseKind::ALL {
            assert_eq!(kind.as_str().parse::<UseKind>().unwrap(), kind);
        }
        assert!("wrap".parse::<UseKind>().is_err());
        let untracked: Vec<_> = UseKind::ALL.iter().filter(|k| k.is_untracked()).collect();
        assert_eq!(untracked, [&UseKind::Encrypt, &UseKind::Decrypt]);
    }

    #[test]
    fn only_a_context_with_the_probe_key_makes_a_probe() {
        use coffer_crypto::EncryptionContext;
        let probe =
            EncryptionContext::from_pairs([(PROBE_CONTEXT_KEY, "rotate-validate")]).unwrap();
        let plain = EncryptionContext::from_pairs([("purpose", "coffer:probe")]).unwrap();
        assert_eq!(
            UseKind::of_ciphertext(UseKind::Encrypt, &probe),
            UseKind::Probe
        );
        assert_eq!(
            UseKind::of_ciphertext(UseKind::Decrypt, &plain),
            UseKind::Decrypt
        );
        assert_eq!(
            UseKind::of_ciphertext(UseKind::Encrypt, &EncryptionContext::new()),
            UseKind::Encrypt
        );
    }

    #[test]
    fn counts_add_keeping_the_first_and_last_use() {
        let mut a = UseCount {
            first_seen: Timestamp::from_millis(10),
            last_seen: Timestamp::from_millis(20),
            count: 2,
        };
        a.add(UseCount {
            first_seen: Timestamp::from_millis(5),
            last_seen: Timestamp::from_millis(15),
            count: 3,
        });
        assert_eq!(
            a,
            UseCount {
                first_seen: Timestamp::from_millis(5),
                last_seen: Timestamp::from_millis(20),
                count: 5,
            }
        );
    }
}
