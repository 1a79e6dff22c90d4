//! ML-DSA-44/65/87 (FIPS 204). Stored as the 32-byte seed ξ, from which FIPS 204's
//! ML-DSA.KeyGen_internal derives the full key, so stored material stays small.

use crate::secret::SecretArray;
use crate::sign::mldsa_ffi::{
    ML_DSA_44, ML_DSA_65, ML_DSA_87, MU_LEN, MlDsaHandle, MlDsaParams, SEED_LEN,
};
use crate::spec::KeySpec;
use crate::{CryptoError, Result};

/// The parameter set of an ML-DSA spec.
pub(crate) fn params(spec: KeySpec) -> Option<&'static MlDsaParams> {
    match spec {
        KeySpec::MlDsa44 => Some(&ML_DSA_44),
        KeySpec::MlDsa65 => Some(&ML_DSA_65),
        KeySpec::MlDsa87 => Some(&ML_DSA_87),
        _ => None,
    }
}

/// An ML-DSA private key of one parameter set.
pub struct MlDsaKey {
    spec: KeySpec,
    handle: MlDsaHandle,
    seed: SecretArray<SEED_LEN>,
    public: Vec<u8>,
}

impl MlDsaKey {
    pub(crate) fn generate(spec: KeySpec) -> Result<Self> {
        Self::from_seed(spec, SecretArray::random()?)
    }

    pub(crate) fn from_seed_bytes(spec: KeySpec, seed: &[u8]) -> Result<Self> {
        Self::from_seed(spec, SecretArray::from_slice(seed, "ML-DSA seed")?)
    }

    fn from_seed(spec: KeySpec, seed: SecretArray<SEED_LEN>) -> Result<Self> {
        let params = params(spec).ok_or(CryptoError::WrongKeyType {
            operation: "ML-DSA key generation",
            spec: spec.as_str(),
        })?;
        let handle = MlDsaHandle::from_seed(params, seed.expose())?;
        let public = handle.public_key()?;
        Ok(Self {
            spec,
            handle,
            seed,
            public,
        })
    }

    pub(crate) fn spec(&self) -> KeySpec {
        self.spec
    }

    pub(crate) fn seed(&self) -> &[u8; SEED_LEN] {
        self.seed.expose()
    }

    /// Hedged signature under a FIPS 204 context string (empty for plain ML-DSA).
    pub(crate) fn sign(&self, context: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        self.handle.sign(context, message)
    }

    pub(crate) fn public_key(&self) -> &[u8] {
        &self.public
    }
}

impl super::SigningKey {
    /// Signs with ML-DSA under a FIPS 204 context string (at most 255 bytes).
    pub fn sign_ml_dsa_with_context(&self, context: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        match self {
            Self::MlDsa(key) => key.sign(context, message),
            other => Err(CryptoError::WrongKeyType {
                operation: "sign with an ML-DSA context",
                spec: other.spec().as_str(),
            }),
        }
    }

    /// Signs a caller-computed μ (AWS KMS's EXTERNAL_MU message type): 64 bytes of
    /// SHAKE256(SHAKE256(pk, 64) ‖ 0 ‖ len(ctx) ‖ ctx ‖ M, 64) per FIPS 204 Algorithm 7.
    pub fn sign_ml_dsa_external_mu(&self, mu: &[u8]) -> Result<Vec<u8>> {
        let mu: &[u8; MU_LEN] = mu
            .try_into()
            .map_err(|_| CryptoError::malformed("ML-DSA mu", "must be 64 bytes"))?;
        match self {
            Self::MlDsa(key) => key.handle.sign_mu(mu),
            other => Err(CryptoError::WrongKeyType {
                operation: "sign an external mu",
                spec: other.spec().as_str(),
            }),
        }
    }
}
