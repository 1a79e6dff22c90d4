//! The chain parser's smoke on stable (the `pem_chain` fuzz target runs longer by hand,
//! `scripts/fuzz`): arbitrary text, arbitrary bytes in PEM armour, and a real chain
//! with bytes flipped each answer a chain or an error, never a panic; a chain that
//! reads reads again from its own PEM to the same chain.

use base64::Engine;
use coffer_crypto::{KeySpec, SigningKey};
use proptest::prelude::*;

use super::{parse_pem_chain, x509};
use crate::time::Timestamp;

const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// A CA and a leaf it issued, as DER, leaf first.
fn real_chain() -> Vec<Vec<u8>> {
    let ca = SigningKey::generate(KeySpec::Ed25519).unwrap();
    let leaf = SigningKey::generate(KeySpec::EcdsaP256).unwrap();
    let request = |cn, is_ca| x509::Request {
        subject_cn: cn,
        not_before: Timestamp::from_millis(1_700_000_000_000),
        not_after: Timestamp::from_millis(1_900_000_000_000),
        is_ca,
    };
    let ca_public = ca.public_key();
    let ca_sign = |tbs: &[u8]| ca.sign(tbs).ok();
    let ca_der = x509::issue(&request("ca", true), &ca_public, &ca_public, &ca_sign, None).unwrap();
    let leaf_der = x509::issue(
        &request("leaf", false),
        &leaf.public_key(),
        &ca_public,
        &ca_sign,
        Some(&ca_der),
    )
    .unwrap();
    vec![leaf_der, ca_der]
}

fn armour(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
}

/// Reads `text`; a chain that reads is stable under its own PEM.
fn reads_or_refuses(text: &str) {
    if let Ok(chain) = parse_pem_chain(text, NOW) {
        assert!(!chain.links.is_empty());
        assert_eq!(parse_pem_chain(&chain.pem, NOW).unwrap(), chain);
    }
}

#[test]
fn the_real_chain_reads_and_verifies() {
    let ders = real_chain();
    let chain = parse_pem_chain(&x509::to_pem(&ders), NOW).unwrap();
    assert_eq!(chain.links.len(), 2);
    assert!(chain.links.iter().all(|l| l.signature.ok() == Some(true)));
    assert!(chain.links.iter().all(|l| l.valid_now));
    reads_or_refuses(&chain.pem);
}

#[test]
fn refusals_say_why() {
    for (text, why) in [
        ("", "no certificate"),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "CERTIFICATE",
        ),
        (&armour(b"not der"), "X.509"),
    ] {
        let error = parse_pem_chain(text, NOW).unwrap_err().to_string();
        assert!(error.contains(why), "{text:?}: {error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        reads_or_refuses(&text);
        reads_or_refuses(&format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n"));
    }

    #[test]
    fn arbitrary_der_in_armour_never_panics(der in proptest::collection::vec(any::<u8>(), 0..600)) {
        reads_or_refuses(&armour(&der));
    }

    #[test]
    fn a_real_chain_with_bytes_changed_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut ders = real_chain();
        for (at, byte) in &flips {
            let i = at.index(ders[0].len());
            ders[0][i] ^= byte | 1;
        }
        reads_or_refuses(&x509::to_pem(&ders));
        // Truncated inside the CA's certificate.
        let whole = x509::to_pem(&ders);
        reads_or_refuses(&whole[..cut.index(whole.len())]);
    }
}
