//! RSA 2048/3072/4096: RSASSA-PSS and RSASSA-PKCS1-v1_5 signatures over SHA-256/384/512,
//! and RSAES-OAEP decryption (SHA-1 or SHA-256, MGF1 with the same hash, as AWS KMS's
//! RSAES_OAEP_SHA_1 and RSAES_OAEP_SHA_256). Stored as PKCS #8 DER; aws-lc checks the
//! key (RSA_check_key) when loading it.
//!
//! One private key serves both purposes at this layer; the key service decides, from the
//! key's purpose, whether it signs or decrypts.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm,
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{self as sig, KeyPair as _, RsaEncoding};

use super::SignatureAlgorithm;
use crate::secret::SecretBytes;
use crate::spec::KeySpec;
use crate::{CryptoError, Result};

/// An asymmetric encryption algorithm (RSA keys only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionAlgorithm {
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1 (AWS KMS `RSAES_OAEP_SHA_1`).
    RsaOaepSha1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (AWS KMS `RSAES_OAEP_SHA_256`).
    RsaOaepSha256,
}

impl EncryptionAlgorithm {
    /// Stable name used on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RsaOaepSha1 => "rsa-oaep-sha1",
            Self::RsaOaepSha256 => "rsa-oaep-sha256",
        }
    }

    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            Self::RsaOaepSha1 => &OAEP_SHA1_MGF1SHA1,
            Self::RsaOaepSha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }

    /// The largest plaintext a key of `spec` encrypts under this algorithm
    /// (k − 2·hLen − 2, RFC 8017 §7.1.1); `None` for specs that do not encrypt.
    pub fn max_plaintext_len(self, spec: KeySpec) -> Option<usize> {
        let hash_len = match self {
            Self::RsaOaepSha1 => 20,
            Self::RsaOaepSha256 => 32,
        };
        spec.rsa_bits().map(|bits| bits / 8 - 2 * hash_len - 2)
    }
}

impl std::str::FromStr for EncryptionAlgorithm {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rsa-oaep-sha1" => Ok(Self::RsaOaepSha1),
            "rsa-oaep-sha256" => Ok(Self::RsaOaepSha256),
            _ => Err(CryptoError::malformed(
                "encryption algorithm",
                "expected rsa-oaep-sha1 or rsa-oaep-sha256",
            )),
        }
    }
}

impl std::fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn encoding(algorithm: SignatureAlgorithm) -> Option<&'static dyn RsaEncoding> {
    Some(match algorithm {
        SignatureAlgorithm::RsaPssSha256 => &sig::RSA_PSS_SHA256,
        SignatureAlgorithm::RsaPssSha384 => &sig::RSA_PSS_SHA384,
        SignatureAlgorithm::RsaPssSha512 => &sig::RSA_PSS_SHA512,
        SignatureAlgorithm::RsaPkcs1Sha256 => &sig::RSA_PKCS1_SHA256,
        SignatureAlgorithm::RsaPkcs1Sha384 => &sig::RSA_PKCS1_SHA384,
        SignatureAlgorithm::RsaPkcs1Sha512 => &sig::RSA_PKCS1_SHA512,
        _ => return None,
    })
}

/// An RSA private key, parsed for signing and for OAEP decryption.
pub struct RsaKey {
    spec: KeySpec,
    pair: KeyPair,
    decrypting: OaepPrivateDecryptingKey,
}

impl RsaKey {
    pub(crate) fn generate(spec: KeySpec) -> Result<Self> {
        let size = match spec {
            KeySpec::Rsa2048 => KeySize::Rsa2048,
            KeySpec::Rsa3072 => KeySize::Rsa3072,
            KeySpec::Rsa4096 => KeySize::Rsa4096,
            _ => {
                return Err(CryptoError::WrongKeyType {
                    operation: "RSA key generation",
                    spec: spec.as_str(),
                });
            }
        };
        let pair =
            KeyPair::generate(size).map_err(|_| CryptoError::Backend("RSA key generation"))?;
        let pkcs8 = Self::export(&pair)?;
        Self::from_stored(spec, pkcs8.expose_secret())
    }

    fn export(pair: &KeyPair) -> Result<SecretBytes> {
        let der: Pkcs8V1Der<'static> = pair
            .as_der()
            .map_err(|_| CryptoError::Backend("RSA key export"))?;
        // `der` zeroizes its own buffer on drop.
        Ok(SecretBytes::copy_from(der.as_ref()))
    }

