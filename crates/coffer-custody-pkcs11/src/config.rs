//! What PKCS#11 custody needs to reach its token: module, token, PIN, key label, pool.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::Pkcs11Error;

/// Which token to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSelector {
    /// The token with this label, in whichever slot it is (slot ids may change when a
    /// token is re-plugged; SoftHSM reassigns them at initialisation).
    Label(String),
    /// The token in this slot id.
    Slot(u64),
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Label(label) => write!(f, "token label {label:?}"),
            Self::Slot(slot) => write!(f, "slot {slot}"),
        }
    }
}

/// The user PIN of the token. Zeroed on drop, never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// A PIN given directly (from an environment variable).
    pub fn new(pin: String) -> Self {
        Self(Zeroizing::new(pin))
    }

    /// Reads the PIN from a file that only its owner may read (mode 0600 or stricter);
    /// one trailing newline is dropped.
    pub fn from_file(path: &Path) -> Result<Self, Pkcs11Error> {
        let meta = std::fs::metadata(path)
            .map_err(|e| Pkcs11Error::Config(format!("{}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Pkcs11Error::Config(format!(
                "{} must not be readable by group or others (chmod 600)",
                path.display()
            )));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Pkcs11Error::Config(format!("{}: {e}", path.display())))?,
        );
        Ok(Self::new(text.trim_end_matches(['\n', '\r']).to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(***)")
    }
}

/// PKCS#11 custody's settings.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    /// The module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token.
    pub token: TokenSelector,
    /// The user PIN.
    pub pin: Pin,
    /// The label of the root key objects (every generation carries it; `CKA_ID` holds
    /// the generation).
    pub key_label: String,
    /// Sessions kept open at most: the bound on concurrent token calls.
    pub pool_size: usize,
    /// How long a call waits for a free session before failing.
    pub acquire_timeout: Duration,
    /// First reconnect delay; doubled after each failed attempt, with jitter.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
}

impl Pkcs11Config {
    /// A configuration with the defaults: key label `coffer-root`, 4 sessions, 5 s to
    /// acquire one, reconnects backing off from 100 ms to 30 s.
    pub fn new(module: impl Into<PathBuf>, token: TokenSelector, pin: Pin) -> Self {
        Self {
            module: module.into(),
            token,
            pin,
            key_label: "coffer-root".to_owned(),
            pool_size: 4,
            acquire_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
        }
    }
}
