//! ML-DSA-44/65/87 with a FIPS 204 context string, and over an external μ, through
//! aws-lc's EVP interface.
//!
//! aws-lc-rs signs ML-DSA only with the empty context; the composite signature needs the
//! composite label as context (draft-ietf-lamps-pq-composite-sigs, "Composite-ML-DSA.Sign"),
//! and AWS KMS's EXTERNAL_MU message type signs a caller-computed μ (FIPS 204 Algorithm 7,
//! line 6). aws-lc itself supports both (`EVP_PKEY_CTX_set1_signature_context_string`;
//! `EVP_PKEY_sign` on a 64-byte μ), so this module is the one place Coffer calls aws-lc's
//! C API directly: a key handle that owns one `EVP_PKEY`, and sign/verify calls that own
//! their contexts for the duration of the call.
#![allow(unsafe_code, reason = "FFI to aws-lc for ML-DSA with a context string")]

use std::ptr;

use aws_lc_sys as sys;

use crate::{CryptoError, Result};

/// FIPS 204: the context string is at most 255 bytes.
pub const MAX_CONTEXT_LEN: usize = 255;
/// ML-DSA-65 public key length.
pub const PUBLIC_KEY_LEN: usize = 1952;
/// ML-DSA seed length (ξ in FIPS 204 Algorithm 1).
pub const SEED_LEN: usize = 32;
/// Length of μ, the message representative an external-μ signature signs.
pub const MU_LEN: usize = 64;

/// One ML-DSA parameter set (FIPS 204, Table 2).
#[derive(Debug)]
pub(crate) struct MlDsaParams {
    nid: i32,
    pub(crate) public_key_len: usize,
    pub(crate) signature_len: usize,
}

pub(crate) static ML_DSA_44: MlDsaParams = MlDsaParams {
    nid: sys::NID_MLDSA44,
    public_key_len: 1312,
    signature_len: 2420,
};
pub(crate) static ML_DSA_65: MlDsaParams = MlDsaParams {
    nid: sys::NID_MLDSA65,
    public_key_len: PUBLIC_KEY_LEN,
    signature_len: 3309,
};
pub(crate) static ML_DSA_87: MlDsaParams = MlDsaParams {
    nid: sys::NID_MLDSA87,
    public_key_len: 2592,
    signature_len: 4627,
};

/// An owned ML-DSA `EVP_PKEY`, private (from a seed) or public only.
pub(crate) struct MlDsaHandle {
    pkey: ptr::NonNull<sys::EVP_PKEY>,
    params: &'static MlDsaParams,
}

// SAFETY: an EVP_PKEY is immutable after construction; signing and verifying create their
// own EVP_PKEY_CTX per call and only take a reference on the key (atomic refcount), which
// aws-lc documents as safe to share across threads (aws-lc-rs relies on the same).
unsafe impl Send for MlDsaHandle {}
// SAFETY: see `Send`.
unsafe impl Sync for MlDsaHandle {}

impl Drop for MlDsaHandle {
    fn drop(&mut self) {
        // SAFETY: we own the only reference taken at construction. EVP_PKEY_free
        // cleanses the private key.
        unsafe { sys::EVP_PKEY_free(self.pkey.as_ptr()) }
    }
}

impl MlDsaHandle {
    pub(crate) fn from_seed(params: &'static MlDsaParams, seed: &[u8; SEED_LEN]) -> Result<Self> {
        // SAFETY: pointer and length describe `seed`, which outlives the call; aws-lc
        // copies what it needs.
        let pkey = unsafe {
            sys::EVP_PKEY_pqdsa_new_raw_private_key(params.nid, seed.as_ptr(), seed.len())
        };
        ptr::NonNull::new(pkey)
            .map(|pkey| Self { pkey, params })
            .ok_or(CryptoError::KeyRejected("ML-DSA seed"))
    }

    pub(crate) fn from_public_key(params: &'static MlDsaParams, public_key: &[u8]) -> Result<Self> {
        if public_key.len() != params.public_key_len {
            return Err(CryptoError::malformed("ML-DSA public key", "wrong length"));
        }
        // SAFETY: as in `from_seed`.
        let pkey = unsafe {
            sys::EVP_PKEY_pqdsa_new_raw_public_key(
                params.nid,
                public_key.as_ptr(),
                public_key.len(),
            )
        };
        ptr::NonNull::new(pkey)
            .map(|pkey| Self { pkey, params })
            .ok_or(CryptoError::KeyRejected("ML-DSA public key"))
    }

