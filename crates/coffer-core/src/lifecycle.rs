//! The lifecycle of keys and key versions: their states and the one table of allowed
//! transitions. Every change in the service goes through [`KeyState::check`] or
//! [`VersionState::check`]; the store then applies it as a compare-and-set so two
//! concurrent changes cannot both win.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::error::InvalidInput;

/// A refused lifecycle change, naming both states.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("illegal {object} transition: {from} -> {to}")]
pub struct IllegalTransition {
    /// `key` or `key version`.
    pub object: &'static str,
    /// The current state.
    pub from: &'static str,
    /// The requested state.
    pub to: &'static str,
}

macro_rules! state_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every state.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored and displayed name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(InvalidInput::new(stringify!($name), "unknown state")),
                }
            }
        }
    };
}

state_enum!(
    /// The state of a key as a whole.
    KeyState {
        /// Usable for every operation its purpose allows.
        Enabled = "enabled",
        /// Refuses every cryptographic operation; can be enabled again.
        Disabled = "disabled",
        /// Disabled and scheduled for destruction after a waiting period (7–30 days);
        /// cancelling returns it to `disabled`.
        PendingDeletion = "pending-deletion",
        /// Material destroyed; terminal.
        Destroyed = "destroyed",
    }
);

state_enum!(
    /// The state of one key version.
    VersionState {
        /// Created, not yet usable (a rotation stages it first).
        Pending = "pending",
        /// Decrypts and verifies; the primary (exactly one) also encrypts and signs.
        Active = "active",
        /// A spare kept as a backup; not used until activated.
        Inactive = "inactive",
        /// Decrypts and verifies, never encrypts or signs: where a rotation leaves the
        /// old version until nothing has used it for the quiet period (or its overlap
        /// ends), and where reactivation brings a retired one back.
        Retiring = "retiring",
        /// Refuses with a clear "version retired" error; material kept until destroyed,
        /// so it can be reactivated (back to `retiring`).
        Retired = "retired",
        /// Material destroyed; terminal.
        Destroyed = "destroyed",
    }
);

impl KeyState {
    /// The transition table for keys.
    pub const fn allows(self, to: Self) -> bool {
        use KeyState::*;
        matches!(
            (self, to),
            (Enabled, Disabled)
                | (Disabled, Enabled)
                | (Enabled | Disabled, PendingDeletion)
                | (PendingDeletion, Disabled)
                | (PendingDeletion, Destroyed)
        )
    }

    /// `Ok` when the table allows `self -> to`.
    pub fn check(self, to: Self) -> Result<(), IllegalTransition> {
        if self.allows(to) {
            Ok(())
        } else {
            Err(IllegalTransition {
                object: "key",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

impl VersionState {
    /// The transition table for key versions.
    pub const fn allows(self, to: Self) -> bool {
        use VersionState::*;
        matches!(
            (self, to),
            (Pending, Active)
                | (Pending, Inactive)
                | (Pending, Destroyed) // a rotation compensating before its switch
                | (Inactive, Active)
                | (Inactive, Destroyed)
                | (Active, Retiring)
                | (Retiring, Retired)
                // Reactivation: the material still exists, so a retired version can be
                // made to decrypt and verify again (never to encrypt or sign).
                | (Retired, Retiring)
                | (Retired, Destroyed)
        )
    }

    /// `Ok` when the table allows `self -> to`.
    pub fn check(self, to: Self) -> Result<(), IllegalTransition> {
        if self.allows(to) {
            Ok(())
        } else {
            Err(IllegalTransition {
                object: "key version",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }

    /// True when ciphertexts and signatures of this version are still accepted.
    pub const fn can_decrypt(self) -> bool {
        matches!(self, Self::Active | Self::Retiring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table, written out once more by hand: every pair is either here or refused.
    #[test]
    fn every_key_transition_is_allowed_or_refused_as_specified() {
        use KeyState::*;
        let allowed = [
            (Enabled, Disabled),
            (Disabled, Enabled),
            (Enabled, PendingDeletion),
            (Disabled, PendingDeletion),
            (PendingDeletion, Disabled),
            (PendingDeletion, Destroyed),
        ];
        for &from in KeyState::ALL {
            for &to in KeyState::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.check(to).is_ok(), expected, "{from} -> {to}");
                if !expected {
                    let error = from.check(to).unwrap_err().to_string();
                    assert!(error.contains(from.as_str()) && error.contains(to.as_str()));
                }
            }
        }
    }

    #[test]
    fn every_version_transition_is_allowed_or_refused_as_specified() {
        use VersionState::*;
        let allowed = [
            (Pending, Active),
            (Pending, Inactive),
            (Pending, Destroyed),
            (Inactive, Active),
            (Inactive, Destroyed),
            (Active, Retiring),
            (Retiring, Retired),
            (Retired, Retiring),
            (Retired, Destroyed),
        ];
        for &from in VersionState::ALL {
            for &to in VersionState::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.check(to).is_ok(), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for &s in KeyState::ALL {
            assert_eq!(s.as_str().parse::<KeyState>().unwrap(), s);
        }
        for &s in VersionState::ALL {
            assert_eq!(s.as_str().parse::<VersionState>().unwrap(), s);
        }
        assert!("deleted".parse::<KeyState>().is_err());
    }
}
