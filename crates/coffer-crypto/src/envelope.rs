//! Ciphertext envelope v1, the format of every symmetric ciphertext Coffer returns
//! (DESIGN §3; also the AWS-compatible `CiphertextBlob`):
//!
//! ```text
//! offset  0  format       1 byte   0x01
//!         1  key_id      16 bytes  the key's UUID
//!        17  key_version  4 bytes  big-endian, ≥ 1
//!        21  nonce       24 bytes  XAES-256-GCM nonce, random
//!        45  ciphertext   n bytes
//!      45+n  tag         16 bytes
//! ```
//!
//! Associated data = the 21 header bytes ‖ tenant id (16) ‖ canonical encryption
//! context. So a blob opened under another key, version, tenant or context, or with any
//! byte changed, fails authentication; the header is readable before decryption so the
//! service can find the key version.

use crate::context::EncryptionContext;
use crate::secret::SecretBytes;
use crate::xaes::{AeadKey, NONCE_LEN, TAG_LEN};
use crate::{CryptoError, Result};

/// Format byte of envelope v1.
pub const FORMAT_V1: u8 = 0x01;
/// Header length: format, key id, key version.
pub const HEADER_LEN: usize = 1 + 16 + 4;
/// Envelope overhead over the plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

const WHAT: &str = "ciphertext envelope";

/// What an envelope says about itself before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvelopeHeader {
    /// The key's UUID bytes.
    pub key_id: [u8; 16],
    /// The key version that sealed it.
    pub key_version: u32,
}

impl EnvelopeHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = FORMAT_V1;
        out[1..17].copy_from_slice(&self.key_id);
        out[17..21].copy_from_slice(&self.key_version.to_be_bytes());
        out
    }

    /// Reads the header of `blob`, checking the format and the minimum length.
    pub fn parse(blob: &[u8]) -> Result<Self> {
        let Some(&format) = blob.first() else {
            return Err(CryptoError::malformed(WHAT, "empty"));
        };
        if format != FORMAT_V1 {
            return Err(CryptoError::UnsupportedFormat(format));
        }
        if blob.len() < OVERHEAD {
            return Err(CryptoError::malformed(
                WHAT,
                "shorter than header, nonce and tag",
            ));
        }
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&blob[1..17]);
        let mut version = [0u8; 4];
        version.copy_from_slice(&blob[17..21]);
        let key_version = u32::from_be_bytes(version);
        if key_version == 0 {
            return Err(CryptoError::malformed(WHAT, "key version 0 does not exist"));
        }
        Ok(Self {
            key_id,
            key_version,
        })
    }
}

/// Who and what a ciphertext is bound to, besides its key.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The owning tenant's UUID bytes.
    pub tenant_id: &'a [u8; 16],
    /// The caller's encryption context.
    pub context: &'a EncryptionContext,
}

fn associated_data(header: &[u8; HEADER_LEN], binding: Binding<'_>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + 16 + 64);
    aad.extend_from_slice(header);
    aad.extend_from_slice(binding.tenant_id);
    binding.context.encode_into(&mut aad);
    aad
}

/// Seals `plaintext` into an envelope under `key`, which must be the material of
/// `header.key_id` version `header.key_version`.
pub fn seal(
    key: &AeadKey,
    header: EnvelopeHeader,
    binding: Binding<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    if header.key_version == 0 {
        return Err(CryptoError::malformed(WHAT, "key version 0 does not exist"));
    }
    let encoded = header.encode();
    let aad = associated_data(&encoded, binding);
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&encoded);
    key.seal_into(&aad, plaintext, &mut out)?;
    Ok(out)
}

/// Opens an envelope whose header was read with [`EnvelopeHeader::parse`] and whose key
/// version's material is `key`.
pub fn open(key: &AeadKey, blob: &[u8], binding: Binding<'_>) -> Result<SecretBytes> {
    let header = EnvelopeHeader::parse(blob)?;
    let aad = associated_data(&header.encode(), binding);
    key.open(&aad, &blob[HEADER_LEN..])
}
