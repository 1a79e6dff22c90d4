//! Caveats and the grants they narrow.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::{TokenError, TokenKind};
use crate::ids::TenantId;
use crate::key::Key;
use crate::time::Timestamp;

/// An operation a token may allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// wrap
    Wrap,
    /// unwrap
    Unwrap,
    /// datakey
    Datakey,
    /// rewrap
    Rewrap,
    /// sign
    Sign,
    /// verify
    Verify,
    /// mac
    Mac,
    /// verify-mac
    VerifyMac,
    /// create keys
    KeysCreate,
    /// list and show keys
    KeysRead,
    /// rotate keys
    KeysRotate,
    /// enable, disable, schedule and cancel deletion
    KeysManage,
    /// create and list tenants (admin tokens)
    AdminTenants,
    /// mint and revoke tokens (admin tokens)
    AdminTokens,
    /// read the audit log: its entries (admin tokens), proofs (any token)
    AuditRead,
    /// sign an audit checkpoint now (admin tokens)
    AuditCheckpoint,
    /// make a backup bundle of the whole store (admin tokens)
    AdminBackup,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Self; 17] = [
        Self::Wrap,
        Self::Unwrap,
        Self::Datakey,
        Self::Rewrap,
        Self::Sign,
        Self::Verify,
        Self::Mac,
        Self::VerifyMac,
        Self::KeysCreate,
        Self::KeysRead,
        Self::KeysRotate,
        Self::KeysManage,
        Self::AdminTenants,
        Self::AdminTokens,
        Self::AuditRead,
        Self::AuditCheckpoint,
        Self::AdminBackup,
    ];

    /// The caveat and CLI spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wrap => "wrap",
            Self::Unwrap => "unwrap",
            Self::Datakey => "datakey",
            Self::Rewrap => "rewrap",
            Self::Sign => "sign",
            Self::Verify => "verify",
            Self::Mac => "mac",
            Self::VerifyMac => "verify-mac",
            Self::KeysCreate => "keys:create",
            Self::KeysRead => "keys:read",
            Self::KeysRotate => "keys:rotate",
            Self::KeysManage => "keys:manage",
            Self::AdminTenants => "admin:tenants",
            Self::AdminTokens => "admin:tokens",
            Self::AuditRead => "audit:read",
            Self::AuditCheckpoint => "audit:checkpoint",
            Self::AdminBackup => "admin:backup",
        }
    }
}

impl FromStr for Operation {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or(TokenError::UnknownCaveat)
    }
}

/// One restriction appended to a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caveat {
    /// Only these operations.
    Ops(BTreeSet<Operation>),
    /// Only these keys (ids or `alias/NAME`).
    Keys(BTreeSet<String>),
    /// Not after this instant (Unix seconds).
    Expires(i64),
    /// Only this tenant.
    Tenant(TenantId),
}

impl fmt::Display for Caveat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ops(ops) => {
                let names: Vec<&str> = ops.iter().map(|op| op.as_str()).collect();
                write!(f, "ops={}", names.join(","))
            }
            Self::Keys(keys) => write!(
                f,
                "keys={}",
                keys.iter().cloned().collect::<Vec<_>>().join(",")
            ),
            Self::Expires(t) => write!(f, "expires={t}"),
            Self::Tenant(t) => write!(f, "tenant={t}"),
        }
    }
}

impl Caveat {
    /// The caveat's text, refused unless it parses back to this caveat: a key
    /// reference that is empty or holds a `,` would silently become other keys.
    pub fn to_text(&self) -> Result<String, TokenError> {
        let text = self.to_string();
        if text.parse::<Self>().as_ref() == Ok(self) {
            Ok(text)
        } else {
            Err(TokenError::Malformed(
                "caveat does not round-trip (a key reference with a ',' or empty)",
            ))
        }
    }
}

impl FromStr for Caveat {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, value) = s.split_once('=').ok_or(TokenError::UnknownCaveat)?;
        let list = || value.split(',').filter(|v| !v.is_empty());
        match name {
            "ops" => Ok(Self::Ops(list().map(str::parse).collect::<Result<_, _>>()?)),
            "keys" => Ok(Self::Keys(list().map(str::to_owned).collect())),
            "expires" => value
                .parse()
                .map(Self::Expires)
                .map_err(|_| TokenError::UnknownCaveat),
            "tenant" => value
                .parse()
                .map(Self::Tenant)
                .map_err(|_| TokenError::UnknownCaveat),
            _ => Err(TokenError::UnknownCaveat),
        }
    }
}

/// What a request may do: the record's base grant narrowed by every caveat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// The base grant.
    pub kind: TokenKind,
    /// Allowed operations; `None` = all.
    pub ops: Option<BTreeSet<Operation>>,
    /// Allowed keys; `None` = all.
    pub keys: Option<BTreeSet<String>>,
    /// Earliest expiry among the caveats.
    pub expires: Option<Timestamp>,
    /// A tenant caveat that contradicts the base grant empties the grant.
    pub contradictory: bool,
}

