//! Capability tokens: Coffer's own macaroon-style bearer tokens.
//!
//! ```text
//! text  = "coffer_v1_" ‖ base64url(bytes)
//! bytes = 0x01 ‖ id (16) ‖ n (1) ‖ n × (len (u16 BE) ‖ caveat UTF-8) ‖ tag (32)
//! tag₀  = HMAC-SHA256(root key, "coffer/token/v1" ‖ id)
//! tagᵢ  = HMAC-SHA256(tagᵢ₋₁, caveatᵢ)          tag = tagₙ
//! ```
//!
//! Why this construction (the macaroon chain) rather than public-key tokens: every
//! token is checked by the server that minted it, so no third party needs to verify
//! offline, and an HMAC chain costs a microsecond where a signature check costs ~50 µs,
//! with no verification cache to keep coherent with revocations. Holders can still
//! attenuate offline: anyone may append a caveat (computing the next tag from the last),
//! nobody can remove one (that would need an earlier tag). Caveats only narrow: the base
//! grant (admin, or one tenant) lives server-side in the token's record under its id,
//! and a request is allowed only if every caveat allows it. Revoking an id revokes every
//! token attenuated from it.
//!
//! The base grant is bound too, so database write access alone cannot widen a token:
//! each record carries `grant_tag = HMAC-SHA256(root key, "coffer/token-grant/v1" ‖ id
//! ‖ kind ‖ tenant id)`, checked whenever records are loaded. A record whose kind or
//! tenant was edited no longer matches its tag and its token stops authenticating.

mod aws;
mod caveat;

pub use aws::{AwsCredentials, MAX_ACCESS_KEY_ID_LEN};
pub use caveat::{Caveat, Grants, Operation};

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_crypto::MacKey;
use thiserror::Error;

use crate::ids::TenantId;
use crate::time::Timestamp;

const PREFIX: &str = "coffer_v1_";
const FORMAT: u8 = 0x01;
const DOMAIN: &[u8] = b"coffer/token/v1";
const GRANT_DOMAIN: &[u8] = b"coffer/token-grant/v1";
const REVOKED_DOMAIN: &[u8] = b"coffer/token-revoked/v1";
const TAG_LEN: usize = 32;
/// Caveats per token; a bound so a hostile token cannot make verification expensive.
pub const MAX_CAVEATS: usize = 32;
/// Longest accepted token text.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused. Deliberately coarse toward the caller.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a Coffer token, or damaged.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The tag does not verify: forged, or minted by another deployment.
    #[error("token signature does not verify")]
    BadTag,
    /// A caveat is not understood (refusing it is the only safe answer).
    #[error("unknown caveat")]
    UnknownCaveat,
}

/// A token's id: names its server-side record; revocation is by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub [u8; 16]);

impl TokenId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut id = [0u8; 16];
        // The OS generator failing is fatal elsewhere too; an all-zero id would still
        // be unique per deployment only by luck, so fall back to a UUID v4.
        if coffer_crypto::rng::fill(&mut id).is_err() {
            id = *uuid::Uuid::new_v4().as_bytes();
        }
        Self(id)
    }
}

/// Lower-case hex, written at once: every audit entry names its caller's token, and a
/// `write!` per byte was a formatter call per digit pair on the hot path.
impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&coffer_audit::entry::hex(&self.0))
    }
}

impl std::str::FromStr for TokenId {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed("token id must be 32 hex digits"));
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| TokenError::Malformed("token id must be 32 hex digits"))?;
        }
        Ok(Self(id))
    }
}

/// What a token id was minted for; stored server-side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Administration: tenants and tokens.
    Admin,
    /// Keys and cryptography of one tenant.
    Tenant(TenantId),
}

/// The server-side record of a minted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Id.
    pub id: TokenId,
    /// Base grant.
    pub kind: TokenKind,
    /// Operator note.
    pub description: String,
    /// Mint time.
    pub created_at: Timestamp,
    /// Revocation time, once revoked.
    pub revoked_at: Option<Timestamp>,
    /// The base grant's MAC ([`grant_tag`]); `None` only on records minted before
    /// grants were bound, until the server binds them at its next unseal.
    pub grant_tag: Option<[u8; TAG_LEN]>,
}

