//! Sidecars: the metadata beside each blob (seed 003 §2, `{key_id, wrapped_dek,
//! dek_version}`), read from a directory of JSON files or from one JSON-lines file.
//!
//! Which provider a sidecar names is read from its `key_id`: `env`/`env:…` (the legacy
//! key in an environment variable, `BLOB_KEY` in seed 003), `file`/`file:…` (the legacy
//! key in a file), `dpapi`/`dpapi:…` (Windows DPAPI, which only that host can open);
//! anything else is a Coffer key id or `alias/NAME`, with `dek_version` the version
//! that wrapped it. Field names other than these are mapped with `--field`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The sidecar fields Coffer reads, under the names the caller's files use.
#[derive(Clone)]
pub struct FieldNames {
    pub id: String,
    pub key_id: String,
    pub wrapped_dek: String,
    pub dek_version: String,
    pub legacy_alg: String,
    pub blob: String,
    pub content_hash: String,
    pub track_id: String,
}

impl Default for FieldNames {
    fn default() -> Self {
        Self {
            id: "id".into(),
            key_id: "key_id".into(),
            wrapped_dek: "wrapped_dek".into(),
            dek_version: "dek_version".into(),
            legacy_alg: "legacy_alg".into(),
            blob: "blob".into(),
            content_hash: "content_sha256".into(),
            track_id: "track_id".into(),
        }
    }
}

impl FieldNames {
    /// Applies `OURS=THEIRS` pairs (`--field wrapped_dek=edk`).
    pub fn mapped(pairs: &[(String, String)]) -> anyhow::Result<Self> {
        let mut names = Self::default();
        for (ours, theirs) in pairs {
            let slot = match ours.as_str() {
                "id" => &mut names.id,
                "key_id" => &mut names.key_id,
                "wrapped_dek" => &mut names.wrapped_dek,
                "dek_version" => &mut names.dek_version,
                "legacy_alg" => &mut names.legacy_alg,
                "blob" => &mut names.blob,
                "content_sha256" => &mut names.content_hash,
                "track_id" => &mut names.track_id,
                other => bail!(
                    "unknown sidecar field `{other}` (id, key_id, wrapped_dek, dek_version, legacy_alg, blob, content_sha256, track_id)"
                ),
            };
            theirs.clone_into(slot);
        }
        Ok(names)
    }
}

/// Where a legacy data key's wrapping key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LegacySource {
    Env,
    File,
    Dpapi,
}

/// How a legacy writer wrapped the data key (the `legacy_alg` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyAlg {
    /// `nonce(12) ‖ ciphertext ‖ tag(16)`, no associated data (the default).
    AesGcm,
    /// RFC 3394.
    AesKw,
}

/// Which provider wrapped a sidecar's data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    Legacy {
        source: LegacySource,
        alg: LegacyAlg,
    },
    Coffer {
        key: String,
        version: Option<u32>,
    },
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Legacy { source, .. } => {
                let name = match source {
                    LegacySource::Env => "legacy env",
                    LegacySource::File => "legacy file",
                    LegacySource::Dpapi => "legacy dpapi",
                };
                f.write_str(name)
            }
            Self::Coffer { key, version } => match version {
                Some(version) => write!(f, "coffer {key} v{version}"),
                None => write!(f, "coffer {key} (no version)"),
            },
        }
    }
}

