//! ECDSA over P-256, P-384, P-521 and secp256k1, each with its one hash, DER signatures.
//! Stored as the private scalar and the uncompressed public point, which aws-lc checks
//! belong together when loading.

use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair,
    ParsedPublicKey,
};

use super::{DigestAlgorithm, SignatureAlgorithm};
use crate::secret::SecretBytes;
use crate::spec::KeySpec;
use crate::{CryptoError, Result};

/// One curve's sizes and aws-lc algorithms.
pub(crate) struct Curve {
    pub(crate) spec: KeySpec,
    /// Length of the private scalar.
    pub(crate) scalar_len: usize,
    /// Length of an uncompressed point (0x04 ‖ X ‖ Y).
    pub(crate) point_len: usize,
    signing: &'static EcdsaSigningAlgorithm,
    pub(crate) verifying: &'static EcdsaVerificationAlgorithm,
    pub(crate) algorithm: SignatureAlgorithm,
}

static P256: Curve = Curve {
    spec: KeySpec::EcdsaP256,
    scalar_len: 32,
    point_len: 65,
    signing: &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
    verifying: &sig::ECDSA_P256_SHA256_ASN1,
    algorithm: SignatureAlgorithm::EcdsaP256Sha256,
};
static P384: Curve = Curve {
    spec: KeySpec::EcdsaP384,
    scalar_len: 48,
    point_len: 97,
    signing: &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
    verifying: &sig::ECDSA_P384_SHA384_ASN1,
    algorithm: SignatureAlgorithm::EcdsaP384Sha384,
};
static P521: Curve = Curve {
    spec: KeySpec::EcdsaP521,
    scalar_len: 66,
    point_len: 133,
    signing: &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
    verifying: &sig::ECDSA_P521_SHA512_ASN1,
    algorithm: SignatureAlgorithm::EcdsaP521Sha512,
};
static SECP256K1: Curve = Curve {
    spec: KeySpec::EcdsaSecp256k1,
    scalar_len: 32,
    point_len: 65,
    signing: &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
    verifying: &sig::ECDSA_P256K1_SHA256_ASN1,
    algorithm: SignatureAlgorithm::EcdsaSecp256k1Sha256,
};

impl Curve {
    /// The curve of an ECDSA spec.
    pub(crate) fn of(spec: KeySpec) -> Option<&'static Self> {
        match spec {
            KeySpec::EcdsaP256 => Some(&P256),
            KeySpec::EcdsaP384 => Some(&P384),
            KeySpec::EcdsaP521 => Some(&P521),
            KeySpec::EcdsaSecp256k1 => Some(&SECP256K1),
            _ => None,
        }
    }

    fn digest(&self) -> DigestAlgorithm {
        // Every curve's algorithm has a hash; SHA-256 is never reached as a fallback.
        self.algorithm.digest().unwrap_or(DigestAlgorithm::Sha256)
    }
}

/// An ECDSA private key on one of the supported curves.
pub struct EcdsaKey {
    curve: &'static Curve,
    pair: EcdsaKeyPair,
}

impl EcdsaKey {
    pub(crate) fn generate(curve: &'static Curve) -> Result<Self> {
        let pair = EcdsaKeyPair::generate(curve.signing)
            .map_err(|_| CryptoError::Backend("ECDSA key generation"))?;
        Ok(Self { curve, pair })
    }

    /// Loads `scalar ‖ public point` as written by [`EcdsaKey::to_stored`].
    pub(crate) fn from_stored(curve: &'static Curve, bytes: &[u8]) -> Result<Self> {
        if bytes.len() != curve.scalar_len + curve.point_len {
            return Err(CryptoError::malformed("ECDSA key material", "wrong length"));
        }
        let (scalar, point) = bytes.split_at(curve.scalar_len);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(curve.signing, scalar, point)
            .map_err(|_| CryptoError::KeyRejected("ECDSA key material"))?;
        Ok(Self { curve, pair })
    }

    pub(crate) fn spec(&self) -> KeySpec {
        self.curve.spec
    }

    pub(crate) fn algorithm(&self) -> SignatureAlgorithm {
        self.curve.algorithm
    }

    pub(crate) fn to_stored(&self) -> Result<SecretBytes> {
        let scalar: EcPrivateKeyBin<'_> = self
            .pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| CryptoError::Backend("ECDSA key export"))?;
        let mut out = Vec::with_capacity(self.curve.scalar_len + self.curve.point_len);
        out.extend_from_slice(scalar.as_ref());
        out.extend_from_slice(self.pair.public_key().as_ref());
        Ok(SecretBytes::new(out))
    }

    /// Loads PKCS #8 DER of a key on `curve`.
    pub(crate) fn from_pkcs8(curve: &'static Curve, der: &[u8]) -> Result<Self> {
        let pair = EcdsaKeyPair::from_pkcs8(curve.signing, der)
            .map_err(|_| CryptoError::KeyRejected("ECDSA PKCS #8 key"))?;
        Ok(Self { curve, pair })
    }

    /// The private key as PKCS #8 v1 DER.
    pub(crate) fn to_pkcs8(&self) -> Result<SecretBytes> {
        let document = self
            .pair
            .to_pkcs8v1()
            .map_err(|_| CryptoError::Backend("ECDSA key export"))?;
        Ok(SecretBytes::copy_from(document.as_ref()))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| CryptoError::Backend("ECDSA sign"))
    }

    pub(crate) fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        let digest = self.curve.digest().import(digest)?;
        self.pair
            .sign_digest(&digest)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| CryptoError::Backend("ECDSA sign"))
    }

    pub(crate) fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
}

pub(crate) fn verify_digest(
    key: &ParsedPublicKey,
    digest: DigestAlgorithm,
    digest_bytes: &[u8],
    signature: &[u8],
) -> Result<()> {
    let digest = digest.import(digest_bytes)?;
    key.verify_digest_sig(&digest, signature)
        .map_err(|_| CryptoError::InvalidSignature)
}