/// What a record's tag says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagCheck {
    /// The tag covers the grant, and the revocation if the record is revoked.
    Verified,
    /// No tag: minted before grants were bound.
    Untagged,
    /// Revoked, with the tag of the unrevoked grant: revoked before revocations were
    /// bound (harmless while revoked; the binding replaces that tag).
    RevokedUnbound,
    /// The tag matches neither: the row was edited.
    Mismatch,
}

impl TokenRecord {
    /// Checks the record against its tag (constant time): an unrevoked record's tag
    /// is [`grant_tag`]; a revoked record's is [`revoked_tag`], which replaced it at
    /// revocation, so clearing `revoked_at` leaves a tag no unrevoked record has.
    pub fn check_tag(&self, root: &MacKey) -> TagCheck {
        let Some(tag) = self.grant_tag else {
            return TagCheck::Untagged;
        };
        let matches =
            |expected: [u8; TAG_LEN]| coffer_crypto::secret::constant_time_eq(&expected, &tag);
        let granted = || matches(grant_tag(root, self.id, self.kind));
        match self.revoked_at {
            None if granted() => TagCheck::Verified,
            Some(at) if matches(revoked_tag(root, self.id, self.kind, at)) => TagCheck::Verified,
            Some(_) if granted() => TagCheck::RevokedUnbound,
            _ => TagCheck::Mismatch,
        }
    }

    /// Whether the record is what its tag was made for. False for an unbound record.
    pub fn grant_verifies(&self, root: &MacKey) -> bool {
        self.check_tag(root) == TagCheck::Verified
    }
}

fn grant_bytes(kind: TokenKind) -> (u8, [u8; 16]) {
    match kind {
        TokenKind::Admin => (0u8, [0u8; 16]),
        TokenKind::Tenant(tenant) => (1u8, *tenant.as_bytes()),
    }
}

/// The tag of a revoked record: the grant and the revocation time under the token root
/// key, in a domain of its own. Written with the revocation, replacing the grant tag.
pub fn revoked_tag(root: &MacKey, id: TokenId, kind: TokenKind, at: Timestamp) -> [u8; TAG_LEN] {
    let (kind_byte, tenant) = grant_bytes(kind);
    tag_of(
        root,
        &[
            REVOKED_DOMAIN,
            &id.0,
            &[kind_byte],
            &tenant,
            &at.millis().to_be_bytes(),
        ]
        .concat(),
    )
}

/// The MAC binding a token id to its base grant, stored with the record. Fixed-length
/// fields only, so no two grants share an encoding.
pub fn grant_tag(root: &MacKey, id: TokenId, kind: TokenKind) -> [u8; TAG_LEN] {
    let (kind_byte, tenant) = grant_bytes(kind);
    tag_of(root, &[GRANT_DOMAIN, &id.0, &[kind_byte], &tenant].concat())
}

/// The 32-byte tag of an HMAC-SHA256 key (the root, and every tag in the chain, are
/// 32-byte HMAC-SHA256 keys by construction: `MacKey::from_bytes`).
fn tag_of(key: &MacKey, data: &[u8]) -> [u8; TAG_LEN] {
    key.sign(data).try_into().unwrap_or([0u8; TAG_LEN])
}

/// A decoded token. The tag is a bearer secret, so `Debug` elides it.
#[derive(Clone)]
pub struct Token {
    id: TokenId,
    caveats: Vec<Caveat>,
    /// Each caveat's bytes as received (or as made): what the tag chain covers and what
    /// `encode` writes, so the MAC is over what was sent, not over a re-serialisation.
    texts: Vec<String>,
    tag: [u8; TAG_LEN],
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("caveats", &self.caveats)
            .finish_non_exhaustive()
    }
}

