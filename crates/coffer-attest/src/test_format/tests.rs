use super::*;
use crate::{AttestationOptions, Attestor};

const NOW: i64 = 1_790_000_000_000;

fn measurement() -> Measurement {
    "a1".repeat(48).parse().unwrap()
}

fn attestor(authority: &Authority) -> Attestor {
    Attestor::new(&AttestationOptions {
        authority: Some(AuthorityKey::from_pem(&authority.public_key_pem()).unwrap()),
        ..AttestationOptions::default()
    })
}

fn claims(nonce: &[u8], timestamp: i64) -> Claims {
    Claims {
        measurement: measurement().to_string(),
        nonce: URL_SAFE_NO_PAD.encode(nonce),
        timestamp,
        public_key: None,
    }
}

#[test]
fn ed25519_and_p256_authorities_attest_and_verify() {
    let p256 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let authorities = [
        Authority::generate_ed25519().unwrap().0,
        Authority::from_pkcs8(p256.as_ref()).unwrap(),
    ];
    for (authority, kind) in authorities.iter().zip(["ed25519", "ecdsa-p256"]) {
        let key = AuthorityKey::from_pem(&authority.public_key_pem()).unwrap();
        assert_eq!(key.kind(), kind);
        let document = authority
            .attest_now(&measurement(), NOW, Some(b"spki-bytes"))
            .unwrap();
        let attested = attestor(authority)
            .verify(document.as_bytes(), NOW)
            .unwrap();
        assert_eq!(attested.format, Format::CofferTest);
        assert_eq!(attested.measurement, measurement());
        assert_eq!(attested.timestamp_ms, NOW);
        assert_eq!(attested.nonce.len(), 16);
        assert_eq!(attested.public_key.as_deref(), Some(&b"spki-bytes"[..]));
    }
}

#[test]
fn another_authoritys_document_is_refused() {
    let (trusted, _) = Authority::generate_ed25519().unwrap();
    let (forger, _) = Authority::generate_ed25519().unwrap();
    let document = forger.attest(&claims(b"nonce-123", NOW)).unwrap();
    assert_eq!(
        attestor(&trusted).verify(document.as_bytes(), NOW),
        Err(AttestError::BadSignature)
    );
}

#[test]
fn edited_claims_break_the_signature() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let document = authority.attest(&claims(b"nonce-123", NOW)).unwrap();
    let (signed, signature) = document.rsplit_once('.').unwrap();
    let mut edited = claims(b"nonce-123", NOW);
    edited.measurement = "b2".repeat(48);
    let edited_json = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&edited).unwrap());
    assert_ne!(signed, format!("{PREFIX}{edited_json}"));
    let forged = format!("{PREFIX}{edited_json}.{signature}");
    assert_eq!(
        attestor(&authority).verify(forged.as_bytes(), NOW),
        Err(AttestError::BadSignature)
    );
}

#[test]
fn without_an_authority_key_the_format_is_refused() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let document = authority.attest(&claims(b"nonce-123", NOW)).unwrap();
    let unconfigured = Attestor::new(&AttestationOptions::default());
    assert!(matches!(
        unconfigured.verify(document.as_bytes(), NOW),
        Err(AttestError::NotConfigured(_))
    ));
}

#[test]
fn stale_future_nonceless_and_replayed_documents_are_refused() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let attestor = attestor(&authority);
    let at = |nonce: &[u8], t: i64| authority.attest(&claims(nonce, t)).unwrap();
    let max_age = i64::try_from(crate::MAX_AGE.as_millis()).unwrap();
    assert_eq!(
        attestor.verify(at(b"nonce-old", NOW - max_age - 1).as_bytes(), NOW),
        Err(AttestError::Stale)
    );
    assert_eq!(
        attestor.verify(at(b"nonce-new", NOW + 61_000).as_bytes(), NOW),
        Err(AttestError::FromTheFuture)
    );
    assert_eq!(
        attestor.verify(at(b"short", NOW).as_bytes(), NOW),
        Err(AttestError::Nonce)
    );
    let fresh = at(b"nonce-once", NOW - max_age + 1_000);
    attestor.verify(fresh.as_bytes(), NOW).unwrap();
    assert_eq!(
        attestor.verify(fresh.as_bytes(), NOW + 1),
        Err(AttestError::Replayed)
    );
    // A refused document leaves its nonce unused: the stale one above was not kept.
    attestor
        .verify(at(b"nonce-old", NOW).as_bytes(), NOW)
        .unwrap();
}

#[test]
fn unknown_members_and_bad_encodings_are_malformed() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let attestor = attestor(&authority);
    // Signed, but with a member the format does not define.
    let json = br#"{"measurement":"00112233445566778899aabbccddeeff","nonce":"bm9uY2UtMTIz","timestamp":1,"extra":1}"#;
    let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    let Authority {
        signer: AuthoritySigner::Ed25519(key),
    } = &authority
    else {
        unreachable!()
    };
    let document = format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()))
    );
    assert!(matches!(
        attestor.verify(document.as_bytes(), NOW),
        Err(AttestError::Malformed(_))
    ));
    for garbage in [
        &b"coffer-attest-v1."[..],
        b"coffer-attest-v1.a.b.c",
        b"coffer-attest-v1.!!.??",
        b"coffer-attest-v1.\xff\xfe",
    ] {
        assert!(attestor.verify(garbage, NOW).is_err());
    }
    assert_eq!(
        attestor.verify(b"{\"not\":\"a document\"}", NOW),
        Err(AttestError::UnknownFormat)
    );
}

#[test]
fn authority_keys_of_other_algorithms_are_refused() {
    // An RSA SubjectPublicKeyInfo header is not Ed25519 or P-256.
    let rsa_header = "MA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ";
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{rsa_header}\n-----END PUBLIC KEY-----\n");
    assert!(AuthorityKey::from_pem(&pem).is_err());
    assert!(AuthorityKey::from_pem("not a pem").is_err());
}
