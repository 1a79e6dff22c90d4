//! The backup bundle file.
//!
//! ```text
//! "CFRBKUP\n" (8) ‖ header length (4, BE) ‖ header (JSON) ‖ sealed snapshot ‖ SHA-256 (32)
//! ```
//!
//! - The **header** is readable without custody: format, time, custody kind, schema,
//!   row counts, audit log size and newest checkpoint, and the bundle's data key
//!   wrapped by custody (`wrapped_key`, associated data `coffer/backup/v1`).
//! - The **sealed snapshot** is [`Snapshot::to_json`] under XAES-256-GCM with that
//!   fresh random data key; the associated data is everything before it (magic, length,
//!   header), so its tag is the bundle's MAC: a changed header or body fails it. Only a
//!   custody holding the root key that wrapped the data key can open it: the same
//!   deployment's custody (sealed state file or HSM token), not another's.
//! - The **trailer** is SHA-256 over all bytes before it: a flipped byte or a cut file
//!   is found offline, without custody ([`inspect`]); the manifest beside the bundle
//!   carries the hash of the whole file.
//!
//! Parsing never panics; every refusal says which check failed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::AeadKey;
use coffer_crypto::hash::sha256;
use serde_json::{Value, json};
use thiserror::Error;

use super::Snapshot;
use crate::custody::{Custody, CustodyError};
use crate::time::Timestamp;

const MAGIC: &[u8; 8] = b"CFRBKUP\n";
const FORMAT: u64 = 1;
const KEY_AAD: &[u8] = b"coffer/backup/v1";
const TRAILER: usize = 32;
/// Headers are small (counts, a wrapped key): a larger length is a damaged file.
const MAX_HEADER: usize = 1 << 20;

/// Why a bundle was refused.
#[derive(Debug, Error)]
pub enum BundleError {
    /// Not a Coffer backup bundle at all.
    #[error("not a Coffer backup bundle (its first bytes are not the bundle's magic)")]
    NotABundle,
    /// Shorter than its own structure says.
    #[error("the bundle is truncated: {0}")]
    Truncated(&'static str),
    /// The trailer hash does not match.
    #[error(
        "the bundle's SHA-256 trailer does not match its contents: the file is corrupted or truncated"
    )]
    HashMismatch,
    /// A format this Coffer does not read.
    #[error("bundle format {0} is not one this Coffer reads (it reads format 1)")]
    UnknownFormat(u64),
    /// The header does not parse.
    #[error("the bundle's header is malformed: {0}")]
    Header(String),
    /// Made under another kind of custody.
    #[error(
        "the bundle was made under {bundle} custody and this deployment has {ours} custody: only the custody that made a bundle can restore it"
    )]
    CustodyKind {
        /// The bundle's custody kind.
        bundle: String,
        /// This deployment's.
        ours: &'static str,
    },
    /// The data key does not unwrap under this custody.
    #[error(
        "the bundle's data key does not unwrap under this deployment's custody root: it was made by another deployment's custody (or under a root generation retired since) ({0})"
    )]
    ForeignCustody(String),
    /// Custody could not be asked (sealed, HSM away).
    #[error("custody cannot open the bundle now: {0}")]
    Custody(CustodyError),
    /// The sealed snapshot failed authentication.
    #[error(
        "the bundle's MAC does not verify: its header or contents were altered after it was made"
    )]
    Mac,
    /// The opened snapshot does not parse.
    #[error("the bundle's snapshot is malformed: {0}")]
    Snapshot(String),
    /// Sealing failed.
    #[error("cannot seal the bundle: {0}")]
    Seal(String),
    /// The manifest beside the bundle does not match it.
    #[error("the manifest does not match the bundle: {0}")]
    Manifest(String),
}

/// What a bundle's header says (readable without custody).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHeader {
    /// When the snapshot was taken.
    pub created_at: Timestamp,
    /// The custody kind that wrapped the data key (`sealed`, `pkcs11`).
    pub custody: String,
    /// The schema migrations of the store it was read from.
    pub schema: Vec<i64>,
    /// Rows per table.
    pub counts: Vec<(String, u64)>,
    /// Audit entries in the snapshot.
    pub audit_size: u64,
    /// The newest stored checkpoint's size.
    pub checkpoint_size: Option<u64>,
    wrapped_key: Vec<u8>,
}

impl BundleHeader {
    fn to_json(&self) -> Vec<u8> {
        let counts: serde_json::Map<String, Value> = self
            .counts
            .iter()
            .map(|(name, n)| (name.clone(), json!(n)))
            .collect();
        serde_json::to_vec(&json!({
            "format": FORMAT,
            "created_at": self.created_at.millis(),
            "created": self.created_at.to_rfc3339(),
            "custody": self.custody,
            "schema": self.schema,
            "counts": counts,
            "audit_size": self.audit_size,
            "checkpoint_size": self.checkpoint_size,
            "wrapped_key": STANDARD.encode(&self.wrapped_key),
        }))
        .unwrap_or_default()
    }

    fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let bad = |what: &str| BundleError::Header(what.to_owned());
        let value: Value = serde_json::from_slice(bytes).map_err(|_| bad("not JSON"))?;
        let format = value
            .get("format")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no format"))?;
        if format != FORMAT {
            return Err(BundleError::UnknownFormat(format));
        }
        let text = |name: &str| value.get(name).and_then(Value::as_str);
        let counts = value
            .get("counts")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no counts"))?
            .iter()
            .map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("a count that is not a number"))?;
        let schema = value
            .get("schema")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no schema"))?
            .iter()
            .map(Value::as_i64)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("a schema version that is not an integer"))?;
        Ok(Self {
            created_at: Timestamp::from_millis(
                value
                    .get("created_at")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| bad("no created_at"))?,
            ),
            custody: text("custody").ok_or_else(|| bad("no custody"))?.to_owned(),
            schema,
            counts,
            audit_size: value
                .get("audit_size")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("no audit_size"))?,
            checkpoint_size: value.get("checkpoint_size").and_then(Value::as_u64),
            wrapped_key: STANDARD
                .decode(text("wrapped_key").ok_or_else(|| bad("no wrapped_key"))?)
                .map_err(|_| bad("wrapped_key is not base64"))?,
        })
    }
}