/// Where a sidecar was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// One JSON file (rewritten in place).
    File(PathBuf),
    /// Line `n` (1-based) of the JSON-lines input.
    Line(usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// One readable sidecar. The wrapped key is ciphertext, never a secret.
pub struct Sidecar {
    pub id: String,
    pub origin: Origin,
    pub provider: Provider,
    pub wrapped_dek: Vec<u8>,
    /// Every field as read, so a rewrite keeps the caller's other fields.
    pub fields: Map<String, Value>,
}

impl Sidecar {
    /// The sidecar after migration: the same fields, with the key, wrapped key and
    /// version replaced, `legacy_alg` gone, and the track id its data key is
    /// registered under at Coffer when it is tracked.
    pub fn migrated(
        &self,
        names: &FieldNames,
        key: &str,
        version: u32,
        wrapped: &[u8],
        track_id: Option<&str>,
    ) -> Value {
        let mut fields = self.fields.clone();
        if let Some(track_id) = track_id {
            fields.insert(names.track_id.clone(), Value::from(track_id));
        }
        fields.insert(names.key_id.clone(), Value::from(key));
        fields.insert(
            names.wrapped_dek.clone(),
            Value::from(STANDARD.encode(wrapped)),
        );
        fields.insert(names.dek_version.clone(), Value::from(version));
        fields.remove(&names.legacy_alg);
        Value::Object(fields)
    }

    /// A string field, if present.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

/// A sidecar that could not be read, and why.
pub struct Unreadable {
    /// The id it would have had without an `id` field (file name, or `line N`), so a
    /// fixed file later replaces its journal row.
    pub id: String,
    pub origin: Origin,
    pub reason: String,
}

/// Everything read from `--from`.
pub struct Inputs {
    pub sidecars: Vec<Sidecar>,
    pub unreadable: Vec<Unreadable>,
    /// True when `--from` was one JSON-lines file (rewritten to `--out`, not in place).
    pub lines: bool,
}

/// Reads a directory (every `*.json` below it, in path order) or a JSON-lines file.
pub fn read(from: &Path, names: &FieldNames) -> anyhow::Result<Inputs> {
    let meta =
        std::fs::metadata(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut inputs = Inputs {
        sidecars: Vec::new(),
        unreadable: Vec::new(),
        lines: !meta.is_dir(),
    };
    let mut parsed = Vec::new();
    if meta.is_dir() {
        let mut files = Vec::new();
        collect_json_files(from, &mut files)?;
        files.sort();
        for path in files {
            let id = path
                .strip_prefix(from)
                .unwrap_or(&path)
                .with_extension("")
                .display()
                .to_string();
            let origin = Origin::File(path.clone());
            let parsed_one = std::fs::read(&path)
                .map_err(|error| format!("cannot read: {error}"))
                .and_then(|bytes| parse(&bytes, names, Some(id.clone())));
            parsed.push((id, origin, parsed_one));
        }
    } else {
        let text = std::fs::read_to_string(from)
            .with_context(|| format!("cannot read {}", from.display()))?;
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let origin = Origin::Line(index + 1);
            parsed.push((
                origin.to_string(),
                origin,
                parse(line.as_bytes(), names, None),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (id, origin, outcome) in parsed {
        match outcome {
            Ok(mut sidecar) if seen.insert(sidecar.id.clone()) => {
                sidecar.origin = origin;
                inputs.sidecars.push(sidecar);
            }
            Ok(sidecar) => inputs.unreadable.push(Unreadable {
                id,
                origin,
                reason: format!("duplicate id `{}`", sidecar.id),
            }),
            Err(reason) => inputs.unreadable.push(Unreadable { id, origin, reason }),
        }
    }
    Ok(inputs)
}

fn collect_json_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        // Hidden names are skipped: our own temporary files start with a dot.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_json_files(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one sidecar; `default_id` is the file's name for directory inputs.
pub fn parse(
    bytes: &[u8],
    names: &FieldNames,
    default_id: Option<String>,
) -> Result<Sidecar, String> {
    let fields: Map<String, Value> = match serde_json::from_slice(bytes) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err("not a JSON object".into()),
        Err(error) => return Err(format!("not JSON: {error}")),
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    let id = match (text(&names.id), default_id) {
        (Some(id), _) if !id.is_empty() => id.to_owned(),
        (_, Some(id)) => id,
        _ => return Err(format!("no `{}` field", names.id)),
    };
    let key_id =
        text(&names.key_id).ok_or_else(|| format!("no `{}` string field", names.key_id))?;
    let wrapped_dek = text(&names.wrapped_dek)
        .ok_or_else(|| format!("no `{}` string field", names.wrapped_dek))
        .and_then(|b64| {
            STANDARD
                .decode(b64)
                .map_err(|_| format!("`{}` is not base64", names.wrapped_dek))
        })?;
    let version = match fields.get(&names.dek_version) {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| format!("`{}` is not a version number", names.dek_version))?,
        ),
    };
    let provider = provider(key_id, version, text(&names.legacy_alg))?;
    Ok(Sidecar {
        id,
        origin: Origin::Line(0),
        provider,
        wrapped_dek,
        fields,
    })
}

fn provider(key_id: &str, version: Option<u32>, alg: Option<&str>) -> Result<Provider, String> {
    let scheme = key_id.split_once(':').map_or(key_id, |(scheme, _)| scheme);
    let source = match scheme {
        "env" => LegacySource::Env,
        "file" => LegacySource::File,
        "dpapi" => LegacySource::Dpapi,
        _ if key_id.is_empty() => return Err("empty key_id".into()),
        _ => {
            return Ok(Provider::Coffer {
                key: key_id.to_owned(),
                version,
            });
        }
    };
    let alg = match alg {
        None | Some("aes-gcm") => LegacyAlg::AesGcm,
        Some("aes-kw") => LegacyAlg::AesKw,
        Some(other) => return Err(format!("unknown legacy_alg `{other}` (aes-gcm, aes-kw)")),
    };
    Ok(Provider::Legacy { source, alg })
}

/// Counts by provider, for `inventory` and the run's opening line.
pub fn count_by_provider(sidecars: &[Sidecar]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for sidecar in sidecars {
        *counts.entry(sidecar.provider.to_string()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_id_names_the_provider() {
        let names = FieldNames::default();
        let legacy = parse(
            br#"{"id":"a","key_id":"env:BLOB_KEY","wrapped_dek":"AAAA"}"#,
            &names,
            None,
        )
        .unwrap();
        assert_eq!(
            legacy.provider,
            Provider::Legacy {
                source: LegacySource::Env,
                alg: LegacyAlg::AesGcm
            }
        );
        let kw = parse(
            br#"{"id":"a","key_id":"file","wrapped_dek":"AAAA","legacy_alg":"aes-kw"}"#,
            &names,
            None,
        )
        .unwrap();
        assert_eq!(
            kw.provider,
            Provider::Legacy {
                source: LegacySource::File,
                alg: LegacyAlg::AesKw
            }
        );
        let coffer = parse(
            br#"{"key_id":"alias/k","wrapped_dek":"AAAA","dek_version":"3"}"#,
            &names,
            Some("x".into()),
        )
        .unwrap();
        assert_eq!(coffer.id, "x");
        assert_eq!(
            coffer.provider,
            Provider::Coffer {
                key: "alias/k".into(),
                version: Some(3)
            }
        );
    }

    #[test]
    fn other_field_names_map_and_bad_sidecars_say_why() {
        let names = FieldNames::mapped(&[
            ("wrapped_dek".into(), "edk".into()),
            ("key_id".into(), "kid".into()),
        ])
        .unwrap();
        let sidecar = parse(br#"{"id":"a","kid":"dpapi","edk":"AAAA"}"#, &names, None).unwrap();
        let migrated = sidecar.migrated(&names, "k1", 2, b"\x01", None);
        assert_eq!(migrated["kid"], "k1");
        assert_eq!(migrated["edk"], "AQ==");
        assert_eq!(migrated["dek_version"], 2);
        assert!(migrated.get("track_id").is_none());
        let names = FieldNames::mapped(&[("track_id".into(), "tracked_as".into())]).unwrap();
        let tracked = sidecar.migrated(&names, "k1", 2, b"\x01", Some("a"));
        assert_eq!(tracked["tracked_as"], "a");
        assert!(FieldNames::mapped(&[("nope".into(), "x".into())]).is_err());
        let bad = |json: &str| {
            parse(json.as_bytes(), &FieldNames::default(), None)
                .err()
                .unwrap()
        };
        assert!(bad("[1]").contains("object"));
        assert!(bad(r#"{"key_id":"env","wrapped_dek":"AAAA"}"#).contains("`id`"));
        assert!(bad(r#"{"id":"a","key_id":"env","wrapped_dek":"!!"}"#).contains("base64"));
        assert!(
            bad(r#"{"id":"a","key_id":"env","wrapped_dek":"AAAA","legacy_alg":"rot13"}"#)
                .contains("rot13")
        );
        assert!(
            bad(r#"{"id":"a","key_id":"k","wrapped_dek":"AAAA","dek_version":-1}"#)
                .contains("version")
        );
    }
}
