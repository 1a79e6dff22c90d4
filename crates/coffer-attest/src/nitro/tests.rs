use ciborium::Value;

use super::testkit::{Claims, TestChain, Validity};
use super::*;
use crate::{AttestationOptions, Attestor};

/// A real Nitro attestation document, made on 2022-07-26 by an enclave in us-west-2,
/// from the tests of brave/brave-core (`components/nitro_utils/cose_unittest.cc`,
/// commit a731f23fded58707a2d98e0265513b26474c64e2, MPL-2.0): base64-decoded, unchanged.
const REAL: &[u8] = include_bytes!("data/brave-2022-07-26.cbor");
/// Its `timestamp` (2022-07-26T20:28:35Z); its leaf certificate is valid 18:39:09–21:39:12.
const REAL_AT: i64 = 0x0000_0182_3bce_4eb6;

const NOW: i64 = 1_790_000_000_000;

fn verifier(root: Vec<u8>) -> NitroVerifier {
    NitroVerifier::new(root)
}

fn claims() -> Claims {
    Claims {
        pcr0: [0xab; 48],
        timestamp_ms: NOW,
        nonce: Some(b"fresh-nonce-0001".to_vec()),
        public_key: Some(b"enclave-spki".to_vec()),
    }
}

fn year_around_now() -> Validity {
    Validity {
        from: NOW / 1000 - 86_400,
        until: NOW / 1000 + 86_400,
    }
}

#[test]
fn the_embedded_root_is_the_one_aws_publishes() {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &aws_root_der());
    assert_eq!(
        hex::encode(digest.as_ref()),
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    );
}

#[test]
fn a_real_document_verifies_against_the_aws_root_at_its_own_time() {
    let attested = verifier(aws_root_der()).verify(REAL, REAL_AT).unwrap();
    assert_eq!(attested.format, Format::Nitro);
    assert_eq!(attested.timestamp_ms, REAL_AT);
    // A debug-mode enclave: PCR0 is all zeros.
    assert_eq!(attested.measurement.as_str(), "0".repeat(96));
    assert_eq!(attested.nonce.len(), 20);
    // Its `public_key` is an empty byte string: no recipient.
    assert_eq!(attested.public_key, None);
}

#[test]
fn the_real_document_fails_once_its_leaf_expired_or_under_another_root() {
    assert_eq!(
        verifier(aws_root_der()).verify(REAL, REAL_AT + 86_400_000),
        Err(AttestError::CertificateExpired)
    );
    let other = TestChain::new(year_around_now(), true);
    assert!(matches!(
        verifier(other.root).verify(REAL, REAL_AT),
        Err(AttestError::Untrusted(_))
    ));
    // Through the attestor, today: the document is long stale (its chain, too).
    let attestor = Attestor::new(&AttestationOptions::default());
    assert!(attestor.verify(REAL, NOW).is_err());
}

#[test]
fn a_flipped_bit_anywhere_in_the_real_signature_or_payload_is_refused() {
    let v = verifier(aws_root_der());
    let len = REAL.len();
    // The last byte is the signature's; one in the middle is inside the payload.
    for at in [len - 1, len - 50, 200, 1500] {
        let mut forged = REAL.to_vec();
        forged[at] ^= 0x01;
        assert!(v.verify(&forged, REAL_AT).is_err(), "byte {at}");
    }
}

#[test]
fn a_test_chain_document_verifies_with_its_pcr0_nonce_and_key() {
    let chain = TestChain::new(year_around_now(), true);
    let attested = verifier(chain.root.clone())
        .verify(&chain.document(&claims()), NOW)
        .unwrap();
    assert_eq!(attested.measurement.as_str(), "ab".repeat(48));
    assert_eq!(attested.nonce, b"fresh-nonce-0001");
    assert_eq!(attested.public_key.as_deref(), Some(&b"enclave-spki"[..]));
}

#[test]
fn expired_forged_and_untrusted_test_documents_are_refused() {
    let chain = TestChain::new(year_around_now(), true);
    let v = verifier(chain.root.clone());
    let document = chain.document(&claims());
    // Expired: the chain's validity ended a day after NOW.
    assert_eq!(
        v.verify(&document, NOW + 2 * 86_400_000),
        Err(AttestError::CertificateExpired)
    );
    // Forged: another chain's leaf signed it, its certificate swapped in.
    let forger = TestChain::new(year_around_now(), true);
    let mut payload = forger.payload(&claims());
    for (k, v) in &mut payload {
        if *k == Value::Text("certificate".into()) {
            *v = Value::Bytes(chain.leaf.clone());
        }
        if *k == Value::Text("cabundle".into()) {
            *v = Value::Array(vec![
                Value::Bytes(chain.root.clone()),
                Value::Bytes(chain.intermediate.clone()),
            ]);
        }
    }
    assert_eq!(
        v.verify(&forger.sign(payload, -35), NOW),
        Err(AttestError::BadSignature)
    );
    // Untrusted: a chain that does not start at the configured root.
    assert!(matches!(
        v.verify(&forger.document(&claims()), NOW),
        Err(AttestError::Untrusted(_))
    ));
    // An issuer that is not a CA.
    let flat = TestChain::new(year_around_now(), false);
    assert!(matches!(
        verifier(flat.root.clone()).verify(&flat.document(&claims()), NOW),
        Err(AttestError::Untrusted(_))
    ));
    // Another algorithm in the protected header (ES256).
    assert!(matches!(
        v.verify(&chain.sign(chain.payload(&claims()), -7), NOW),
        Err(AttestError::Untrusted(_))
    ));
}

#[test]
fn replayed_stale_and_nonceless_test_documents_are_refused_by_the_attestor() {
    let chain = TestChain::new(year_around_now(), true);
    let attestor = Attestor::new(&AttestationOptions {
        nitro_root: chain.root.clone(),
        ..AttestationOptions::default()
    });
    let document = chain.document(&claims());
    attestor.verify(&document, NOW).unwrap();
    assert_eq!(
        attestor.verify(&document, NOW + 10),
        Err(AttestError::Replayed)
    );
    let stale = chain.document(&Claims {
        timestamp_ms: NOW - 301_000,
        nonce: Some(b"another-nonce-02".to_vec()),
        ..claims()
    });
    assert_eq!(attestor.verify(&stale, NOW), Err(AttestError::Stale));
    let nonceless = chain.document(&Claims {
        nonce: None,
        ..claims()
    });
    assert_eq!(attestor.verify(&nonceless, NOW), Err(AttestError::Nonce));
}

#[test]
fn malformed_documents_are_refused_without_panicking() {
    let chain = TestChain::new(year_around_now(), true);
    let v = verifier(chain.root.clone());
    let good = chain.document(&claims());
    // Every truncation of a good document.
    for len in 0..good.len() {
        assert!(v.verify(&good[..len], NOW).is_err());
    }
    // Missing fields.
    for drop in ["pcrs", "certificate", "cabundle", "timestamp", "digest"] {
        let payload = chain
            .payload(&claims())
            .into_iter()
            .filter(|(k, _)| *k != Value::Text(drop.into()))
            .collect();
        assert!(
            matches!(
                v.verify(&chain.sign(payload, -35), NOW),
                Err(AttestError::Malformed(_))
            ),
            "{drop}"
        );
    }
    for garbage in [&[0x84u8][..], &[0xd2, 0x84, 0x40, 0xa0, 0x40], &[0xff; 64]] {
        assert!(v.verify(garbage, NOW).is_err());
    }
}
