//! Untrusted input never panics: arbitrary bytes into `unwrap`, arbitrary text into
//! `submit_share`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_core::{Custody, CustodyError, SealStatus};
use coffer_custody_sealed::{SHARE_PREFIX, SealedCustody};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::{paths, unsealed_key_file};

#[test]
fn arbitrary_bytes_never_panic_in_unwrap() {
    let p = paths();
    let custody = unsealed_key_file(&p);
    let valid = custody.wrap(b"aad", b"secret").unwrap();
    // Half the cases carry a held generation so they reach the AEAD, not just the
    // generation lookup.
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..128),
        proptest::collection::vec(any::<u8>(), 0..128).prop_map(|tail| {
            let mut blob = 1u32.to_be_bytes().to_vec();
            blob.extend(tail);
            blob
        }),
    ];
    TestRunner::default()
        .run(&(bytes, any::<Vec<u8>>()), |(wrapped, aad)| {
            let result = custody.unwrap(&aad, &wrapped);
            if wrapped != valid {
                prop_assert!(matches!(result, Err(CustodyError::Unwrap(_))));
            }
            let _ = custody.needs_rewrap(&wrapped);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_text_never_panics_in_submit_share() {
    let p = paths();
    let (custody, _shares) = SealedCustody::init_shamir(&p.state, 5, 3).unwrap();
    // Well-formed shares of random bytes reach recombination and the verification
    // blob; free text exercises the parser.
    let text = prop_oneof![
        any::<String>(),
        "coffer-share-v1:[A-Za-z0-9+/=]{0,60}",
        proptest::collection::vec(any::<u8>(), 33)
            .prop_map(|bytes| format!("{SHARE_PREFIX}{}", STANDARD.encode(bytes))),
    ];
    TestRunner::default()
        .run(&text, |share| {
            match custody.submit_share(&share) {
                Ok(SealStatus::Sealed { threshold, .. }) => prop_assert_eq!(threshold, 3),
                Ok(SealStatus::Unsealed) => prop_assert!(false, "random shares unsealed"),
                Err(e) => prop_assert!(matches!(e, CustodyError::UnsealFailed(_))),
            }
            Ok(())
        })
        .unwrap();
}
