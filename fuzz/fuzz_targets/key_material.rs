//! Arbitrary bytes as stored key material: typed error or a key, never a panic; a key
//! that loads must serialise back to the same bytes.
#![no_main]

use coffer_crypto::KeyMaterial;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(material) = KeyMaterial::from_stored(data) {
        let stored = material.to_stored().expect("loaded material serialises");
        assert_eq!(stored.expose_secret(), data);
    }
});
