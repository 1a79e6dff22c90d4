//! The formats of a legacy key provider that `coffer migrate` reads (seed 003 §3): AES-GCM
//! and AES Key Wrap (RFC 3394), both under an AES-128 or AES-256 key.
//!
//! Exact formats, as documented in docs/runbooks/003:
//! - **AES-GCM**: `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`, the nonce first, the
//!   tag last (what `seal_in_place_append_tag` and most libraries' "combined" output
//!   write), with the associated data given by the caller (empty unless the legacy
//!   writer bound something). Also the format of the blobs `coffer migrate verify`
//!   decrypts.
//! - **AES-KW**: RFC 3394 with the default initial value `A6A6A6A6A6A6A6A6`, no padding
//!   (the wrapped key is a multiple of 8 bytes, at least 16; the output is 8 longer).
//!
//! These are read paths for data that exists; Coffer's own ciphertexts are XAES-256-GCM
//! envelopes ([`crate::envelope`]). The sealing halves exist because the same blob format
//! is written by applications that keep using their data keys, and so tests can build
//! legacy data the way a legacy writer did.

use aws_lc_rs::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::key_wrap::{AES_128, AES_256, AesKek, KeyWrap};

use crate::{CryptoError, Result, SecretBytes};

/// Length of the AES-GCM tag appended to the ciphertext.
pub const GCM_TAG_LEN: usize = 16;
/// Length of the AES-GCM nonce that starts a sealed value.
pub const GCM_NONCE_LEN: usize = NONCE_LEN;

fn gcm_key(key: &SecretBytes) -> Result<LessSafeKey> {
    let algorithm = match key.len() {
        16 => &AES_128_GCM,
        32 => &AES_256_GCM,
        _ => return Err(CryptoError::KeyRejected("an AES key is 16 or 32 bytes")),
    };
    UnboundKey::new(algorithm, key.expose_secret())
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::KeyRejected("AES-GCM key"))
}

/// Opens `nonce ‖ ciphertext ‖ tag` under `key` with associated data `aad`.
pub fn open_aes_gcm(key: &SecretBytes, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes> {
    if sealed.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
        return Err(CryptoError::malformed(
            "AES-GCM value",
            "shorter than a nonce and a tag",
        ));
    }
    let key = gcm_key(key)?;
    let (nonce, body) = sealed.split_at(GCM_NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce)
        .map_err(|_| CryptoError::malformed("AES-GCM value", "bad nonce"))?;
    let mut buffer = SecretBytes::copy_from(body);
    let len = key
        .open_in_place(nonce, Aad::from(aad), buffer.expose_secret_mut())
        .map_err(|_| CryptoError::DecryptFailed)?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

/// Seals `plaintext` as `nonce ‖ ciphertext ‖ tag` with a random nonce.
pub fn seal_aes_gcm(key: &SecretBytes, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let key = gcm_key(key)?;
    let mut nonce = [0u8; GCM_NONCE_LEN];
    crate::rng::fill(&mut nonce)?;
    let mut out = Vec::with_capacity(GCM_NONCE_LEN + plaintext.len() + GCM_TAG_LEN);
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .map_err(|_| CryptoError::Backend("AES-GCM seal"))?;
    out.extend_from_slice(&body);
    Ok(out)
}

fn kek(key: &SecretBytes) -> Result<AesKek> {
    let cipher = match key.len() {
        16 => &AES_128,
        32 => &AES_256,
        _ => return Err(CryptoError::KeyRejected("an AES key is 16 or 32 bytes")),
    };
    AesKek::new(cipher, key.expose_secret()).map_err(|_| CryptoError::KeyRejected("AES-KW key"))
}

/// Unwraps an RFC 3394 wrapped key. A wrong key or a modified value fails the integrity
/// check ([`CryptoError::DecryptFailed`]).
pub fn unwrap_aes_kw(key: &SecretBytes, wrapped: &[u8]) -> Result<SecretBytes> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(CryptoError::malformed(
            "AES-KW value",
            "not a multiple of 8 bytes of at least 24",
        ));
    }
    let kek = kek(key)?;
    let mut out = SecretBytes::new(vec![0u8; wrapped.len() - 8]);
    let len = kek
        .unwrap(wrapped, out.expose_secret_mut())
        .map_err(|_| CryptoError::DecryptFailed)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// Wraps `plaintext` (a multiple of 8 bytes, at least 16) with RFC 3394.
