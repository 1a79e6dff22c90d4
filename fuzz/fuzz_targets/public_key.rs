//! Arbitrary input to every public-key decoder (SPKI DER, PEM, JWK); a key that decodes
//! must re-encode to an equal key.
#![no_main]

use coffer_crypto::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_spki_der(data) {
        assert_eq!(key.to_spki_der(), data);
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = PublicKey::from_pem(&text) {
        assert_eq!(PublicKey::from_pem(&key.to_pem()).unwrap(), key);
    }
    if let Ok(key) = PublicKey::from_jwk_json(&text) {
        assert_eq!(PublicKey::from_jwk(&key.to_jwk(None)).unwrap(), key);
    }
});