fn chain(key: &[u8], data: &[u8]) -> [u8; TAG_LEN] {
    // A 32-byte tag is always a valid HMAC key; the root is 32 bytes by construction.
    match MacKey::from_bytes(key) {
        Ok(mac) => tag_of(&mac, data),
        Err(_) => [0u8; TAG_LEN],
    }
}

/// The tag chain over `texts` from the root tag of `id`.
fn chain_over(root: &MacKey, id: TokenId, texts: &[String]) -> [u8; TAG_LEN] {
    let mut tag = tag_of(root, &[DOMAIN, &id.0].concat());
    for text in texts {
        tag = chain(&tag, text.as_bytes());
    }
    tag
}

impl Token {
    /// Mints a token with `caveats` under the deployment's `root` key. Refuses a caveat
    /// whose text would not parse back to itself (a key reference holding a `,` would
    /// otherwise come back as two keys).
    pub fn mint(root: &MacKey, id: TokenId, caveats: Vec<Caveat>) -> Result<Self, TokenError> {
        let texts = caveats
            .iter()
            .map(Caveat::to_text)
            .collect::<Result<Vec<_>, _>>()?;
        let tag = chain_over(root, id, &texts);
        Ok(Self {
            id,
            caveats,
            texts,
            tag,
        })
    }

    /// A narrower token, made offline by the holder.
    pub fn attenuate(&self, caveat: Caveat) -> Result<Self, TokenError> {
        if self.caveats.len() >= MAX_CAVEATS {
            return Err(TokenError::Malformed("too many caveats"));
        }
        let text = caveat.to_text()?;
        let tag = chain(&self.tag, text.as_bytes());
        let mut caveats = self.caveats.clone();
        caveats.push(caveat);
        let mut texts = self.texts.clone();
        texts.push(text);
        Ok(Self {
            id: self.id,
            caveats,
            texts,
            tag,
        })
    }

    /// Checks the tag chain, over the caveats' bytes as received, against the root key
    /// (constant-time comparison).
    pub fn verify(&self, root: &MacKey) -> Result<(), TokenError> {
        let expected = chain_over(root, self.id, &self.texts);
        if coffer_crypto::secret::constant_time_eq(&expected, &self.tag) {
            Ok(())
        } else {
            Err(TokenError::BadTag)
        }
    }

    /// The id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The caveats, in order.
    pub fn caveats(&self) -> &[Caveat] {
        &self.caveats
    }

    /// The bearer text.
    pub fn encode(&self) -> String {
        let mut bytes = vec![FORMAT];
        bytes.extend_from_slice(&self.id.0);
        bytes.push(self.texts.len() as u8); // bounded by MAX_CAVEATS
        for text in &self.texts {
            bytes.extend_from_slice(&(text.len() as u16).to_be_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
        bytes.extend_from_slice(&self.tag);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses bearer text. Never panics; any damage is `Malformed`.
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(TokenError::Malformed("not a Coffer token"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Malformed("invalid base64url"))?;
        let mut rest = bytes.as_slice();
        let mut take = |n: usize| -> Result<&[u8], TokenError> {
            if rest.len() < n {
                return Err(TokenError::Malformed("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        if take(1)? != [FORMAT] {
            return Err(TokenError::Malformed("unknown token format"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(take(16)?);
        let count = usize::from(take(1)?[0]);
        if count > MAX_CAVEATS {
            return Err(TokenError::Malformed("too many caveats"));
        }
        let mut caveats = Vec::with_capacity(count);
        let mut texts = Vec::with_capacity(count);
        for _ in 0..count {
            let len = take(2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let text = std::str::from_utf8(take(len)?)
                .map_err(|_| TokenError::Malformed("caveat is not UTF-8"))?;
            caveats.push(text.parse()?);
            texts.push(text.to_owned());
        }
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(take(TAG_LEN)?);
        if !rest.is_empty() {
            return Err(TokenError::Malformed("trailing bytes"));
        }
        Ok(Self {
            id: TokenId(id),
            caveats,
            texts,
            tag,
        })
    }
}

#[cfg(test)]
mod tests;