    /// Loads PKCS #8 DER, refusing a modulus of another size than `spec`'s.
    pub(crate) fn from_stored(spec: KeySpec, pkcs8: &[u8]) -> Result<Self> {
        let bits = spec.rsa_bits().ok_or(CryptoError::WrongKeyType {
            operation: "RSA key loading",
            spec: spec.as_str(),
        })?;
        let pair =
            KeyPair::from_pkcs8(pkcs8).map_err(|_| CryptoError::KeyRejected("RSA key material"))?;
        if pair.public_modulus_len() * 8 != bits {
            return Err(CryptoError::KeyRejected("RSA modulus of another size"));
        }
        let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .ok()
            .and_then(|key| OaepPrivateDecryptingKey::new(key).ok())
            .ok_or(CryptoError::KeyRejected("RSA key material"))?;
        Ok(Self {
            spec,
            pair,
            decrypting,
        })
    }

    pub(crate) fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The private key as PKCS #8 DER (the stored form).
    pub(crate) fn to_pkcs8(&self) -> Result<SecretBytes> {
        Self::export(&self.pair)
    }

    pub(crate) fn to_stored(&self) -> Result<SecretBytes> {
        Self::export(&self.pair)
    }

    /// RSAPublicKey DER (RFC 8017 A.1.1), the SPKI bit string's contents.
    pub(crate) fn public_key_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    pub(crate) fn sign(&self, algorithm: SignatureAlgorithm, message: &[u8]) -> Result<Vec<u8>> {
        let padding = self.encoding(algorithm)?;
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(padding, &SystemRandom::new(), message, &mut signature)
            .map_err(|_| CryptoError::Backend("RSA sign"))?;
        Ok(signature)
    }

    pub(crate) fn sign_digest(
        &self,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        let padding = self.encoding(algorithm)?;
        let hash = algorithm
            .digest()
            .ok_or(CryptoError::Backend("RSA digest"))?;
        let digest = hash.import(digest)?;
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign_digest(padding, &digest, &mut signature)
            .map_err(|_| CryptoError::Backend("RSA sign"))?;
        Ok(signature)
    }

    fn encoding(&self, algorithm: SignatureAlgorithm) -> Result<&'static dyn RsaEncoding> {
        encoding(algorithm).ok_or(CryptoError::WrongKeyType {
            operation: "sign with this algorithm",
            spec: self.spec.as_str(),
        })
    }

    /// OAEP decryption. Every failure is the one [`CryptoError::DecryptFailed`], so the
    /// answer cannot serve as a padding oracle.
    pub(crate) fn decrypt(
        &self,
        algorithm: EncryptionAlgorithm,
        ciphertext: &[u8],
    ) -> Result<SecretBytes> {
        if ciphertext.len() != self.decrypting.key_size_bytes() {
            return Err(CryptoError::DecryptFailed);
        }
        let mut out = SecretBytes::new(vec![0u8; self.decrypting.min_output_size()]);
        let len = self
            .decrypting
            .decrypt(algorithm.oaep(), ciphertext, out.expose_secret_mut(), None)
            .map_err(|_| CryptoError::DecryptFailed)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

/// OAEP encryption to an RSA public key given as SubjectPublicKeyInfo DER.
pub(crate) fn encrypt(
    spki: &[u8],
    algorithm: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let key = PublicEncryptingKey::from_der(spki)
        .map_err(|_| CryptoError::KeyRejected("RSA public key"))?;
    let key = OaepPublicEncryptingKey::new(key)
        .map_err(|_| CryptoError::KeyRejected("RSA public key"))?;
    let max = key.max_plaintext_size(algorithm.oaep());
    if plaintext.len() > max {
        return Err(CryptoError::TooLong {
            what: "RSA-OAEP plaintext",
            len: plaintext.len(),
            max,
        });
    }
    let mut out = vec![0u8; key.ciphertext_size()];
    let len = key
        .encrypt(algorithm.oaep(), plaintext, &mut out, None)
        .map_err(|_| CryptoError::Backend("RSA-OAEP encrypt"))?
        .len();
    out.truncate(len);
    Ok(out)
}
