//! The state file: what custody keeps on disk, and how it is written.
//!
//! JSON, so an operator can read which method and generations a file holds. Every
//! secret in it is sealed under the unseal key. Writes go to a temp file in the same
//! directory (mode 0600), are fsynced, renamed over the old file and the directory is
//! fsynced, so a crash leaves either the old state or the new one, never a mix.

use std::collections::BTreeSet;
use std::fs::{self, File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::passphrase::{Argon2Params, SALT_LEN};

/// The only format this build reads and writes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Everything custody persists.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateFile {
    pub(crate) format: u32,
    pub(crate) method: MethodState,
    /// A fixed constant sealed under the unseal key (see `roots::verification_blob`).
    #[serde(with = "b64")]
    pub(crate) verification: Vec<u8>,
    pub(crate) current: u32,
    pub(crate) roots: Vec<RootEntry>,
}

/// How the unseal key is held, with that method's public parameters.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum MethodState {
    Shamir {
        shares: u8,
        threshold: u8,
        /// One tag per share, in x order (`shamir::tag`), made at init, so a share is
        /// checked on its own before it takes a slot. Absent from files made before
        /// tags existed: their shares are accepted unauthenticated, as then.
        #[serde(default, skip_serializing_if = "Vec::is_empty", with = "b64_list")]
        share_tags: Vec<Vec<u8>>,
    },
    Passphrase {
        kdf: Kdf,
        #[serde(with = "b64")]
        salt: Vec<u8>,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    KeyFile,
}

/// Named in the file so a later format can add another KDF without guessing.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kdf {
    /// Argon2id, version 0x13, 32-byte output.
    Argon2id,
}

/// One root generation, sealed under the unseal key with its generation as AAD.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RootEntry {
    pub(crate) generation: u32,
    #[serde(with = "b64")]
    pub(crate) wrapped_root: Vec<u8>,
}

/// Whether a write may replace an existing file.
#[derive(Clone, Copy)]
pub(crate) enum WriteMode {
    /// Init: an existing file holds the only copy of other root keys.
    CreateNew,
    /// Rotation and retirement.
    Replace,
}

impl StateFile {
    /// Reads and checks a state file.
    pub(crate) fn load(path: &Path) -> Result<Self, Error> {
        let bytes = fs::read(path).map_err(|e| Error::io("reading state file", path, e))?;
        let state: Self = serde_json::from_slice(&bytes).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        })?;
        state.check().map_err(|reason| Error::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        Ok(state)
    }

    /// The invariants every loaded file must hold; a file failing them was edited or
    /// damaged, and custody refuses it rather than guess.
    fn check(&self) -> Result<(), &'static str> {
        if self.format != FORMAT_VERSION {
            return Err("unsupported format version");
        }
        match &self.method {
            MethodState::Shamir {
                shares,
                threshold,
                share_tags,
            } => {
                if *threshold == 0 || threshold > shares {
                    return Err("shamir threshold must be between 1 and the share count");
                }
                if !share_tags.is_empty()
                    && (share_tags.len() != usize::from(*shares)
                        || share_tags.iter().any(|t| t.len() != crate::shamir::TAG_LEN))
                {
                    return Err("shamir share tags must be one 32-byte tag per share");
                }
            }
            MethodState::Passphrase {
                salt,
                memory_kib,
                iterations,
                parallelism,
                ..
            } => {
                if salt.len() != SALT_LEN {
                    return Err("argon2id salt must be 16 bytes");
                }
                Argon2Params::new(*memory_kib, *iterations, *parallelism)
                    .map_err(|_| "argon2id parameters out of range")?;
            }
            MethodState::KeyFile => {}
        }
        let mut seen = BTreeSet::new();
        if !self.roots.iter().all(|r| seen.insert(r.generation)) {
            return Err("a root generation appears twice");
        }
        if !seen.contains(&self.current) {
            return Err("the current generation has no root");
        }
        Ok(())
    }

    /// Writes the state atomically with mode 0600.
    pub(crate) fn store(&self, path: &Path, mode: WriteMode) -> Result<(), Error> {
        let mut json = serde_json::to_vec_pretty(self).map_err(Error::Encode)?;
        json.push(b'\n');
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".coffer-state-")
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating temp file in", dir, e))?;
        tmp.write_all(&json)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| Error::io("writing temp file in", dir, e))?;
        let persisted = match mode {
            WriteMode::CreateNew => tmp.persist_noclobber(path),
            WriteMode::Replace => tmp.persist(path),
        };
        if let Err(e) = persisted {
            return Err(match e.error.kind() {
                std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                    path: path.to_owned(),
                },
                _ => Error::io("renaming temp file to", path, e.error),
            });
        }
        sync_dir(dir)
    }
}

/// Makes a rename or create in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, e))
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

mod b64_list {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|bytes| STANDARD.encode(bytes)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .collect()
    }
}
