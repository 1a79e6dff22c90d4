//! ECDSA over P-256 with SHA-256, DER signatures. Stored as the private scalar and
//! the uncompressed public point, which aws-lc checks belong together when loading.

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, ParsedPublicKey,
};

use crate::secret::SecretBytes;
use crate::{CryptoError, Result};

/// Length of an uncompressed P-256 point (0x04 ‖ X ‖ Y).
pub const PUBLIC_KEY_LEN: usize = 65;
/// Length of the private scalar.
pub const SCALAR_LEN: usize = 32;

/// An ECDSA P-256 private key.
pub struct EcdsaP256Key {
    pair: EcdsaKeyPair,
}

impl EcdsaP256Key {
    pub(crate) fn generate() -> Result<Self> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| CryptoError::Backend("P-256 key generation"))?;
        Ok(Self { pair })
    }

    /// Loads `scalar ‖ public point` as written by [`EcdsaP256Key::to_stored`].
    pub(crate) fn from_stored(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != SCALAR_LEN + PUBLIC_KEY_LEN {
            return Err(CryptoError::malformed("P-256 key material", "wrong length"));
        }
        let (scalar, point) = bytes.split_at(SCALAR_LEN);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            scalar,
            point,
        )
        .map_err(|_| CryptoError::KeyRejected("P-256 key material"))?;
        Ok(Self { pair })
    }

    pub(crate) fn to_stored(&self) -> Result<SecretBytes> {
        let scalar: EcPrivateKeyBin<'_> = self
            .pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| CryptoError::Backend("P-256 key export"))?;
        let mut out = Vec::with_capacity(SCALAR_LEN + PUBLIC_KEY_LEN);
        out.extend_from_slice(scalar.as_ref());
        out.extend_from_slice(self.pair.public_key().as_ref());
        Ok(SecretBytes::new(out))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| CryptoError::Backend("ECDSA sign"))
    }

    pub(crate) fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>> {
        let digest = Digest::import_less_safe(digest, &SHA256)
            .map_err(|_| CryptoError::malformed("SHA-256 digest", "wrong length"))?;
        self.pair
            .sign_digest(&digest)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| CryptoError::Backend("ECDSA sign"))
    }

    pub(crate) fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }
}

pub(crate) fn verify_digest(
    key: &ParsedPublicKey,
    digest: &[u8; 32],
    signature: &[u8],
) -> Result<()> {
    let digest = Digest::import_less_safe(digest, &SHA256)
        .map_err(|_| CryptoError::malformed("SHA-256 digest", "wrong length"))?;
    key.verify_digest_sig(&digest, signature)
        .map_err(|_| CryptoError::InvalidSignature)
}
