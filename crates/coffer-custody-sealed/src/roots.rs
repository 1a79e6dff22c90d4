//! Root generations under the unseal key, and the wrapped format.
//!
//! Formats, each an XAES-256-GCM seal with a domain-separated AAD so no blob of one
//! kind opens as another:
//! - verification blob: `seal_U("coffer/unseal-check/v1", CHECK_PLAINTEXT)`;
//! - root generation g: `seal_U("coffer/root-key/v1" ‖ g_be, root_key)`;
//! - wrapped secret: `g_be ‖ seal_root_g("coffer/root/v1" ‖ g_be ‖ aad, secret)`.

use std::collections::BTreeMap;

use coffer_core::CustodyError;
use coffer_crypto::xaes::{NONCE_LEN, TAG_LEN};
use coffer_crypto::{AeadKey, SecretBytes};

use crate::state::{RootEntry, StateFile};

const CHECK_AAD: &[u8] = b"coffer/unseal-check/v1";
const CHECK_PLAINTEXT: &[u8] = b"coffer sealed custody: the unseal key is right";
const ROOT_KEY_AAD: &[u8] = b"coffer/root-key/v1";
const WRAP_AAD: &[u8] = b"coffer/root/v1";
/// Bytes of the big-endian generation that prefixes every wrapped blob.
pub(crate) const GENERATION_LEN: usize = 4;

/// The verification blob for a new state file.
pub(crate) fn verification_blob(unseal_key: &AeadKey) -> Result<Vec<u8>, CustodyError> {
    unseal_key
        .seal(CHECK_AAD, CHECK_PLAINTEXT)
        .map_err(|_| CustodyError::Backend("sealing the verification blob"))
}

/// A fresh root key for `generation`, and its entry for the state file.
pub(crate) fn new_root(
    unseal_key: &AeadKey,
    generation: u32,
) -> Result<(AeadKey, RootEntry), CustodyError> {
    let root = AeadKey::generate().map_err(|_| CustodyError::Backend("generating a root key"))?;
    let wrapped_root = unseal_key
        .seal(&root_key_aad(generation), root.expose_secret())
        .map_err(|_| CustodyError::Backend("sealing a root key"))?;
    Ok((
        root,
        RootEntry {
            generation,
            wrapped_root,
        },
    ))
}

fn root_key_aad(generation: u32) -> Vec<u8> {
    [ROOT_KEY_AAD, &generation.to_be_bytes()].concat()
}

/// The generation a wrapped blob names, if it is long enough to name one.
pub(crate) fn generation_of(wrapped: &[u8]) -> Option<u32> {
    let prefix: [u8; GENERATION_LEN] = wrapped.get(..GENERATION_LEN)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix))
}

/// The keys of an unsealed custody: U (kept to seal new generations on rotation) and
/// every root generation the state file holds. All zeroize on drop (`AeadKey` does).
pub(crate) struct Roots {
    unseal_key: AeadKey,
    keys: BTreeMap<u32, AeadKey>,
    current: u32,
}

impl Roots {
    /// Checks `unseal_key` against the state's verification blob, then opens every
    /// root generation. `wrong_key` is the message for a key that does not verify, so
    /// each method can say what the operator got wrong.
    pub(crate) fn unlock(
        unseal_key: AeadKey,
        state: &StateFile,
        wrong_key: &'static str,
    ) -> Result<Self, CustodyError> {
        unseal_key
            .open(CHECK_AAD, &state.verification)
            .ok()
            .filter(|check| check.ct_eq(CHECK_PLAINTEXT))
            .ok_or(CustodyError::UnsealFailed(wrong_key))?;
        let mut keys = BTreeMap::new();
        for entry in &state.roots {
            // U verified, so a root that does not open means the file was damaged or
            // edited, not that the operator's input was wrong.
            let bytes = unseal_key
                .open(&root_key_aad(entry.generation), &entry.wrapped_root)
                .map_err(|_| {
                    CustodyError::Io(format!(
                        "state file damaged: root generation {} does not open under the \
                         verified unseal key",
                        entry.generation
                    ))
                })?;
            let key = AeadKey::from_bytes(bytes.expose_secret())
                .map_err(|_| CustodyError::Io("state file damaged: bad root key".into()))?;
            keys.insert(entry.generation, key);
        }
        Ok(Self {
            unseal_key,
            keys,
            current: state.current,
        })
    }

    pub(crate) fn unseal_key(&self) -> &AeadKey {
        &self.unseal_key
    }

    pub(crate) fn install(&mut self, generation: u32, key: AeadKey) {
        self.keys.insert(generation, key);
        self.current = generation;
    }

    pub(crate) fn retain_current(&mut self) {
        let current = self.current;
        self.keys.retain(|generation, _| *generation == current);
    }

    pub(crate) fn wrap(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, CustodyError> {
        let generation = self.current;
        let root = self
            .keys
            .get(&generation)
            .ok_or(CustodyError::Backend("current root generation missing"))?;
        let gen_be = generation.to_be_bytes();
        let mut out = Vec::with_capacity(GENERATION_LEN + NONCE_LEN + secret.len() + TAG_LEN);
        out.extend_from_slice(&gen_be);
        root.seal_into(&wrap_aad(gen_be, aad), secret, &mut out)
            .map_err(|_| CustodyError::Backend("wrapping under the root key"))?;
        Ok(out)
    }

    pub(crate) fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes, CustodyError> {
        let generation = generation_of(wrapped)
            .ok_or(CustodyError::Unwrap("too short to name a root generation"))?;
        let root = self.keys.get(&generation).ok_or(CustodyError::Unwrap(
            "its root generation is unknown or retired",
        ))?;
        root.open(
            &wrap_aad(generation.to_be_bytes(), aad),
            &wrapped[GENERATION_LEN..],
        )
        .map_err(|_| CustodyError::Unwrap("authentication failed: tampered, or bound to other aad"))
    }
}

fn wrap_aad(gen_be: [u8; GENERATION_LEN], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(WRAP_AAD.len() + GENERATION_LEN + aad.len());
    out.extend_from_slice(WRAP_AAD);
    out.extend_from_slice(&gen_be);
    out.extend_from_slice(aad);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_the_big_endian_prefix() {
        assert_eq!(generation_of(&[0, 0, 1, 2, 9]), Some(258));
        assert_eq!(generation_of(&[0, 0, 1]), None);
    }

    #[test]
    fn aads_are_domain_separated() {
        // A verification blob must not open as root generation 0 or as a wrapped blob.
        let key = AeadKey::generate().unwrap();
        let check = verification_blob(&key).unwrap();
        assert!(key.open(&root_key_aad(0), &check).is_err());
        assert!(key.open(&wrap_aad([0; 4], b""), &check).is_err());
    }
}
