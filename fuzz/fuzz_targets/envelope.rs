//! Arbitrary bytes as a ciphertext envelope: header parsing and opening must return a
//! typed error, never panic, and never open (the key is fixed and unknown to the input).
#![no_main]

use std::sync::OnceLock;

use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};
use coffer_crypto::{AeadKey, EncryptionContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static KEY: OnceLock<AeadKey> = OnceLock::new();
    let key = KEY.get_or_init(|| AeadKey::from_bytes(&[0x11; 32]).unwrap());
    let context = EncryptionContext::new();
    let _ = EnvelopeHeader::parse(data);
    let opened = envelope::open(key, data, Binding { tenant_id: &[0; 16], context: &context });
    assert!(opened.is_err(), "forged envelope opened");
});
