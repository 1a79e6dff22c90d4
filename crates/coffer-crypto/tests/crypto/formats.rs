//! Public-key encodings, stored material and signatures, end to end.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256K1_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    ECDSA_P521_SHA512_ASN1, ED25519, ML_DSA_44, ML_DSA_65, ML_DSA_87, ParsedPublicKey,
    RSA_PSS_2048_8192_SHA256,
};
use coffer_crypto::sign::{COMPOSITE_LABEL, COMPOSITE_PREFIX};
use coffer_crypto::{CryptoError, KeyMaterial, KeySpec, PqVerifyMode, PublicKey, VerifyingKey};

fn signing_specs() -> impl Iterator<Item = KeySpec> {
    KeySpec::ALL.into_iter().filter(|s| s.is_signing())
}

/// Coffer's own SPKI encoder against aws-lc's (an independent implementation), for
/// every classical and ML-DSA spec.
#[test]
fn spki_matches_an_independent_encoder() {
    for (spec, alg) in [
        (
            KeySpec::Ed25519,
            &ED25519 as &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
        ),
        (KeySpec::EcdsaP256, &ECDSA_P256_SHA256_ASN1),
        (KeySpec::EcdsaP384, &ECDSA_P384_SHA384_ASN1),
        (KeySpec::EcdsaP521, &ECDSA_P521_SHA512_ASN1),
        (KeySpec::EcdsaSecp256k1, &ECDSA_P256K1_SHA256_ASN1),
        (KeySpec::MlDsa44, &ML_DSA_44),
        (KeySpec::MlDsa65, &ML_DSA_65),
        (KeySpec::MlDsa87, &ML_DSA_87),
        (KeySpec::Rsa2048, &RSA_PSS_2048_8192_SHA256),
        (KeySpec::Rsa3072, &RSA_PSS_2048_8192_SHA256),
    ] {
        let public = KeyMaterial::generate(spec).unwrap().public_key().unwrap();
        let theirs = ParsedPublicKey::new(alg, public.raw()).unwrap();
        let der = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der<'_>>::as_der(&theirs).unwrap();
        assert_eq!(public.to_spki_der(), der.as_ref(), "{spec}");
    }
}

#[test]
fn every_encoding_round_trips() {
    for spec in signing_specs() {
        let public = KeyMaterial::generate(spec).unwrap().public_key().unwrap();
        assert_eq!(
            PublicKey::from_spki_der(&public.to_spki_der()).unwrap(),
            public
        );
        assert_eq!(PublicKey::from_pem(&public.to_pem()).unwrap(), public);
        let jwk = serde_json::to_string(&public.to_jwk(Some("kid-1"))).unwrap();
        assert_eq!(PublicKey::from_jwk_json(&jwk).unwrap(), public, "{spec}");
        assert!(!jwk.contains("\"d\"") && !jwk.contains("\"priv\""));
    }
}

#[test]
fn private_jwk_is_refused() {
    let jwk = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#;
    assert!(matches!(
        PublicKey::from_jwk_json(jwk),
        Err(CryptoError::Malformed { .. })
    ));
}

#[test]
fn stored_material_round_trips_and_signs_the_same() {
    for spec in KeySpec::ALL {
        let material = KeyMaterial::generate(spec).unwrap();
        let stored = material.to_stored().unwrap();
        let again = KeyMaterial::from_stored(stored.expose_secret()).unwrap();
        assert_eq!(again.spec(), spec);
        assert_eq!(again.public_key(), material.public_key());
        assert_eq!(
            again.to_stored().unwrap().expose_secret(),
            stored.expose_secret()
        );
        if let (KeyMaterial::Signing(a), KeyMaterial::Signing(b)) = (&material, &again) {
            let verifier = VerifyingKey::new(a.public_key()).unwrap();
            let signature = b.sign(b"release-1.2.3.tar.gz").unwrap();
            verifier
                .verify(b"release-1.2.3.tar.gz", &signature, PqVerifyMode::And)
                .unwrap();
            assert_eq!(
                verifier.verify(b"release-1.2.4.tar.gz", &signature, PqVerifyMode::And),
                Err(CryptoError::InvalidSignature)
            );
        }
    }
}

#[test]
fn ecdsa_signs_and_verifies_digests() {
    let KeyMaterial::Signing(key) = KeyMaterial::generate(KeySpec::EcdsaP256).unwrap() else {
        unreachable!()
    };
    let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"m")
        .as_ref()
        .try_into()
        .unwrap();
    let signature = key.sign_sha256_digest(&digest).unwrap();
    let verifier = VerifyingKey::new(key.public_key()).unwrap();
    verifier
        .verify(b"m", &signature, PqVerifyMode::And)
        .unwrap();
    verifier.verify_sha256_digest(&digest, &signature).unwrap();
}

