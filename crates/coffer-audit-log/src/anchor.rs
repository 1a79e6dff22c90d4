//! Anchors: copies of signed checkpoints outside Coffer's database, so that whoever
//! controls the database cannot rewrite the log and have the server sign it again.
//!
//! The directory anchor is write-once: `checkpoint-<size>.txt` is created exclusively
//! and never replaced (a different note for a size already anchored is refused), and
//! `latest` only ever moves to a larger size. At start the newest anchored checkpoint
//! is read back: the server will sign nothing that does not extend it.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where checkpoints are copied outside Coffer's own storage.
#[derive(Debug, Clone, Default)]
pub struct Anchor {
    /// A directory: `checkpoint-<size>.txt` and `latest`.
    pub dir: Option<PathBuf>,
    /// An HTTP endpoint that receives each checkpoint as a `text/plain` POST.
    pub url: Option<String>,
}

/// Anchoring failures.
#[derive(Debug, Error)]
pub enum AnchorError {
    /// The directory could not be written or read.
    #[error("anchor directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A different checkpoint of this size is already anchored: never overwritten.
    #[error("a different checkpoint of size {0} is already anchored; refusing to replace it")]
    Conflicting(u64),
    /// The HTTP anchor failed or refused.
    #[error("anchoring to {url}: {reason}")]
    Http {
        /// The endpoint.
        url: String,
        /// What went wrong (status or transport error).
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AnchorError + '_ {
    move |source| AnchorError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `checkpoint-<size>.txt` once (an identical existing copy is fine) and moves
/// `latest` forward to it.
pub fn write_dir(dir: &Path, size: u64, note: &str) -> Result<(), AnchorError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("checkpoint-{size}.txt"));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(note.as_bytes()).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let existing = std::fs::read_to_string(&path).map_err(io(&path))?;
            if existing != note {
                return Err(AnchorError::Conflicting(size));
            }
        }
        Err(e) => return Err(io(&path)(e)),
    }
    let newest = newest_in_dir(dir)?.map(|(s, _)| s);
    if newest.is_none_or(|n| n <= size) {
        // A unique temporary name: two checkpoints may be anchored at once.
        let tmp = dir.join(format!(".latest.{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, note).map_err(io(&tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, dir.join("latest")).map_err(io(dir))?;
    }
    Ok(())
}

/// The anchored checkpoint of the largest size, `(size, note)`, if any.
pub fn newest_in_dir(dir: &Path) -> Result<Option<(u64, String)>, AnchorError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut newest: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(size) = name
            .to_str()
            .and_then(|n| n.strip_prefix("checkpoint-"))
            .and_then(|n| n.strip_suffix(".txt"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if newest.as_ref().is_none_or(|(s, _)| size > *s) {
            newest = Some((size, entry.path()));
        }
    }
    match newest {
        None => Ok(None),
        Some((size, path)) => {
            let note = std::fs::read_to_string(&path).map_err(io(&path))?;
            Ok(Some((size, note)))
        }
    }
}

/// POSTs a checkpoint to an HTTP anchor; any non-2xx answer is a failure.
pub async fn post(url: &str, note: &str) -> Result<(), AnchorError> {
    let failed = |reason: String| AnchorError::Http {
        url: url.to_owned(),
        reason,
    };
    // reqwest speaks TLS through rustls with the process's provider (aws-lc-rs).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let response = client
        .post(url)
        .header("content-type", "text/plain; charset=utf-8")
        .body(note.to_owned())
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(failed(format!("the anchor answered {}", response.status())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("coffer-anchor-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn anchored_files_are_never_replaced() {
        let dir = dir();
        write_dir(&dir, 5, "note five").unwrap();
        write_dir(&dir, 5, "note five").unwrap();
        assert!(matches!(
            write_dir(&dir, 5, "forged five"),
            Err(AnchorError::Conflicting(5))
        ));
        assert_eq!(
            std::fs::read_to_string(dir.join("checkpoint-5.txt")).unwrap(),
            "note five"
        );
    }

    #[test]
    fn latest_only_moves_forward_and_newest_is_read_back() {
        let dir = dir();
        write_dir(&dir, 9, "nine").unwrap();
        write_dir(&dir, 4, "four").unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("latest")).unwrap(), "nine");
        assert_eq!(newest_in_dir(&dir).unwrap(), Some((9, "nine".to_owned())));
        assert_eq!(newest_in_dir(&dir.join("absent")).unwrap(), None);
    }
}