impl Grants {
    /// Intersects `kind` with `caveats`.
    pub fn new(kind: TokenKind, caveats: &[Caveat]) -> Self {
        let mut grants = Self {
            kind,
            ops: None,
            keys: None,
            expires: None,
            contradictory: false,
        };
        for caveat in caveats {
            match caveat {
                Caveat::Ops(ops) => {
                    grants.ops = Some(match grants.ops.take() {
                        Some(prev) => prev.intersection(ops).copied().collect(),
                        None => ops.clone(),
                    })
                }
                Caveat::Keys(keys) => {
                    grants.keys = Some(match grants.keys.take() {
                        Some(prev) => prev.intersection(keys).cloned().collect(),
                        None => keys.clone(),
                    })
                }
                Caveat::Expires(t) => {
                    let t = Timestamp::from_millis(t.saturating_mul(1000));
                    grants.expires = Some(grants.expires.map_or(t, |prev| prev.min(t)));
                }
                Caveat::Tenant(t) => {
                    if kind != TokenKind::Tenant(*t) {
                        grants.contradictory = true;
                    }
                }
            }
        }
        grants
    }

    /// The tenant this grant acts in, for tenant tokens.
    pub fn tenant(&self) -> Option<TenantId> {
        match self.kind {
            TokenKind::Tenant(t) if !self.contradictory => Some(t),
            _ => None,
        }
    }

    /// True for a (non-contradictory) admin grant.
    pub fn is_admin(&self) -> bool {
        self.kind == TokenKind::Admin && !self.contradictory
    }

    /// True when expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|t| now > t)
    }

    /// True when `op` is allowed at all (before knowing the key).
    pub fn allows_op(&self, op: Operation) -> bool {
        !self.contradictory && self.ops.as_ref().is_none_or(|ops| ops.contains(&op))
    }

    /// Why an admin power is refused, or `None` when `op` is allowed: an admin grant
    /// whose caveats allow `op` and, except for `admin:tokens` (whose children stay
    /// within the key scope, see `child`), carry no key scope, since tenants and the
    /// audit log span every key.
    pub fn refuses_admin(&self, op: Operation) -> Option<&'static str> {
        if !self.is_admin() {
            Some("this operation needs an admin token")
        } else if !self.allows_op(op) {
            Some("the token's operations do not include this admin power")
        } else if op != Operation::AdminTokens && self.keys.is_some() {
            Some("a key-scoped token cannot use this admin power")
        } else {
            None
        }
    }

    /// The caveats of a token minted by a holder of these grants, asking for `ops`,
    /// `keys` (empty: as many as allowed) and `expires`: never more than the minter
    /// has. An empty request inherits the minter's restriction; a request outside it
    /// is refused, naming what is missing; the expiry is the earlier of the request's
    /// and the minter's, so a child never outlives its minter.
    pub fn child(
        &self,
        ops: BTreeSet<Operation>,
        keys: BTreeSet<String>,
        expires: Option<Timestamp>,
    ) -> Result<Vec<Caveat>, String> {
        let mut caveats = Vec::new();
        // `None`: no caveat of that kind, which is all of them. A minter restricted to
        // nothing (an empty intersection) passes on an empty set, not `None`.
        let ops = match &self.ops {
            None if ops.is_empty() => None,
            None => Some(ops),
            Some(own) if ops.is_empty() => Some(own.clone()),
            Some(own) => {
                let beyond: Vec<&str> = ops.difference(own).map(|op| op.as_str()).collect();
                if !beyond.is_empty() {
                    return Err(format!(
                        "a token cannot grant operations it does not have: {}",
                        beyond.join(",")
                    ));
                }
                Some(ops)
            }
        };
        caveats.extend(ops.map(Caveat::Ops));
        let keys = match &self.keys {
            None if keys.is_empty() => None,
            None => Some(keys),
            Some(own) if keys.is_empty() => Some(own.clone()),
            Some(own) => {
                let beyond: Vec<&str> = keys.difference(own).map(String::as_str).collect();
                if !beyond.is_empty() {
                    return Err(format!(
                        "a token cannot grant keys outside its own key scope: {}",
                        beyond.join(",")
                    ));
                }
                Some(keys)
            }
        };
        caveats.extend(keys.map(Caveat::Keys));
        let expires = match (expires, self.expires) {
            (Some(asked), Some(own)) => Some(asked.min(own)),
            (asked, own) => asked.or(own),
        };
        if let Some(at) = expires {
            caveats.push(Caveat::Expires(at.millis().div_euclid(1000)));
        }
        Ok(caveats)
    }

    /// True when `key` is within the key scope (by id or any alias).
    pub fn allows_key(&self, key: &Key) -> bool {
        self.keys.as_ref().is_none_or(|keys| {
            keys.contains(&key.id.to_string())
                || key.aliases.iter().any(|a| keys.contains(a.as_str()))
        })
    }
}
