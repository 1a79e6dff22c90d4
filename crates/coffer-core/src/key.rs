//! Keys, key versions and their policies.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use coffer_crypto::KeySpec;

use crate::error::InvalidInput;
use crate::hsm::{HsmKeyRef, Protection};
use crate::ids::{Alias, KeyId, TenantId, VersionNumber};
use crate::lifecycle::{KeyState, VersionState};
use crate::time::{HumanDuration, Timestamp};

/// What a key is for. Each spec has one natural purpose; RSA keys are made for either
/// signing (the default) or encryption (OAEP), as AWS KMS's key usage chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Encryption: envelope wrap, unwrap, datakey and rewrap for AES keys; OAEP
    /// encrypt and decrypt for RSA keys.
    Encrypt,
    /// Signatures: sign, verify.
    Sign,
    /// MACs.
    Mac,
}

impl KeyPurpose {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Sign => "sign",
            Self::Mac => "mac",
        }
    }

    /// The natural purpose of a spec (for RSA, signing).
    pub const fn of(spec: KeySpec) -> Self {
        match spec {
            KeySpec::Aes256 => Self::Encrypt,
            spec if spec.is_hmac() => Self::Mac,
            _ => Self::Sign,
        }
    }

    /// True when a key of `spec` may be made for this purpose.
    pub const fn serves(self, spec: KeySpec) -> bool {
        matches!(
            (self, Self::of(spec)),
            (Self::Encrypt, Self::Encrypt) | (Self::Sign, Self::Sign) | (Self::Mac, Self::Mac)
        ) || (matches!(self, Self::Encrypt) && spec.is_rsa())
    }

    /// `Ok` when `spec` serves this purpose.
    pub fn check_spec(self, spec: KeySpec) -> Result<(), InvalidInput> {
        if self.serves(spec) {
            Ok(())
        } else {
            Err(InvalidInput::new(
                "spec",
                "the spec does not serve the key's purpose",
            ))
        }
    }
}

impl fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyPurpose {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "encrypt" => Ok(Self::Encrypt),
            "sign" => Ok(Self::Sign),
            "mac" => Ok(Self::Mac),
            _ => Err(InvalidInput::new(
                "purpose",
                "expected encrypt, sign or mac",
            )),
        }
    }
}

/// When a key rotates by itself, and how long an old version stays usable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Rotate every `period`.
    pub period: Option<HumanDuration>,
    /// Rotate this long before the primary version's `not_after`.
    pub before_expiry: Option<HumanDuration>,
    /// Keep a replaced version verifiable/decryptable this long, then retire it.
    pub overlap: Option<HumanDuration>,
}

/// Shortest `period` a policy may name (as Vault's minimum auto-rotation period):
/// shorter periods would rotate on every scheduler pass and grow versions without bound.
pub const MIN_ROTATION_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

impl RotationPolicy {
    /// Refuses a `period` under [`MIN_ROTATION_PERIOD`].
    pub fn check(&self) -> Result<(), InvalidInput> {
        match self.period {
            Some(period) if period.get() < MIN_ROTATION_PERIOD => {
                Err(InvalidInput::new("rotation period", "must be at least 1h"))
            }
            _ => Ok(()),
        }
    }
}

/// Labels: free-form `name=value` pairs for operators.
pub type Labels = BTreeMap<String, String>;

/// Most labels one key carries.
pub const MAX_LABELS: usize = 64;
/// Longest label name, in bytes.
pub const MAX_LABEL_NAME: usize = 128;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE: usize = 256;

/// Refuses labels an operator's terminal or log would misread (control characters),
/// and sizes without bound (every label is stored, listed and audited with its key).
pub fn check_labels(labels: &Labels) -> Result<(), InvalidInput> {
    if labels.len() > MAX_LABELS {
        return Err(InvalidInput::new("labels", "at most 64 per key"));
    }
    for (name, value) in labels {
        if name.is_empty() || name.len() > MAX_LABEL_NAME || value.len() > MAX_LABEL_VALUE {
            return Err(InvalidInput::new(
                "labels",
                "a name is 1-128 bytes and a value at most 256",
            ));
        }
        if name.chars().chain(value.chars()).any(char::is_control) {
            return Err(InvalidInput::new(
                "labels",
                "names and values hold no control characters",
            ));
        }
    }
    Ok(())
}

/// The rule of a registered purpose's name (e.g. `attestation-signing`, `published`).
pub fn check_registered_purpose(purpose: &str) -> Result<(), InvalidInput> {
    let valid = !purpose.is_empty()
        && purpose.len() <= 64
        && purpose
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(InvalidInput::new(
            "registered purpose",
            "1-64 characters of a-z, 0-9 and -",
        ))
    }
}

/// A key: identity, purpose, state and policy. Its versions are [`KeyVersion`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The owning tenant.
    pub tenant: TenantId,
    /// The key's id.
    pub id: KeyId,
    /// Algorithm family.
    pub spec: KeySpec,
    /// What it is for.
    pub purpose: KeyPurpose,
    /// Lifecycle state.
    pub state: KeyState,
    /// For `pending-deletion`: when destruction becomes due.
    pub deletion_due: Option<Timestamp>,
    /// Aliases, unique within the tenant.
    pub aliases: BTreeSet<Alias>,
    /// Operator labels.
    pub labels: Labels,
    /// Registered purposes such as `attestation-signing` (seed 004).
    pub registered_purposes: BTreeSet<String>,
    /// Rotation policy.
    pub rotation: RotationPolicy,
    /// Validity given to each new version (`--validity 365d`), if any.
    pub validity: Option<HumanDuration>,
    /// Where its versions live (software, or each in the HSM).
    pub protection: Protection,
    /// Creation time.
    pub created_at: Timestamp,
    /// The MAC over the row's identity and power-bearing fields
    /// ([`crate::state_seal`]); `None` for a row from before the binding.
    pub state_tag: Option<crate::state_seal::StateTag>,
}

/// One version of a key: its own material, state and validity.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyVersion {
    /// The key it belongs to.
    pub key: KeyId,
    /// Its number.
    pub number: VersionNumber,
    /// Lifecycle state.
    pub state: VersionState,
    /// True for the one version new encryptions and signatures use.
    pub primary: bool,
    /// Valid from.
    pub not_before: Timestamp,
    /// Valid until, if limited.
    pub not_after: Option<Timestamp>,
    /// SPKI DER of the public key, for signing keys.
    pub public_key: Option<Vec<u8>>,
    /// The secret material (or, for an HSM-resident version, its sealed location),
    /// wrapped under the tenant key (see [`crate::keyring`]).
    pub wrapped_material: Vec<u8>,
    /// Where the HSM keeps it, for an HSM-resident version (a readable copy of the
    /// sealed location, checked against it when the key loads).
    pub hsm: Option<HsmKeyRef>,
    /// Creation time.
    pub created_at: Timestamp,
    /// The MAC over the row's identity and power-bearing fields
    /// ([`crate::state_seal`]); `None` for a row from before the binding.
    pub state_tag: Option<crate::state_seal::StateTag>,
}

impl fmt::Debug for KeyVersion {
    // Wrapped material is ciphertext, but it has no place in logs either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVersion")
            .field("key", &self.key)
            .field("number", &self.number)
            .field("state", &self.state)
            .field("primary", &self.primary)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("hsm", &self.hsm)
            .finish_non_exhaustive()
    }
}
