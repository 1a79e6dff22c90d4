//! Composite ML-DSA-65 + Ed25519 (id-MLDSA65-Ed25519-SHA512, OID 1.3.6.1.5.5.7.6.48),
//! following draft-ietf-lamps-pq-composite-sigs (post-WGLC text, -08 onwards: no
//! randomiser, label-based domain separation):
//!
//! ```text
//! M'  = Prefix ‖ Label ‖ len(ctx) (1 byte) ‖ ctx ‖ SHA-512(M)
//! sig = ML-DSA-65.Sign(sk1, M', ctx = Label) ‖ Ed25519.Sign(sk2, M')
//! pk  = ML-DSA-65 pk (1952 bytes) ‖ Ed25519 pk (32 bytes)
//! ```
//!
//! Both halves sign the same M', and the label in both M' and the ML-DSA context binds
//! each half to this combination, so neither half can be stripped and passed off as a
//! plain ML-DSA or Ed25519 signature.
//!
//! **The classical half alone** (a tenant's PQ policy not producing the composite yet,
//! so that verifiers that are not PQ-ready keep working): a plain Ed25519 signature over
//! the message itself with the key's Ed25519 component, which any Ed25519 library
//! checks with the last 32 bytes of the public key. The component then signs two kinds
//! of message, and a composite's stripped Ed25519 half is a plain signature over that
//! composite's M', which begins with [`COMPOSITE_PREFIX`]. So the classical half never
//! signs, and never verifies, a message beginning with that prefix: no composite can be
//! turned into a classical-half signature Coffer accepts.

use aws_lc_rs::digest::{SHA512, digest};
use aws_lc_rs::signature::{ED25519, ParsedPublicKey};

use super::PqVerifyMode;
use super::ed25519::Ed25519Key;
use super::mldsa::MlDsaKey;
use super::mldsa_ffi::{self, ML_DSA_65, MlDsaHandle};
use crate::spec::KeySpec;
use crate::{CryptoError, PublicKey, Result};

/// The composite domain separator "CompositeAlgorithmSignatures2025".
pub const COMPOSITE_PREFIX: &[u8] = b"CompositeAlgorithmSignatures2025";
/// The label of id-MLDSA65-Ed25519-SHA512.
pub const COMPOSITE_LABEL: &[u8] = b"COMPSIG-MLDSA65-Ed25519-SHA512";
/// Length of the Ed25519 half of a composite signature.
const ED25519_SIGNATURE_LEN: usize = 64;

/// M' of the composite construction.
fn message_representative(context: &[u8], message: &[u8]) -> Result<Vec<u8>> {
    let context_len = u8::try_from(context.len()).map_err(|_| CryptoError::TooLong {
        what: "composite signature context",
        len: context.len(),
        max: mldsa_ffi::MAX_CONTEXT_LEN,
    })?;
    let hash = digest(&SHA512, message);
    let mut m = Vec::with_capacity(COMPOSITE_PREFIX.len() + COMPOSITE_LABEL.len() + 1 + 64);
    m.extend_from_slice(COMPOSITE_PREFIX);
    m.extend_from_slice(COMPOSITE_LABEL);
    m.push(context_len);
    m.extend_from_slice(context);
    m.extend_from_slice(hash.as_ref());
    Ok(m)
}

/// A composite private key: an ML-DSA-65 key and an Ed25519 key.
pub struct CompositeKey {
    ml_dsa: MlDsaKey,
    ed25519: Ed25519Key,
}

impl CompositeKey {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self {
            ml_dsa: MlDsaKey::generate(KeySpec::MlDsa65)?,
            ed25519: Ed25519Key::generate()?,
        })
    }

    /// From `ML-DSA seed (32) ‖ Ed25519 seed (32)`, the draft's private-key layout.
    pub(crate) fn from_seeds(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != 64 {
            return Err(CryptoError::malformed(
                "composite key material",
                "wrong length",
            ));
        }
        let (ml_dsa, ed25519) = bytes.split_at(32);
        Ok(Self {
            ml_dsa: MlDsaKey::from_seed_bytes(KeySpec::MlDsa65, ml_dsa)?,
            ed25519: Ed25519Key::from_seed_bytes(ed25519)?,
        })
    }

    pub(crate) fn write_seeds(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.ml_dsa.seed());
        out.extend_from_slice(self.ed25519.seed());
    }

    pub(crate) fn sign(&self, context: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        let m = message_representative(context, message)?;
        let mut signature = self.ml_dsa.sign(COMPOSITE_LABEL, &m)?;
        signature.extend_from_slice(&self.ed25519.sign(&m));
        Ok(signature)
    }

    /// The classical half alone: Ed25519 over `message` (module notes).
    pub(crate) fn sign_classical_half(&self, message: &[u8]) -> Result<Vec<u8>> {
        if message.starts_with(COMPOSITE_PREFIX) {
            return Err(CryptoError::malformed(
                "message",
                "a hybrid key's classical half does not sign messages beginning with the composite prefix",
            ));
        }
        Ok(self.ed25519.sign(message))
    }

    pub(crate) fn public_key(&self) -> PublicKey {
        PublicKey::Composite {
            ml_dsa: self.ml_dsa.public_key().to_vec(),
            ed25519: self.ed25519.public_key(),
        }
    }
}

pub(crate) struct CompositeVerifier {
    ml_dsa: MlDsaHandle,
    ed25519: ParsedPublicKey,
}

impl CompositeVerifier {
    pub(crate) fn new(ml_dsa: &[u8], ed25519: &[u8; 32]) -> Result<Self> {
        Ok(Self {
            ml_dsa: MlDsaHandle::from_public_key(&ML_DSA_65, ml_dsa)?,
            ed25519: ParsedPublicKey::new(&ED25519, ed25519)
                .map_err(|_| CryptoError::KeyRejected("Ed25519 public key"))?,
        })
    }

    pub(crate) fn verify(
        &self,
        context: &[u8],
        message: &[u8],
        signature: &[u8],
        mode: PqVerifyMode,
    ) -> bool {
        if signature.len() != ML_DSA_65.signature_len + ED25519_SIGNATURE_LEN {
            return false;
        }
        let Ok(m) = message_representative(context, message) else {
            return false;
        };
        let (pq, classical) = signature.split_at(ML_DSA_65.signature_len);
        let pq_ok = || self.ml_dsa.verify(COMPOSITE_LABEL, &m, pq);
        let classical_ok = || self.ed25519.verify_sig(&m, classical).is_ok();
        match mode {
            PqVerifyMode::And => pq_ok() && classical_ok(),
            PqVerifyMode::Or => classical_ok() || pq_ok(),
            PqVerifyMode::PqOnly => pq_ok(),
        }
    }

    /// A classical-half signature ([`CompositeKey::sign_classical_half`]): accepted by
    /// `or` alone, since `and` and `pq_only` need the ML-DSA half it does not carry.
    pub(crate) fn verify_classical_half(
        &self,
        message: &[u8],
        signature: &[u8],
        mode: PqVerifyMode,
    ) -> bool {
        mode == PqVerifyMode::Or
            && signature.len() == ED25519_SIGNATURE_LEN
            && !message.starts_with(COMPOSITE_PREFIX)
            && self.ed25519.verify_sig(message, signature).is_ok()
    }
}
