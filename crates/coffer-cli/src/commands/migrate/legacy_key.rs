//! The legacy provider's key (seed 003's `BLOB_KEY`): from an environment variable or a
//! 0600 file, as base64 or hex of 16 or 32 bytes (AES-128 or AES-256).

use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::{CryptoError, SecretBytes, legacy};
use zeroize::Zeroizing;

use super::sidecar::LegacyAlg;

/// The key that wrapped legacy data keys. Never printed.
pub struct LegacyKey(SecretBytes);

impl LegacyKey {
    /// Reads it from `env` (a variable name) or `file`; `None` when neither is given.
    pub fn load(env: Option<&str>, file: Option<&Path>) -> anyhow::Result<Option<Self>> {
        let text = match (env, file) {
            (Some(_), Some(_)) => bail!("give --legacy-key-env or --legacy-key-file, not both"),
            (Some(name), None) => Zeroizing::new(
                std::env::var(name)
                    .with_context(|| format!("environment variable {name} is not set"))?,
            ),
            (None, Some(path)) => {
                refuse_shared_file(path)?;
                Zeroizing::new(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )
            }
            (None, None) => return Ok(None),
        };
        Self::decode(text.trim()).map(Some)
    }

    fn decode(text: &str) -> anyhow::Result<Self> {
        let is_hex = text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit());
        let bytes = if is_hex && matches!(text.len(), 32 | 64) {
            Zeroizing::new(hex::decode(text).context("the legacy key is not hex")?)
        } else {
            Zeroizing::new(
                STANDARD
                    .decode(text)
                    .context("the legacy key is neither hex nor base64")?,
            )
        };
        if !matches!(bytes.len(), 16 | 32) {
            bail!("the legacy key must be 16 or 32 bytes, not {}", bytes.len());
        }
        Ok(Self(SecretBytes::copy_from(&bytes)))
    }

    /// Unwraps a legacy data key.
    pub fn unwrap(&self, alg: LegacyAlg, wrapped: &[u8]) -> Result<SecretBytes, CryptoError> {
        match alg {
            LegacyAlg::AesGcm => legacy::open_aes_gcm(&self.0, wrapped, b""),
            LegacyAlg::AesKw => legacy::unwrap_aes_kw(&self.0, wrapped),
        }
    }
}

/// A key file others can read is refused, like every secret file Coffer reads.
fn refuse_shared_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_keys_of_aes_sizes_are_accepted() {
        assert!(LegacyKey::decode(&"ab".repeat(32)).is_ok());
        assert!(LegacyKey::decode(&"ab".repeat(16)).is_ok());
        assert!(LegacyKey::decode(&STANDARD.encode([1u8; 32])).is_ok());
        let err = LegacyKey::decode(&STANDARD.encode([1u8; 24]))
            .err()
            .unwrap();
        assert!(err.to_string().contains("24"), "{err}");
        assert!(LegacyKey::decode("not a key!").is_err());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("coffer-legacy-{}", std::process::id()));
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = LegacyKey::load(None, Some(&path)).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(LegacyKey::load(None, Some(&path)).unwrap().is_some());
        std::fs::remove_file(path).unwrap();
    }
}
