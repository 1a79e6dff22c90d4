//! The key-file method (development): the unseal key as 32 raw bytes in a file that
//! only its owner may access.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use coffer_core::CustodyError;
use coffer_crypto::xaes::KEY_LEN;
use coffer_crypto::{AeadKey, SecretBytes};
use zeroize::Zeroizing;

use crate::error::Error;

/// Writes a fresh key to `path`, created new with mode 0600, and returns it.
pub(crate) fn create(path: &Path) -> Result<AeadKey, CustodyError> {
    let bytes =
        SecretBytes::random(KEY_LEN).map_err(|_| CustodyError::Backend("random generator"))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists {
                path: path.to_owned(),
            },
            _ => Error::io("creating key file", path, e),
        })?;
    file.write_all(bytes.expose_secret())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("writing key file", path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::state::sync_dir(dir)?;
    }
    AeadKey::from_bytes(bytes.expose_secret()).map_err(|_| CustodyError::Backend("unseal key"))
}

/// Reads the key at `path`, refusing a file that group or others may access.
pub(crate) fn read(path: &Path) -> Result<AeadKey, CustodyError> {
    let file = File::open(path).map_err(|e| Error::io("opening key file", path, e))?;
    // The mode comes from the open file, so it is the file we read, not one swapped in
    // after a check by path.
    let meta = file
        .metadata()
        .map_err(|e| Error::io("reading metadata of key file", path, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecureKeyFile {
            path: path.to_owned(),
            mode,
        }
        .into());
    }
    if !meta.is_file() {
        return Err(CustodyError::Config(format!(
            "key file {} is not a regular file",
            path.display()
        )));
    }
    // One byte more than a key, to tell a long file from a right one without reading
    // an arbitrary amount.
    let mut bytes = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
    file.take(KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading key file", path, e))?;
    if bytes.len() != KEY_LEN {
        return Err(CustodyError::UnsealFailed(
            "the key file does not hold exactly 32 bytes",
        ));
    }
    AeadKey::from_bytes(&bytes).map_err(|_| CustodyError::Backend("unseal key"))
}
