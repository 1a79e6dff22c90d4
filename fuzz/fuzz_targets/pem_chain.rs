//! Arbitrary text as a certificate chain given to an import: the PEM parser, the X.509
//! parser and the link-by-link inspection (validity, each signature against the next
//! link's key) answer a chain or an error, never panic; a chain that reads reads again
//! from the PEM Coffer stores for it, to the same chain.
#![no_main]

use coffer_core::Timestamp;
use coffer_core::kms::parse_pem_chain;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Timestamp::from_millis(1_800_000_000_000);
    let text = String::from_utf8_lossy(data);
    if let Ok(chain) = parse_pem_chain(&text, now) {
        assert!(!chain.links.is_empty());
        assert_eq!(parse_pem_chain(&chain.pem, now).unwrap(), chain);
    }
});