    pub(crate) fn public_key(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.params.public_key_len];
        let mut len = out.len();
        // SAFETY: `out` has `len` writable bytes; aws-lc writes at most `len` and
        // updates it.
        let ok = unsafe {
            sys::EVP_PKEY_get_raw_public_key(self.pkey.as_ptr(), out.as_mut_ptr(), &mut len)
        };
        if ok != 1 || len != self.params.public_key_len {
            return Err(CryptoError::Backend("ML-DSA public key export"));
        }
        Ok(out)
    }

    /// Hedged (randomised) ML-DSA signature of `message` under `context`.
    pub(crate) fn sign(&self, context: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        check_context(context)?;
        let md = MdCtx::new()?;
        let mut pctx: *mut sys::EVP_PKEY_CTX = ptr::null_mut();
        let mut signature = vec![0u8; self.params.signature_len];
        let mut len = signature.len();
        // SAFETY: `md` is a fresh context owned for this call; `pctx` is owned by `md`
        // once init succeeds; every buffer pointer is paired with its true length.
        let ok = unsafe {
            sys::EVP_DigestSignInit(
                md.0.as_ptr(),
                &mut pctx,
                ptr::null(),
                ptr::null_mut(),
                self.pkey.as_ptr(),
            ) == 1
                && set_context(pctx, context)
                && sys::EVP_DigestSign(
                    md.0.as_ptr(),
                    signature.as_mut_ptr(),
                    &mut len,
                    message.as_ptr(),
                    message.len(),
                ) == 1
        };
        if !ok || len != self.params.signature_len {
            return Err(CryptoError::Backend("ML-DSA sign"));
        }
        Ok(signature)
    }

    /// True when `signature` is a valid ML-DSA signature of `message` under `context`.
    pub(crate) fn verify(&self, context: &[u8], message: &[u8], signature: &[u8]) -> bool {
        if check_context(context).is_err() || signature.len() != self.params.signature_len {
            return false;
        }
        let Ok(md) = MdCtx::new() else { return false };
        let mut pctx: *mut sys::EVP_PKEY_CTX = ptr::null_mut();
        // SAFETY: as in `sign`; aws-lc only reads `signature` and `message`.
        unsafe {
            sys::EVP_DigestVerifyInit(
                md.0.as_ptr(),
                &mut pctx,
                ptr::null(),
                ptr::null_mut(),
                self.pkey.as_ptr(),
            ) == 1
                && set_context(pctx, context)
                && sys::EVP_DigestVerify(
                    md.0.as_ptr(),
                    signature.as_ptr(),
                    signature.len(),
                    message.as_ptr(),
                    message.len(),
                ) == 1
        }
    }
}

impl MlDsaHandle {
    /// Hedged ML-DSA signature over an external μ (FIPS 204 Algorithm 7 from line 7 on):
    /// the caller bound the public key, context and message into μ.
    pub(crate) fn sign_mu(&self, mu: &[u8; MU_LEN]) -> Result<Vec<u8>> {
        let ctx = PkeyCtx::new(self)?;
        let mut signature = vec![0u8; self.params.signature_len];
        let mut len = signature.len();
        // SAFETY: `ctx` is a fresh context on our key, owned for this call; buffers are
        // paired with their true lengths.
        let ok = unsafe {
            sys::EVP_PKEY_sign_init(ctx.0.as_ptr()) == 1
                && sys::EVP_PKEY_sign(
                    ctx.0.as_ptr(),
                    signature.as_mut_ptr(),
                    &mut len,
                    mu.as_ptr(),
                    mu.len(),
                ) == 1
        };
        if !ok || len != self.params.signature_len {
            return Err(CryptoError::Backend("ML-DSA sign over external mu"));
        }
        Ok(signature)
    }

    /// True when `signature` is a valid ML-DSA signature over the external μ `mu`.
    pub(crate) fn verify_mu(&self, mu: &[u8; MU_LEN], signature: &[u8]) -> bool {
        if signature.len() != self.params.signature_len {
            return false;
        }
        let Ok(ctx) = PkeyCtx::new(self) else {
            return false;
        };
        // SAFETY: as in `sign_mu`; aws-lc only reads `signature` and `mu`.
        unsafe {
            sys::EVP_PKEY_verify_init(ctx.0.as_ptr()) == 1
                && sys::EVP_PKEY_verify(
                    ctx.0.as_ptr(),
                    signature.as_ptr(),
                    signature.len(),
                    mu.as_ptr(),
                    mu.len(),
                ) == 1
        }
    }
}

/// An owned `EVP_PKEY_CTX` on one key, freed on drop, also on error paths.
struct PkeyCtx(ptr::NonNull<sys::EVP_PKEY_CTX>);

impl PkeyCtx {
    fn new(key: &MlDsaHandle) -> Result<Self> {
        // SAFETY: the key is live for the call; the context takes its own reference.
        let raw = unsafe { sys::EVP_PKEY_CTX_new(key.pkey.as_ptr(), ptr::null_mut()) };
        ptr::NonNull::new(raw)
            .map(Self)
            .ok_or(CryptoError::Backend("EVP_PKEY_CTX allocation"))
    }
}

impl Drop for PkeyCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context and free it once.
        unsafe { sys::EVP_PKEY_CTX_free(self.0.as_ptr()) }
    }
}

fn check_context(context: &[u8]) -> Result<()> {
    if context.len() > MAX_CONTEXT_LEN {
        return Err(CryptoError::TooLong {
            what: "ML-DSA context",
            len: context.len(),
            max: MAX_CONTEXT_LEN,
        });
    }
    Ok(())
}

/// Sets the FIPS 204 context string; an empty context needs no call.
///
/// # Safety
/// `pctx` must be the live key context returned by a successful Digest{Sign,Verify}Init.
unsafe fn set_context(pctx: *mut sys::EVP_PKEY_CTX, context: &[u8]) -> bool {
    if context.is_empty() {
        return true;
    }
    // SAFETY: guaranteed by the caller; aws-lc copies the context bytes.
    unsafe {
        sys::EVP_PKEY_CTX_set1_signature_context_string(pctx, context.as_ptr(), context.len()) == 1
    }
}

/// An owned `EVP_MD_CTX`, freed (with its key context) on drop, also on error paths.
struct MdCtx(ptr::NonNull<sys::EVP_MD_CTX>);

impl MdCtx {
    fn new() -> Result<Self> {
        // SAFETY: plain allocation; null on failure.
        let raw = unsafe { sys::EVP_MD_CTX_new() };
        ptr::NonNull::new(raw)
            .map(Self)
            .ok_or(CryptoError::Backend("EVP_MD_CTX allocation"))
    }
}

impl Drop for MdCtx {
    fn drop(&mut self) {
        // SAFETY: we own the context; freeing it also frees the EVP_PKEY_CTX that
        // Digest*Init attached to it.
        unsafe { sys::EVP_MD_CTX_free(self.0.as_ptr()) }
    }
}
