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
//! Envelope 0x02 is the same header with format byte `0x02`, then a 12-byte IV, the
//! AES-256-GCM ciphertext and its 16-byte tag: sealed inside an HSM by an HSM-resident
//! key (a token does AES-GCM, not XAES), with the same associated data.
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
/// Format byte of an envelope sealed by an HSM-resident key (AES-256-GCM in a token).
pub const FORMAT_TOKEN: u8 = 0x02;
/// IV length of the token format.
pub const TOKEN_IV_LEN: usize = 12;
/// Token-format overhead over the plaintext.
pub const TOKEN_OVERHEAD: usize = HEADER_LEN + TOKEN_IV_LEN + TAG_LEN;
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
        self.encode_as(FORMAT_V1)
    }

    fn encode_as(&self, format: u8) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = format;
        out[1..17].copy_from_slice(&self.key_id);
        out[17..21].copy_from_slice(&self.key_version.to_be_bytes());
        out
    }

    /// Reads the header of `blob`, checking the format and the minimum length.
    pub fn parse(blob: &[u8]) -> Result<Self> {
        let Some(&format) = blob.first() else {
            return Err(CryptoError::malformed(WHAT, "empty"));
        };
        let shortest = match format {
            FORMAT_V1 => OVERHEAD,
            FORMAT_TOKEN => TOKEN_OVERHEAD,
            _ => return Err(CryptoError::UnsupportedFormat(format)),
        };
        if blob.len() < shortest {
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
    if blob[0] != FORMAT_V1 {
        return Err(CryptoError::UnsupportedFormat(blob[0]));
    }
    let aad = associated_data(&header.encode(), binding);
    key.open(&aad, &blob[HEADER_LEN..])
}

/// The associated data a token binds into an envelope 0x02 (as v1's, with the format
/// byte 0x02 in the header).
pub fn token_associated_data(header: EnvelopeHeader, binding: Binding<'_>) -> Result<Vec<u8>> {
    if header.key_version == 0 {
        return Err(CryptoError::malformed(WHAT, "key version 0 does not exist"));
    }
    Ok(associated_data(&header.encode_as(FORMAT_TOKEN), binding))
}

/// An envelope 0x02 from the token's `IV ‖ ciphertext ‖ tag`.
pub fn token_assemble(header: EnvelopeHeader, sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < TOKEN_IV_LEN + TAG_LEN {
        return Err(CryptoError::malformed(
            WHAT,
            "the token's seal is too short",
        ));
    }
    Ok([&header.encode_as(FORMAT_TOKEN)[..], sealed].concat())
}

/// The header of an envelope 0x02 and what the token opens (`IV ‖ ciphertext ‖ tag`).
/// Any other format is refused.
pub fn token_parts(blob: &[u8]) -> Result<(EnvelopeHeader, &[u8])> {
    let header = EnvelopeHeader::parse(blob)?;
    if blob[0] != FORMAT_TOKEN {
        return Err(CryptoError::UnsupportedFormat(blob[0]));
    }
    Ok((header, &blob[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_parts() -> ([u8; 16], EncryptionContext) {
        ([7; 16], EncryptionContext::default())
    }

    #[test]
    fn token_envelopes_frame_and_refuse_the_other_format() {
        let (tenant, context) = binding_parts();
        let binding = Binding {
            tenant_id: &tenant,
            context: &context,
        };
        let header = EnvelopeHeader {
            key_id: [1; 16],
            key_version: 2,
        };
        let sealed = [9u8; TOKEN_IV_LEN + TAG_LEN + 5];
        let blob = token_assemble(header, &sealed).unwrap();
        assert_eq!(blob[0], FORMAT_TOKEN);
        assert_eq!(EnvelopeHeader::parse(&blob).unwrap(), header);
        let (parsed, body) = token_parts(&blob).unwrap();
        assert_eq!((parsed, body), (header, &sealed[..]));
        // The token's associated data differs from v1's by the format byte only.
        let v1 = associated_data(&header.encode(), binding);
        let token = token_associated_data(header, binding).unwrap();
        assert_eq!((v1[0], token[0]), (FORMAT_V1, FORMAT_TOKEN));
        assert_eq!(v1[1..], token[1..]);
        // A v1 key refuses a token envelope, and the token path a v1 envelope.
        let key = AeadKey::generate().unwrap();
        assert!(matches!(
            open(&key, &blob, binding),
            Err(CryptoError::UnsupportedFormat(FORMAT_TOKEN))
        ));
        let v1_blob = seal(&key, header, binding, b"secret").unwrap();
        assert!(token_parts(&v1_blob).is_err());
        assert!(token_parts(&blob[..TOKEN_OVERHEAD - 1]).is_err());
        assert!(token_assemble(header, &sealed[..TOKEN_IV_LEN + TAG_LEN - 1]).is_err());
    }
}
