//! The secret types callers hold: a passphrase going in, Shamir shares coming out.
//!
//! Both follow the house rule for secrets: no `Clone`, `PartialEq` or `Serialize`, a
//! `Debug` that says the value is elided, zeroized on drop, read through
//! `expose_secret`.

use std::fmt;

use zeroize::Zeroize;

/// A passphrase for the passphrase unseal method. Zeroized on drop; never printed.
pub struct Passphrase(String);

impl Passphrase {
    /// Takes ownership of `passphrase`; its buffer is zeroized when this drops.
    pub fn new(passphrase: String) -> Self {
        Self(passphrase)
    }

    /// The passphrase. Named so that every read is visible in review.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for Passphrase {
    fn from(passphrase: String) -> Self {
        Self::new(passphrase)
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([secret elided])")
    }
}

/// One Shamir share of the unseal key, as text: `coffer-share-v1:<base64>`.
///
/// Hand each to a different holder; any `threshold` of them unseal. Zeroized on drop;
/// never printed.
pub struct UnsealShare(String);

impl UnsealShare {
    pub(crate) fn new(text: String) -> Self {
        Self(text)
    }

    /// The share's text, to give to its holder. Named so that every read is visible in
    /// review.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl Drop for UnsealShare {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for UnsealShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnsealShare([secret elided])")
    }
}
