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

impl FromStr for TenantName {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
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
