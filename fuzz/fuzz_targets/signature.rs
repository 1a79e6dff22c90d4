//! Arbitrary bytes as signatures for every signing spec and verify mode: verification
//! returns an error, never panics, and never accepts a forgery.
#![no_main]

use std::sync::OnceLock;

use coffer_crypto::{KeyMaterial, KeySpec, PqVerifyMode, VerifyingKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static VERIFIERS: OnceLock<Vec<VerifyingKey>> = OnceLock::new();
    let verifiers = VERIFIERS.get_or_init(|| {
        KeySpec::ALL
            .into_iter()
            .filter(|spec| spec.is_signing())
            .map(|spec| {
                let public = KeyMaterial::generate(spec).unwrap().public_key().unwrap();
                VerifyingKey::new(public).unwrap()
            })
            .collect()
    });
    let (message, signature) = data.split_at(data.len().min(16));
    for verifier in verifiers {
        for mode in [PqVerifyMode::And, PqVerifyMode::Or, PqVerifyMode::PqOnly] {
            assert!(verifier.verify(message, signature, mode).is_err(), "forgery accepted");
        }
    }
});