/// The composite signature is ML-DSA-65(M', ctx = label) ‖ Ed25519(M'), with
/// M' = prefix ‖ label ‖ 0x00 ‖ SHA-512(M). Checked here against the two halves
/// verified independently by aws-lc-rs (Ed25519) and Coffer's ML-DSA context path.
#[test]
fn composite_signature_is_the_draft_construction() {
    let KeyMaterial::Signing(key) = KeyMaterial::generate(KeySpec::HybridEd25519MlDsa65).unwrap()
    else {
        unreachable!()
    };
    let message = b"attestation statement";
    let signature = key.sign(message).unwrap();
    assert_eq!(signature.len(), 3309 + 64);
    let PublicKey::Composite { ml_dsa, ed25519 } = key.public_key() else {
        unreachable!()
    };
    let mut m_prime = COMPOSITE_PREFIX.to_vec();
    m_prime.extend_from_slice(COMPOSITE_LABEL);
    m_prime.push(0);
    m_prime
        .extend_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, message).as_ref());
    let (pq, classical) = signature.split_at(3309);
    ParsedPublicKey::new(&ED25519, ed25519)
        .unwrap()
        .verify_sig(&m_prime, classical)
        .unwrap();
    let pq_verifier = VerifyingKey::new(PublicKey::MlDsa65(ml_dsa)).unwrap();
    pq_verifier
        .verify_ml_dsa_with_context(COMPOSITE_LABEL, &m_prime, pq)
        .unwrap();
    // Stripped halves are not valid plain signatures of the message.
    assert!(pq_verifier.verify(message, pq, PqVerifyMode::And).is_err());
}

/// Seed 002's KMS_PQ_VERIFY_MODE: a signature with one broken half.
#[test]
fn hybrid_verify_modes() {
    let KeyMaterial::Signing(key) = KeyMaterial::generate(KeySpec::HybridEd25519MlDsa65).unwrap()
    else {
        unreachable!()
    };
    let verifier = VerifyingKey::new(key.public_key()).unwrap();
    let good = key.sign(b"m").unwrap();
    let mut bad_classical = good.clone();
    *bad_classical.last_mut().unwrap() ^= 1;
    let mut bad_pq = good.clone();
    bad_pq[10] ^= 1;
    let check = |sig: &[u8], mode: PqVerifyMode| verifier.verify(b"m", sig, mode).is_ok();
    for mode in [PqVerifyMode::And, PqVerifyMode::Or, PqVerifyMode::PqOnly] {
        assert!(check(&good, mode), "{}", mode.as_str());
    }
    assert!(!check(&bad_classical, PqVerifyMode::And));
    assert!(check(&bad_classical, PqVerifyMode::Or));
    assert!(check(&bad_classical, PqVerifyMode::PqOnly));
    assert!(!check(&bad_pq, PqVerifyMode::And));
    assert!(check(&bad_pq, PqVerifyMode::Or));
    assert!(!check(&bad_pq, PqVerifyMode::PqOnly));
    assert_eq!(
        "pq_only".parse::<PqVerifyMode>().unwrap(),
        PqVerifyMode::PqOnly
    );
}

/// A hybrid key's classical half alone (`pq_produce_hybrid = false`): a plain Ed25519
/// signature over the message, which a verifier that is not PQ-ready checks with the
/// composite public key's Ed25519 part, and which Coffer accepts under `or` only.
#[test]
fn the_classical_half_is_plain_ed25519_accepted_under_or_only() {
    let KeyMaterial::Signing(key) = KeyMaterial::generate(KeySpec::HybridEd25519MlDsa65).unwrap()
    else {
        unreachable!()
    };
    let message = b"release 1.2";
    let signature = key.sign_classical_half(message).unwrap();
    assert_eq!(signature.len(), 64);
    let PublicKey::Composite { ed25519, .. } = key.public_key() else {
        unreachable!()
    };
    ParsedPublicKey::new(&ED25519, ed25519)
        .unwrap()
        .verify_sig(message, &signature)
        .unwrap();
    let verifier = VerifyingKey::new(key.public_key()).unwrap();
    let check = |msg: &[u8], sig: &[u8], mode| verifier.verify_classical_half(msg, sig, mode);
    check(message, &signature, PqVerifyMode::Or).unwrap();
    for mode in [PqVerifyMode::And, PqVerifyMode::PqOnly] {
        assert!(matches!(
            check(message, &signature, mode),
            Err(CryptoError::InvalidSignature)
        ));
    }
    assert!(check(b"release 1.3", &signature, PqVerifyMode::Or).is_err());
    // Nor is it a composite, under any mode.
    for mode in [PqVerifyMode::And, PqVerifyMode::Or, PqVerifyMode::PqOnly] {
        assert!(verifier.verify(message, &signature, mode).is_err());
    }

    // A composite's stripped Ed25519 half is a plain signature over its M'; the
    // classical half neither signs nor accepts a message beginning with the prefix.
    let composite = key.sign(message).unwrap();
    let stripped = &composite[3309..];
    let mut m_prime = COMPOSITE_PREFIX.to_vec();
    m_prime.extend_from_slice(COMPOSITE_LABEL);
    m_prime.push(0);
    m_prime
        .extend_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, message).as_ref());
    ParsedPublicKey::new(&ED25519, ed25519)
        .unwrap()
        .verify_sig(&m_prime, stripped)
        .unwrap();
    assert!(check(&m_prime, stripped, PqVerifyMode::Or).is_err());
    assert!(key.sign_classical_half(&m_prime).is_err());

    // Only hybrid keys have a classical half.
    let KeyMaterial::Signing(plain) = KeyMaterial::generate(KeySpec::Ed25519).unwrap() else {
        unreachable!()
    };
    assert!(matches!(
        plain.sign_classical_half(message),
        Err(CryptoError::WrongKeyType { .. })
    ));
}
