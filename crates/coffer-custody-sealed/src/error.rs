//! The crate's one error type, for its file handling; the public API speaks
//! [`CustodyError`], so each variant maps to one of its kinds here and nowhere else.
//!
//! No variant carries key bytes or passphrases: payloads are paths, modes, static
//! reasons and the typed source.

use std::io;
use std::path::PathBuf;

use coffer_core::CustodyError;
use thiserror::Error;

/// Failures reading or writing custody's files.
#[derive(Debug, Error)]
pub(crate) enum Error {
    /// The operating system refused a file operation.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The state file is not JSON of this format.
    #[error("state file {} does not parse: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The state file parses but breaks an invariant.
    #[error("state file {} is invalid: {reason}", path.display())]
    Invalid { path: PathBuf, reason: &'static str },
    /// Encoding the state (cannot happen with these types, kept typed rather than
    /// unwrapped).
    #[error("encoding the state file: {0}")]
    Encode(#[source] serde_json::Error),
    /// Init would replace an existing file, and with it the only copy of its root keys.
    #[error("{} already exists; refusing to replace it", path.display())]
    AlreadyExists { path: PathBuf },
    /// A key file others could read.
    #[error(
        "key file {} has mode {mode:04o}; it must not be accessible to group or others \
         (chmod 600)",
        path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for CustodyError {
    fn from(error: Error) -> Self {
        match error {
            Error::Io { .. } | Error::Parse { .. } | Error::Invalid { .. } | Error::Encode(_) => {
                CustodyError::Io(error.to_string())
            }
            Error::AlreadyExists { .. } | Error::InsecureKeyFile { .. } => {
                CustodyError::Config(error.to_string())
            }
        }
    }
}
