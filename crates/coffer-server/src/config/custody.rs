//! `[custody]`: how the root key is held — a sealed state file (key file, passphrase,
//! Shamir shares) or a PKCS#11 token.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, invalid};

/// How custody holds its unseal key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustodyConfig {
    /// A 0600 key file: unsealed automatically at start (development).
    KeyFile {
        /// Custody state file.
        state_file: PathBuf,
        /// The key file.
        key_file: PathBuf,
    },
    /// A passphrase: unsealed at start from `passphrase_file` if given (0600), else
    /// through `POST /v1/sys/unseal`.
    Passphrase {
        /// Custody state file.
        state_file: PathBuf,
        /// Optional 0600 file holding the passphrase.
        passphrase_file: Option<PathBuf>,
    },
    /// Shamir shares: starts sealed until enough shares are given.
    Shamir {
        /// Custody state file.
        state_file: PathBuf,
    },
    /// The root key in a PKCS#11 token (an HSM): no state file, nothing to unseal.
    Pkcs11(Pkcs11Settings),
}

/// Where the PKCS#11 token is and how to log in (docs/hsm.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Settings {
    /// The module (shared library).
    pub module: PathBuf,
    /// The token: by label (`custody.token_label`) or slot id (`custody.slot`).
    pub token: coffer_custody_pkcs11::TokenSelector,
    /// A 0600 file holding the user PIN; without it the PIN is read from the
    /// `COFFER_CUSTODY_PIN` environment variable at start.
    pub pin_file: Option<PathBuf>,
    /// The root key objects' label.
    pub key_label: String,
    /// Sessions kept open at most.
    pub pool_size: usize,
    /// What the server serves while the token is unreachable.
    pub failover: Failover,
}

/// What the server serves while custody's token is unreachable (`custody.failover`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failover {
    /// Requests run as usual: those that need the token answer `backend_unavailable`,
    /// those served from keys in memory succeed.
    #[default]
    None,
    /// Only verification runs; every secret-key operation (wrap, unwrap, datakey,
    /// rewrap, sign, mac, verify-mac, issue-certificate) answers `backend_unavailable`,
    /// even for keys in memory, until the token is back.
    VerifyOnly,
}

impl Pkcs11Settings {
    /// The custody configuration, with the PIN read from its file or variable.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<coffer_custody_pkcs11::Pkcs11Config, ConfigError> {
        use coffer_custody_pkcs11::{Pin, Pkcs11Config};
        let pin = match (&self.pin_file, env("COFFER_CUSTODY_PIN")) {
            (Some(file), _) => {
                Pin::from_file(file).map_err(|e| invalid("custody.pin_file", e.to_string()))?
            }
            (None, Some(pin)) => Pin::new(pin),
            (None, None) => {
                return Err(invalid(
                    "custody.pin_file",
                    "set it, or the PIN in COFFER_CUSTODY_PIN",
                ));
            }
        };
        let mut config = Pkcs11Config::new(&self.module, self.token.clone(), pin);
        config.key_label = self.key_label.clone();
        config.pool_size = self.pool_size;
        Ok(config)
    }
}

impl CustodyConfig {
    /// The custody state file (none for PKCS#11: the root lives in the token).
    pub fn state_file(&self) -> Option<&Path> {
        match self {
            Self::KeyFile { state_file, .. }
            | Self::Passphrase { state_file, .. }
            | Self::Shamir { state_file } => Some(state_file),
            Self::Pkcs11(_) => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCustody {
    pub(super) method: Option<String>,
    pub(super) state_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) passphrase_file: Option<PathBuf>,
    pub(super) module: Option<PathBuf>,
    pub(super) token_label: Option<String>,
    pub(super) slot: Option<u64>,
    pub(super) pin_file: Option<PathBuf>,
    pub(super) key_label: Option<String>,
    pub(super) pool_size: Option<u64>,
    pub(super) failover: Option<String>,
}

pub(super) fn pkcs11(raw: RawCustody) -> Result<Pkcs11Settings, ConfigError> {
    use coffer_custody_pkcs11::TokenSelector;
    let module = raw
        .module
        .ok_or_else(|| invalid("custody.module", "required for pkcs11 custody"))?;
    let token = match (raw.token_label, raw.slot) {
        (Some(label), None) if !label.is_empty() => TokenSelector::Label(label),
        (None, Some(slot)) => TokenSelector::Slot(slot),
        _ => {
            return Err(invalid(
                "custody.token_label",
                "give exactly one of custody.token_label and custody.slot",
            ));
        }
    };
    let pool_size = raw.pool_size.unwrap_or(4);
    if !(1..=256).contains(&pool_size) {
        return Err(invalid("custody.pool_size", "must be between 1 and 256"));
    }
    Ok(Pkcs11Settings {
        module,
        token,
        pin_file: raw.pin_file,
        key_label: raw.key_label.unwrap_or_else(|| "coffer-root".to_owned()),
        pool_size: usize::try_from(pool_size).unwrap_or(4),
        failover: match raw.failover.as_deref() {
            None | Some("none") => Failover::None,
            Some("verify-only") => Failover::VerifyOnly,
            Some(_) => {
                return Err(invalid("custody.failover", "expected none or verify-only"));
            }
        },
    })
}