pub fn wrap_aes_kw(key: &SecretBytes, plaintext: &SecretBytes) -> Result<Vec<u8>> {
    if plaintext.len() < 16 || !plaintext.len().is_multiple_of(8) {
        return Err(CryptoError::malformed(
            "AES-KW input",
            "not a multiple of 8 bytes of at least 16",
        ));
    }
    let kek = kek(key)?;
    let mut out = vec![0u8; plaintext.len() + 8];
    kek.wrap(plaintext.expose_secret(), &mut out)
        .map_err(|_| CryptoError::Backend("AES-KW wrap"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3394 §4.6: 256 bits of key data with a 256-bit KEK.
    #[test]
    fn aes_kw_matches_rfc_3394_vector_4_6() {
        let kek_bytes = SecretBytes::new(hex(
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
        ));
        let data = SecretBytes::new(hex(
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
        ));
        let expected =
            hex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21");
        assert_eq!(wrap_aes_kw(&kek_bytes, &data).unwrap(), expected);
        let unwrapped = unwrap_aes_kw(&kek_bytes, &expected).unwrap();
        assert_eq!(unwrapped.expose_secret(), data.expose_secret());
    }

    /// RFC 3394 §4.1: 128 bits of key data with a 128-bit KEK.
    #[test]
    fn aes_kw_matches_rfc_3394_vector_4_1() {
        let kek_bytes = SecretBytes::new(hex("000102030405060708090A0B0C0D0E0F"));
        let wrapped = hex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
        let unwrapped = unwrap_aes_kw(&kek_bytes, &wrapped).unwrap();
        assert_eq!(
            unwrapped.expose_secret(),
            hex("00112233445566778899AABBCCDDEEFF")
        );
    }

    #[test]
    fn aes_kw_refuses_a_wrong_key_and_a_modified_value() {
        let key = SecretBytes::new(vec![7; 32]);
        let other = SecretBytes::new(vec![8; 32]);
        let data = SecretBytes::new(vec![1; 32]);
        let mut wrapped = wrap_aes_kw(&key, &data).unwrap();
        assert_eq!(
            unwrap_aes_kw(&other, &wrapped).err(),
            Some(CryptoError::DecryptFailed)
        );
        wrapped[3] ^= 1;
        assert_eq!(
            unwrap_aes_kw(&key, &wrapped).err(),
            Some(CryptoError::DecryptFailed)
        );
        assert!(matches!(
            unwrap_aes_kw(&key, &[0; 20]),
            Err(CryptoError::Malformed { .. })
        ));
    }

    /// NIST GCM test case 16 (AES-256, 96-bit IV, with AAD), in the combined layout.
    #[test]
    fn aes_gcm_opens_the_nist_vector_in_nonce_first_layout() {
        let key = SecretBytes::new(hex(
            "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        ));
        let nonce = hex("cafebabefacedbaddecaf888");
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let ciphertext = hex(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        );
        let tag = hex("76fc6ece0f4e1768cddf8853bb2d551b");
        let plaintext = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let sealed = [nonce, ciphertext, tag].concat();
        let opened = open_aes_gcm(&key, &sealed, &aad).unwrap();
        assert_eq!(opened.expose_secret(), plaintext);
        assert_eq!(
            open_aes_gcm(&key, &sealed, b"").err(),
            Some(CryptoError::DecryptFailed),
            "the associated data is authenticated"
        );
    }

    #[test]
    fn aes_gcm_round_trips_and_refuses_tampering() {
        let key = SecretBytes::new(vec![9; 16]);
        let mut sealed = seal_aes_gcm(&key, b"blob", b"id-1").unwrap();
        assert_eq!(sealed.len(), GCM_NONCE_LEN + 4 + GCM_TAG_LEN);
        assert_eq!(
            open_aes_gcm(&key, &sealed, b"id-1")
                .unwrap()
                .expose_secret(),
            b"blob"
        );
        sealed[GCM_NONCE_LEN] ^= 1;
        assert_eq!(
            open_aes_gcm(&key, &sealed, b"id-1").err(),
            Some(CryptoError::DecryptFailed)
        );
        assert!(matches!(
            open_aes_gcm(&SecretBytes::new(vec![1; 24]), &sealed, b""),
            Err(CryptoError::KeyRejected(_))
        ));
    }
}
