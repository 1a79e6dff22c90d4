//! `--evidence-dir DIR`: one JSON line per step appended to `DIR/evidence.jsonl`, and
//! `DIR/MANIFEST.sha256` rewritten at the end of every run.
//!
//! The manifest is in `sha256sum` format (`<hex>  <name>`), so `cd DIR && sha256sum
//! -c MANIFEST.sha256` checks it without Coffer. It covers every regular file directly
//! in DIR except itself, sorted by name: evidence from several runs (and anything an
//! operator adds, such as a saved terminal log) is sealed together. Subdirectories and
//! symbolic links are left out: a link could make the manifest vouch for a file outside
//! the evidence.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use coffer_crypto::hash::sha256;

/// The evidence log's file name.
pub const LOG: &str = "evidence.jsonl";
/// The manifest's file name.
pub const MANIFEST: &str = "MANIFEST.sha256";

/// An open evidence directory.
pub struct Evidence {
    dir: PathBuf,
    log: File,
}

impl Evidence {
    /// Creates DIR if needed and opens its log for appending.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the evidence directory {}", dir.display()))?;
        let path = dir.join(LOG);
        let log =
            private_append(&path).with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            log,
        })
    }

    /// Appends one line. Written in one call and flushed, so an interrupted run leaves
    /// whole lines.
    pub fn append(&mut self, line: &serde_json::Value) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(line).context("cannot encode evidence")?;
        bytes.push(b'\n');
        self.log
            .write_all(&bytes)
            .and_then(|()| self.log.flush())
            .with_context(|| format!("cannot write {}", self.dir.join(LOG).display()))
    }

    /// Writes the manifest; answers its path.
    pub fn seal(self) -> anyhow::Result<PathBuf> {
        self.log
            .sync_all()
            .with_context(|| format!("cannot sync {}", self.dir.join(LOG).display()))?;
        write_manifest(&self.dir)
    }
}

/// Hashes every regular file of `dir` but the manifest into `dir/MANIFEST.sha256`.
pub fn write_manifest(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        // `file_type` does not follow links.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            bail!("{} holds a file whose name is not UTF-8", dir.display());
        };
        if name == MANIFEST || name == partial_name() {
            continue;
        }
        if name.contains(['\n', '\r', '\\']) {
            // sha256sum escapes these; refusing is simpler than matching its escaping.
            bail!(
                "{} holds a file whose name has a newline or backslash",
                dir.display()
            );
        }
        names.push(name);
    }
    names.sort();
    let mut manifest = String::new();
    for name in names {
        let path = dir.join(&name);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        manifest.push_str(&format!("{}  {name}\n", hex::encode(sha256(&[&bytes]))));
    }
    let path = dir.join(MANIFEST);
    // Written beside and renamed, so a reader never sees half a manifest.
    let partial = dir.join(partial_name());
    std::fs::write(&partial, manifest)
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn partial_name() -> String {
    format!(".{MANIFEST}.partial")
}

/// Opens for appending, created mode 0600: with `--show-commands` the log holds
/// request bodies (encryption contexts, ciphertexts).
fn private_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_covers_every_file_but_itself() {
        let dir = std::env::temp_dir().join(format!("coffer-evidence-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut evidence = Evidence::open(&dir).unwrap();
        evidence.append(&serde_json::json!({"step": "a"})).unwrap();
        std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let manifest = std::fs::read_to_string(evidence.seal().unwrap()).unwrap();
        let lines: Vec<&str> = manifest.lines().collect();
        assert_eq!(lines.len(), 2, "{manifest}");
        assert!(lines[0].ends_with("  evidence.jsonl"), "{manifest}");
        assert_eq!(
            lines[1],
            format!("{}  notes.txt", hex::encode(sha256(&[b"hello"])))
        );
        // A second run rewrites it, still without itself.
        let again = std::fs::read_to_string(write_manifest(&dir).unwrap()).unwrap();
        assert_eq!(again, manifest);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
