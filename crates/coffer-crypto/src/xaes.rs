//! XAES-256-GCM: the AEAD under every ciphertext Coffer produces.
//!
//! Why XAES-256-GCM (C2SP, <https://c2sp.org/XAES-256-GCM>) rather than plain AES-GCM:
//! a key version in a busy KMS seals billions of messages, and AES-GCM with random 96-bit
//! nonces must stop at 2^32 messages per key to keep the nonce-collision risk under
//! 2^-32. XAES-256-GCM takes a 192-bit random nonce, derives a fresh AES-256-GCM key from
//! the first 96 bits with an AES-CMAC-based KDF (NIST SP 800-108r1 counter mode), and uses
//! the last 96 bits as the GCM nonce. Collisions of the 192-bit nonce stay below 2^-32
//! until about 2^80 messages per key, which no deployment reaches: there is no practical
//! limit per key version, and no counter state to keep across replicas or crashes.
//!
//! It is built only from AES-256 block encryption and AES-256-GCM, both from aws-lc; the
//! derivation itself (two block encryptions) is the part this module owns.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_256, EncryptingKey, UnboundCipherKey};
use zeroize::{Zeroize, Zeroizing};

use crate::secret::{SecretArray, SecretBytes};
use crate::{CryptoError, Result};

/// Length of an XAES-256-GCM key.
pub const KEY_LEN: usize = 32;
/// Length of the random nonce carried with each ciphertext.
pub const NONCE_LEN: usize = 24;
/// Length of the GCM authentication tag.
pub const TAG_LEN: usize = 16;

/// A 256-bit XAES-256-GCM key. Zeroized on drop; never printed.
pub struct AeadKey {
    key: SecretArray<KEY_LEN>,
    /// AES-256 under `key`, kept with its expanded schedule so each message pays two
    /// block encryptions, not a key expansion, for the derivation.
    block_cipher: EncryptingKey,
    /// The CMAC subkey K1 of the derivation; depends only on `key`.
    k1: SecretArray<16>,
}

impl AeadKey {
    /// A fresh key from the OS random generator.
    pub fn generate() -> Result<Self> {
        Self::from_array(SecretArray::random()?)
    }

    /// A key from its 32 raw bytes (for example stored material after unwrapping).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_array(SecretArray::from_slice(bytes, "AES-256 key")?)
    }

    fn from_array(key: SecretArray<KEY_LEN>) -> Result<Self> {
        let unbound = UnboundCipherKey::new(&AES_256, key.expose())
            .map_err(|_| CryptoError::KeyRejected("AES-256 key"))?;
        let block_cipher =
            EncryptingKey::ecb(unbound).map_err(|_| CryptoError::Backend("AES-256 block"))?;
        // L = AES-256_K(0^128); K1 = L << 1, xored with 0x87 when L's top bit is set.
        let mut l = Zeroizing::new([0u8; 16]);
        encrypt_block(&block_cipher, &mut l)?;
        let mut k1 = [0u8; 16];
        let mut carry = 0u8;
        for i in (0..16).rev() {
            k1[i] = (l[i] << 1) | carry;
            carry = l[i] >> 7;
        }
        if l[0] & 0x80 != 0 {
            k1[15] ^= 0x87;
        }
        let k1_secret = SecretArray::from_slice(&k1, "subkey")?;
        k1.zeroize();
        Ok(Self {
            key,
            block_cipher,
            k1: k1_secret,
        })
    }

    /// The raw key bytes, for serialising into stored material.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.key.expose()
    }

    /// Seals `plaintext` under a fresh random nonce; returns `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        self.seal_into(aad, plaintext, &mut out)?;
        Ok(out)
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` to `out` (used to build envelopes in place).
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::rng::fill(&mut nonce)?;
        self.seal_with_nonce(&nonce, aad, plaintext, out)
    }

    /// Opens `nonce ‖ ciphertext ‖ tag` as produced by [`AeadKey::seal`].
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::malformed(
                "sealed data",
                "shorter than nonce and tag",
            ));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::DecryptFailed)?;
        self.open_with_nonce(nonce, aad, body)
    }

    /// Seals with a caller-chosen nonce. Only for known-answer tests: reusing a nonce
    /// under one key breaks GCM, so production code always goes through `seal`.
    pub(crate) fn seal_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let gcm = self.derive_gcm_key(nonce)?;
        let start = out.len();
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        let gcm_nonce = gcm_nonce(nonce);
        let tag = gcm
            .seal_in_place_separate_tag(gcm_nonce, Aad::from(aad), &mut out[start + NONCE_LEN..])
            .map_err(|_| CryptoError::Backend("AES-256-GCM seal"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    pub(crate) fn open_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<SecretBytes> {
        if ciphertext_and_tag.len() < TAG_LEN {
            return Err(CryptoError::malformed(
                "sealed data",
                "shorter than the tag",
            ));
        }
        let gcm = self.derive_gcm_key(nonce)?;
        // Wrapped at once so a failed open (which may leave partial plaintext in the
        // buffer) is zeroized too.
        let mut buffer = SecretBytes::new(ciphertext_and_tag.to_vec());
        let plaintext_len = gcm
            .open_in_place(gcm_nonce(nonce), Aad::from(aad), buffer.expose_secret_mut())
            .map_err(|_| CryptoError::DecryptFailed)?
            .len();
        buffer.truncate(plaintext_len);
        Ok(buffer)
    }

    /// Kx = AES(K, M1 ⊕ K1) ‖ AES(K, M2 ⊕ K1), with Mi = 0x00 ‖ i ‖ "X" ‖ 0x00 ‖ N[..12]
    /// (C2SP XAES-256-GCM, "Key derivation").
    fn derive_gcm_key(&self, nonce: &[u8; NONCE_LEN]) -> Result<LessSafeKey> {
        let mut blocks = Zeroizing::new([0u8; 32]);
        for (counter, block) in [1u8, 2].into_iter().zip(blocks.chunks_exact_mut(16)) {
            block[..4].copy_from_slice(&[0x00, counter, b'X', 0x00]);
            block[4..].copy_from_slice(&nonce[..12]);
            for (b, k) in block.iter_mut().zip(self.k1.expose()) {
                *b ^= k;
            }
        }
        self.block_cipher
            .encrypt(&mut blocks[..])
            .map_err(|_| CryptoError::Backend("AES-256 block"))?;
        let unbound = UnboundKey::new(&AES_256_GCM, &blocks[..])
            .map_err(|_| CryptoError::Backend("AES-256-GCM key"))?;
        Ok(LessSafeKey::new(unbound))
    }
}

fn gcm_nonce(nonce: &[u8; NONCE_LEN]) -> Nonce {
    let mut n = [0u8; 12];
    n.copy_from_slice(&nonce[12..]);
    Nonce::assume_unique_for_key(n)
}

fn encrypt_block(cipher: &EncryptingKey, block: &mut [u8; 16]) -> Result<()> {
    cipher
        .encrypt(block)
        .map(|_| ())
        .map_err(|_| CryptoError::Backend("AES-256 block"))
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey([secret elided])")
    }
}

#[cfg(test)]
mod tests;
