//! Attestation: proof, signed by a platform Coffer trusts, that a request comes from a
//! workload with a known measurement.
//!
//! Layout:
//! - this file — [`Verifier`] (one per format), what a verified document proves
//!   ([`Attested`], [`Measurement`]), and [`Attestor`], which picks the format, then
//!   checks freshness (timestamp within `max_age`, a nonce) and refuses a replay;
//! - [`nitro`] — AWS Nitro Enclaves attestation documents (COSE_Sign1, ES384, the
//!   certificate chain to the AWS Nitro root, PCR0 as the measurement);
//! - [`test_format`] — the Coffer test format, signed by a configured
//!   attestation-authority key (Ed25519 or ECDSA P-256), so policies can be exercised
//!   without an enclave;
//! - [`recipient`] — answers encrypted to the public key a document carries, in
//!   Coffer's format (the native API); [`recipient_cms`] — the same in AWS KMS's
//!   (`CiphertextForRecipient`: CMS EnvelopedData, RSAES-OAEP-SHA-256, AES-256-CBC);
//! - `replay` — the nonces already seen, kept as long as their documents are fresh.
//!
//! Verification is pure apart from the replay memory: the caller passes the time, so a
//! recorded document can be checked against the time it was made (the tests do).

mod error;
pub mod nitro;
pub mod recipient;
pub mod recipient_cms;
mod replay;
pub mod test_format;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use error::AttestError;
pub use test_format::AuthorityKey;

/// Largest document accepted (a Nitro document is about 4.5 KiB).
pub const MAX_DOCUMENT: usize = 32 * 1024;

/// Shortest nonce accepted: a document without a nonce of at least this many bytes could
/// be replayed by anyone who saw it once within `max_age`.
pub const MIN_NONCE: usize = 8;

/// Longest nonce accepted (NSM's own limit is 512 bytes).
pub const MAX_NONCE: usize = 512;

/// How far a document's timestamp may be ahead of Coffer's clock (clock skew).
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// A workload's measurement: lowercase hex of 16 to 64 bytes (a Nitro PCR0 is 48).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Measurement(String);

impl Measurement {
    /// The measurement of raw digest bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AttestError> {
        if !(16..=64).contains(&bytes.len()) {
            return Err(AttestError::Malformed("a measurement is 16 to 64 bytes"));
        }
        Ok(Self(hex::encode(bytes)))
    }

    /// The lowercase hex spelling.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Measurement {
    type Err = AttestError;

    /// Hex, either case (stored and compared lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s)
            .map_err(|_| AttestError::Malformed("a measurement is hex of 16 to 64 bytes"))?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The document formats Coffer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// AWS Nitro Enclaves attestation document.
    Nitro,
    /// The Coffer test format ([`test_format`]).
    CofferTest,
}

impl Format {
    /// The name in audit entries and errors.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Nitro => "aws-nitro",
            Self::CofferTest => "coffer-test",
        }
    }
}

/// What a verified document proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The format it came in.
    pub format: Format,
    /// The workload's measurement (Nitro: PCR0).
    pub measurement: Measurement,
    /// The nonce the workload put in it.
    pub nonce: Vec<u8>,
    /// When the platform made it (Unix milliseconds).
    pub timestamp_ms: i64,
    /// The workload's public key, if it put one in (a recipient for answers only it
    /// can read): the bytes as the document carries them.
    pub public_key: Option<Vec<u8>>,
}

/// One document format: checks the document's signature and trust chain at `now_ms`
/// and returns its claims. Freshness and replay are the [`Attestor`]'s, common to all.
pub trait Verifier: Send + Sync {
    /// The format this verifier reads.
    fn format(&self) -> Format;

    /// True when `document` is in this format (its framing, before any check).
    fn recognises(&self, document: &[u8]) -> bool;

    /// Verifies `document` at `now_ms` (Unix milliseconds).
    fn verify(&self, document: &[u8], now_ms: i64) -> Result<Attested, AttestError>;
}

/// What the service trusts.
#[derive(Clone)]
pub struct AttestationOptions {
    /// The attestation-authority key of the Coffer test format; `None` refuses the
    /// format.
    pub authority: Option<AuthorityKey>,
    /// The Nitro root certificate (DER); the default is AWS's ([`nitro::AWS_ROOT_PEM`]).
    pub nitro_root: Vec<u8>,
    /// How old a document may be.
    pub max_age: Duration,
}

impl fmt::Debug for AttestationOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttestationOptions")
            .field(
                "authority",
                &self.authority.as_ref().map(AuthorityKey::kind),
            )
            .field("nitro_root_len", &self.nitro_root.len())
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// Default `attestation.max_age`.
pub const MAX_AGE: Duration = Duration::from_secs(300);

impl Default for AttestationOptions {
    fn default() -> Self {
        Self {
            authority: None,
            nitro_root: nitro::aws_root_der(),
            max_age: MAX_AGE,
        }
    }
}

/// Verifies documents of every configured format, with freshness and replay checks.
pub struct Attestor {
    verifiers: Vec<Box<dyn Verifier>>,
    max_age: Duration,
    seen: replay::Seen,
}

impl fmt::Debug for Attestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attestor")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl Attestor {
    /// The verifiers `options` configure.
    pub fn new(options: &AttestationOptions) -> Self {
        let mut verifiers: Vec<Box<dyn Verifier>> = vec![Box::new(nitro::NitroVerifier::new(
            options.nitro_root.clone(),
        ))];
        verifiers.push(Box::new(test_format::TestFormatVerifier::new(
            options.authority.clone(),
        )));
        Self {
            verifiers,
            max_age: options.max_age,
            seen: replay::Seen::new(replay::CAPACITY),
        }
    }

    /// Verifies `document` at `now_ms`: its format's signature and chain, then a
    /// timestamp no older than `max_age` (nor more than [`MAX_SKEW`] ahead), a nonce,
    /// and that this nonce was not presented before. A refused document is not
    /// remembered, so a forged copy cannot burn the genuine one's nonce.
    pub fn verify(&self, document: &[u8], now_ms: i64) -> Result<Attested, AttestError> {
        if document.len() > MAX_DOCUMENT {
            return Err(AttestError::Malformed("the document is larger than 32 KiB"));
        }
        let verifier = self
            .verifiers
            .iter()
            .find(|v| v.recognises(document))
            .ok_or(AttestError::UnknownFormat)?;
        let attested = verifier.verify(document, now_ms)?;
        let max_age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        let skew = i64::try_from(MAX_SKEW.as_millis()).unwrap_or(i64::MAX);
        if attested.timestamp_ms < now_ms.saturating_sub(max_age) {
            return Err(AttestError::Stale);
        }
        if attested.timestamp_ms > now_ms.saturating_add(skew) {
            return Err(AttestError::FromTheFuture);
        }
        if !(MIN_NONCE..=MAX_NONCE).contains(&attested.nonce.len()) {
            return Err(AttestError::Nonce);
        }
        // Remembered until the document could no longer pass the age check anyway.
        let forget_at = attested.timestamp_ms.saturating_add(max_age);
        self.seen
            .first_use(attested.format, &attested.nonce, forget_at, now_ms)?;
        Ok(attested)
    }
}
