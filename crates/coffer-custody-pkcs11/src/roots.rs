//! Root key generations in the token, and the wrapped format.
//!
//! Every generation is a non-extractable, sensitive AES-256 key labelled with the
//! configured key label; its `CKA_ID` is the generation as 4 big-endian bytes. A
//! wrapped blob is `generation (4) ‖ IV (12) ‖ AES-GCM ciphertext and tag (16)`,
//! sealed by the token with the associated data `DOMAIN ‖ generation ‖ aad`, so editing
//! the prefix cannot steer a blob to another generation.

use std::collections::BTreeMap;

use coffer_crypto::SecretBytes;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// Separates Coffer's wraps from any other use of the same key.
const DOMAIN: &[u8] = b"coffer/pkcs11-custody/v1";
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
const HEADER: usize = 4 + IV_LEN;
/// The shortest well-formed blob (empty secret).
pub(crate) const MIN_WRAPPED: usize = HEADER + (TAG_BITS as usize) / 8;

/// The root generations in the token, by generation.
pub(crate) fn find(
    session: &Session,
    label: &str,
) -> cryptoki::error::Result<BTreeMap<u32, ObjectHandle>> {
    let mut found = BTreeMap::new();
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    for handle in session.find_objects(&template)? {
        for attribute in session.get_attributes(handle, &[AttributeType::Id])? {
            if let Attribute::Id(id) = attribute
                && let Ok(bytes) = <[u8; 4]>::try_from(id.as_slice())
            {
                found.insert(u32::from_be_bytes(bytes), handle);
            }
        }
    }
    Ok(found)
}

/// Creates generation `generation` in the token: it never leaves it.
pub(crate) fn generate(
    session: &Session,
    label: &str,
    generation: u32,
) -> cryptoki::error::Result<ObjectHandle> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(generation.to_be_bytes().to_vec()),
    ];
    session.generate_key(&Mechanism::AesKeyGen, &template)
}

fn bound_aad(generation: u32, aad: &[u8]) -> Vec<u8> {
    [DOMAIN, &generation.to_be_bytes(), aad].concat()
}

/// The generation a blob names, if it is long enough to name one.
pub(crate) fn generation_of(wrapped: &[u8]) -> Option<u32> {
    wrapped
        .get(..4)
        .and_then(|prefix| <[u8; 4]>::try_from(prefix).ok())
        .map(u32::from_be_bytes)
}

/// Seals `secret` under `key` (generation `generation`) with a fresh IV from the token.
pub(crate) fn seal(
    session: &Session,
    key: ObjectHandle,
    generation: u32,
    aad: &[u8],
    secret: &[u8],
) -> cryptoki::error::Result<Vec<u8>> {
    let mut iv = [0u8; IV_LEN];
    session.generate_random_slice(&mut iv)?;
    let mut iv_param = iv;
    let aad = bound_aad(generation, aad);
    let params = GcmParams::new(&mut iv_param, &aad, TAG_BITS.into())?;
    let sealed = session.encrypt(&Mechanism::AesGcm(params), key, secret)?;
    let mut out = Vec::with_capacity(HEADER + sealed.len());
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a blob made by [`seal`]; the caller checked its length and generation.
pub(crate) fn open(
    session: &Session,
    key: ObjectHandle,
    aad: &[u8],
    wrapped: &[u8],
) -> cryptoki::error::Result<SecretBytes> {
    let generation = generation_of(wrapped).unwrap_or_default();
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&wrapped[4..HEADER]);
    let aad = bound_aad(generation, aad);
    let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into())?;
    session
        .decrypt(&Mechanism::AesGcm(params), key, &wrapped[HEADER..])
        .map(SecretBytes::new)
}
