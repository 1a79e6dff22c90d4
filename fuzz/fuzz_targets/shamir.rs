//! Arbitrary text as Shamir shares given to an unseal ceremony: the first byte picks the
//! share count and threshold, the rest is split into share texts at newlines (each given
//! the `coffer-share-v1:` prefix half the time, so the base64 and the combiner are
//! reached). Parsing, the duplicate check and the recombination answer a key or an
//! error, never panic; with tags (as every state file made now has), no share of the
//! input passes.
#![no_main]

use coffer_custody_sealed::SHARE_PREFIX;
use coffer_custody_sealed::fuzzing::ceremony;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (shares, threshold) = (first | 0x0f, (first >> 4).max(1));
    let text = String::from_utf8_lossy(rest);
    let texts: Vec<String> = text
        .split('\n')
        .enumerate()
        .map(|(i, t)| {
            if i % 2 == 0 {
                format!("{SHARE_PREFIX}{t}")
            } else {
                t.to_owned()
            }
        })
        .collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let _ = ceremony(&texts, shares, threshold, &[]);
    let tags = vec![vec![0x5a; 32]; usize::from(shares)];
    assert!(
        ceremony(&texts, shares, threshold, &tags).is_err(),
        "a share passed a tag"
    );
});
