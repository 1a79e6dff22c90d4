//! Tenants.

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;
use crate::ids::TenantId;
use crate::time::Timestamp;

/// A tenant's name: 1–64 characters of `[a-z0-9-_]`, unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantName(String);

impl TenantName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TenantName {
    /// A name as stored: the character rule only. Names made before names that parse as
    /// ids were refused still load; such a tenant is reachable by its id alone.
    pub fn from_stored(s: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=64).contains(&s.len())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidInput::new(
                "tenant name",
                "1-64 characters of a-z, 0-9, - and _",
            ))
        }
    }
}

impl FromStr for TenantName {
    type Err = InvalidInput;

    /// A new name. Every lookup by reference tries the reference as an id first, so a
    /// name that parses as one would be another tenant to every lookup: refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.parse::<TenantId>().is_ok() {
            return Err(InvalidInput::new(
                "tenant name",
                "a name must not have the form of a tenant id (a UUID)",
            ));
        }
        Self::from_stored(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_parse_as_ids_are_refused() {
        let id = TenantId::generate();
        assert!(id.to_string().parse::<TenantName>().is_err());
        assert!(
            id.as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .parse::<TenantName>()
                .is_err()
        );
        assert!(
            TenantName::from_stored(&id.to_string()).is_ok(),
            "stored names still load"
        );
        assert!("acme-1".parse::<TenantName>().is_ok());
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a tenant's key hierarchy still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantState {
    /// Its tenant key exists; its material can be used.
    Active,
    /// Its tenant key was destroyed: every key of the tenant is unrecoverable.
    Shredded,
}

impl TenantState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Shredded => "shredded",
        }
    }
}

impl FromStr for TenantState {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "shredded" => Ok(Self::Shredded),
            _ => Err(InvalidInput::new("tenant state", "unknown state")),
        }
    }
}

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Unique name.
    pub name: TenantName,
    /// State.
    pub state: TenantState,
    /// Creation time.
    pub created_at: Timestamp,
    /// The AWS front's 12-digit account id, when chosen at creation; `None`: the front
    /// derives one from the id.
    pub aws_account_id: Option<String>,
}

/// True for an AWS account id: exactly 12 ASCII digits.
pub fn is_aws_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}
