//! Identifiers: tenants, keys, key versions, aliases. Parsed at the edge, so code inside
//! never handles an unchecked id string.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::InvalidInput;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $(#[$generate_doc:meta])* generate = $generate:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            $(#[$generate_doc])*
            pub fn generate() -> Self {
                Self($generate)
            }

            /// From the 16 raw bytes (as carried in ciphertext envelopes).
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// The 16 raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s)
                    .map(Self)
                    .map_err(|_| InvalidInput::new(stringify!($name), "not a UUID"))
            }
        }
    };
}

uuid_id!(
    /// A tenant: the isolation boundary every object belongs to.
    TenantId,
    /// A fresh random (v4) id.
    generate = Uuid::new_v4()
);
uuid_id!(
    /// A key (all of its versions).
    KeyId,
    /// A fresh time-ordered (v7) id: the creation time to the millisecond, then 74
    /// random bits. Ids in creation order make every index that leads with the key id
    /// (keys, versions, events) grow at its end, so a group of creations dirties a few
    /// pages instead of one random page per index per key (PERFORMANCE.md, issue 15).
    /// The time it shows is the key's `created_at`, which describing the key shows too.
    generate = Uuid::now_v7()
);

/// A key version number: 1, 2, … in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionNumber(u32);

impl VersionNumber {
    /// The first version of every key.
    pub const FIRST: Self = Self(1);

    /// Version `n`; zero is not a version.
    pub fn new(n: u32) -> Result<Self, InvalidInput> {
        if n == 0 {
            return Err(InvalidInput::new("key version", "versions start at 1"));
        }
        Ok(Self(n))
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The version after this one.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Display for VersionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A key alias such as `alias/payments-kek`: unique per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Alias(String);

impl Alias {
    /// Longest alias accepted, the AWS KMS limit.
    pub const MAX_LEN: usize = 256;

    /// The full alias, including the `alias/` prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full form (`alias/NAME`) of `s`, checked as [`str::parse`] checks it, and
    /// borrowed from `s` when it already carries the prefix: the hot path looks an
    /// alias up in the key cache without allocating.
    pub fn full(s: &str) -> Result<std::borrow::Cow<'_, str>, InvalidInput> {
        let name = s.strip_prefix("alias/").unwrap_or(s);
        let valid_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-'));
        if name.is_empty() || !valid_chars {
            return Err(InvalidInput::new(
                "alias",
                "use alias/NAME with letters, digits, / _ -",
            ));
        }
        if name.starts_with("aws/") || name.starts_with("coffer/") {
            return Err(InvalidInput::new("alias", "aws/ and coffer/ are reserved"));
        }
        if "alias/".len() + name.len() > Self::MAX_LEN {
            return Err(InvalidInput::new("alias", "longer than 256 characters"));
        }
        Ok(if name.len() == s.len() {
            std::borrow::Cow::Owned(format!("alias/{name}"))
        } else {
            std::borrow::Cow::Borrowed(s)
        })
    }
}

impl FromStr for Alias {
    type Err = InvalidInput;

    /// Accepts `alias/NAME` or a bare `NAME`; NAME is 1+ characters of `[A-Za-z0-9/_-]`
    /// and may not start with `aws/` or `coffer/`, which are reserved.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::full(s).map(|full| Self(full.into_owned()))
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{Alias, KeyId};

    #[test]
    fn a_random_v4_key_id_from_before_v7_still_parses_and_prints_the_same() {
        let old = "9b2f6c1e-3d4a-4f8b-9c2d-1a2b3c4d5e6f";
        let id: KeyId = old.parse().unwrap();
        assert_eq!(id.to_string(), old);
        assert_eq!(KeyId::from_bytes(*id.as_bytes()), id);
    }

    #[test]
    fn key_ids_sort_in_creation_order_as_bytes_and_as_stored_text() {
        let ids: Vec<KeyId> = (0..10_000).map(|_| KeyId::generate()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        // The stores keep the hyphenated text; their indexes compare that.
        let text: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert!(text.windows(2).all(|pair| pair[0] < pair[1]));
        // Still unpredictable: the random part differs between neighbours.
        assert!(
            ids.windows(2)
                .all(|pair| pair[0].as_bytes()[8..] != pair[1].as_bytes()[8..])
        );
    }

    #[test]
    fn an_alias_in_full_is_borrowed_and_checked_as_parse_checks_it() {
        assert!(matches!(
            Alias::full("alias/payments"),
            Ok(Cow::Borrowed("alias/payments"))
        ));
        assert_eq!(Alias::full("payments").unwrap(), "alias/payments");
        let long = "a".repeat(Alias::MAX_LEN);
        for input in [
            "alias/payments",
            "payments",
            "alias/",
            "",
            "alias/aws/x",
            "coffer/x",
            "alias/sp ace",
            long.as_str(),
        ] {
            assert_eq!(
                Alias::full(input).map(Cow::into_owned).ok(),
                input.parse::<Alias>().ok().map(|a| a.as_str().to_owned()),
                "{input}"
            );
        }
    }
}
