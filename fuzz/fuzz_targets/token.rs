//! Arbitrary bearer text to the token decoder: it never panics, a token that decodes
//! re-encodes to the very text it came from (the tag covers the caveat bytes as sent),
//! and no decoded token verifies under a root key it was not made with.
#![no_main]

use coffer_core::token::Token;
use coffer_crypto::MacKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(token) = Token::decode(&text) {
        assert_eq!(token.encode(), text.trim());
        let root = MacKey::from_bytes(&[7u8; 32]).unwrap();
        assert!(token.verify(&root).is_err());
    }
});