/// Seals `snapshot`, taken at `at`, into a bundle under a fresh data key wrapped by
/// `custody`.
pub fn seal(
    snapshot: &Snapshot,
    custody: &dyn Custody,
    at: Timestamp,
) -> Result<Vec<u8>, BundleError> {
    let key = AeadKey::generate().map_err(|e| BundleError::Seal(e.to_string()))?;
    let wrapped_key = custody
        .wrap(KEY_AAD, key.expose_secret())
        .map_err(|e| BundleError::Seal(e.to_string()))?;
    let header = BundleHeader {
        created_at: at,
        custody: custody.kind().to_owned(),
        schema: snapshot.schema.clone(),
        counts: snapshot.counts(),
        audit_size: snapshot.audit_size(),
        checkpoint_size: snapshot.checkpoint_size(),
        wrapped_key,
    }
    .to_json();
    let mut out = Vec::with_capacity(header.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&header);
    let sealed = key
        .seal(&out, &snapshot.to_json())
        .map_err(|e| BundleError::Seal(e.to_string()))?;
    out.extend_from_slice(&sealed);
    let trailer = sha256(&[&out]);
    out.extend_from_slice(&trailer);
    Ok(out)
}

/// The parts of a bundle whose structure and trailer checked out.
struct Parts<'a> {
    header: BundleHeader,
    aad: &'a [u8],
    sealed: &'a [u8],
}

fn split(bytes: &[u8]) -> Result<Parts<'_>, BundleError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let Some(body_len) = bytes.len().checked_sub(TRAILER) else {
        return Err(BundleError::Truncated("shorter than its trailer"));
    };
    let (body, trailer) = bytes.split_at(body_len);
    let length: [u8; 4] = body
        .get(MAGIC.len()..MAGIC.len() + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or(BundleError::Truncated("shorter than its header"))?;
    let header_len = u32::from_be_bytes(length) as usize;
    let header_end = MAGIC.len() + 4 + header_len;
    if header_len > MAX_HEADER || header_end > body.len() {
        // Either the length field was damaged or the file was cut: the trailer decides.
        return Err(if sha256(&[body]) != trailer {
            BundleError::HashMismatch
        } else {
            BundleError::Truncated("shorter than its header")
        });
    }
    if sha256(&[body]) != trailer {
        return Err(BundleError::HashMismatch);
    }
    let header = BundleHeader::from_json(&body[MAGIC.len() + 4..header_end])?;
    Ok(Parts {
        header,
        aad: &body[..header_end],
        sealed: &body[header_end..],
    })
}

/// The checks that need no custody: magic, structure, trailer hash, header. Returns
/// the header.
pub fn inspect(bytes: &[u8]) -> Result<BundleHeader, BundleError> {
    split(bytes).map(|parts| parts.header)
}

/// Every check, with custody: [`inspect`]'s, then the data key unwrapped by `custody`,
/// the MAC, and the snapshot's structure.
pub fn open(bytes: &[u8], custody: &dyn Custody) -> Result<(BundleHeader, Snapshot), BundleError> {
    let parts = split(bytes)?;
    if parts.header.custody != custody.kind() {
        return Err(BundleError::CustodyKind {
            bundle: parts.header.custody.clone(),
            ours: custody.kind(),
        });
    }
    let raw = custody
        .unwrap(KEY_AAD, &parts.header.wrapped_key)
        .map_err(|error| match error {
            CustodyError::Unwrap(why) => BundleError::ForeignCustody(why.to_owned()),
            other => BundleError::Custody(other),
        })?;
    let key = AeadKey::from_bytes(raw.expose_secret())
        .map_err(|e| BundleError::ForeignCustody(e.to_string()))?;
    let plain = key
        .open(parts.aad, parts.sealed)
        .map_err(|_| BundleError::Mac)?;
    let snapshot = Snapshot::from_json(plain.expose_secret()).map_err(BundleError::Snapshot)?;
    Ok((parts.header, snapshot))
}

/// SHA-256 of a whole file, lower-case hex (the manifest's line).
pub fn file_hash(bytes: &[u8]) -> String {
    sha256(&[bytes])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The manifest of a bundle stored as `file_name`: one `sha256sum` line, so
/// `sha256sum -c` checks it too.
pub fn manifest(bytes: &[u8], file_name: &str) -> String {
    format!("{}  {file_name}\n", file_hash(bytes))
}

/// Checks `bytes` against a manifest's text: one line, the SHA-256 of the whole file.
pub fn check_manifest(text: &str, bytes: &[u8]) -> Result<(), BundleError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err(BundleError::Manifest(
            "it should be one line: SHA-256, two spaces, the file name".into(),
        ));
    };
    let hash = line.split_whitespace().next().unwrap_or_default();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BundleError::Manifest(
            "its first field is not a SHA-256".into(),
        ));
    }
    let actual = file_hash(bytes);
    if !hash.eq_ignore_ascii_case(&actual) {
        return Err(BundleError::Manifest(format!(
            "it records SHA-256 {hash}, the file has {actual}"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
