//! Keys with a choice of algorithm (RSA), digests, OAEP and external μ: each choice
//! signs and verifies, and each wrong choice is refused by name.

use coffer_crypto::{
    CryptoError, EncryptionAlgorithm, KeyMaterial, KeySpec, PqVerifyMode, SignatureAlgorithm,
    SigningKey, VerifyingKey,
};

use super::kat_classical::digest_of;

fn signing_key(spec: KeySpec) -> SigningKey {
    match KeyMaterial::generate(spec).unwrap() {
        KeyMaterial::Signing(key) => key,
        other => panic!("{other:?}"),
    }
}

#[test]
fn rsa_signs_with_every_offered_algorithm_and_each_verifies_only_as_itself() {
    let key = signing_key(KeySpec::Rsa2048);
    let verifier = VerifyingKey::new(key.public_key()).unwrap();
    let offered = SignatureAlgorithm::for_spec(KeySpec::Rsa2048);
    assert_eq!(offered.len(), 6);
    assert_eq!(key.algorithm(), SignatureAlgorithm::RsaPssSha256);
    for &algorithm in offered {
        let signature = key.sign_with(algorithm, b"m").unwrap();
        assert_eq!(signature.len(), 256);
        for &other in offered {
            let result = verifier.verify_with(other, b"m", &signature, PqVerifyMode::And);
            assert_eq!(result.is_ok(), other == algorithm, "{algorithm} as {other}");
        }
        let digest = digest_of(algorithm, b"m");
        let over_digest = key.sign_digest(algorithm, &digest).unwrap();
        verifier
            .verify_with(algorithm, b"m", &over_digest, PqVerifyMode::And)
            .unwrap();
        verifier
            .verify_digest(algorithm, &digest, &signature)
            .unwrap();
        assert!(matches!(
            key.sign_digest(algorithm, &digest[1..]),
            Err(CryptoError::Malformed { .. })
        ));
        assert_eq!(
            algorithm.as_str().parse::<SignatureAlgorithm>(),
            Ok(algorithm)
        );
    }
}

#[test]
fn algorithms_a_spec_does_not_offer_are_refused() {
    let rsa = signing_key(KeySpec::Rsa2048);
    let p384 = signing_key(KeySpec::EcdsaP384);
    let ml_dsa = signing_key(KeySpec::MlDsa44);
    let refused = |result: Result<Vec<u8>, CryptoError>| {
        assert!(
            matches!(result, Err(CryptoError::WrongKeyType { .. })),
            "{result:?}"
        )
    };
    refused(rsa.sign_with(SignatureAlgorithm::EcdsaP256Sha256, b"m"));
    refused(p384.sign_with(SignatureAlgorithm::RsaPssSha384, b"m"));
    refused(p384.sign_with(SignatureAlgorithm::EcdsaP256Sha256, b"m"));
    refused(ml_dsa.sign_digest(SignatureAlgorithm::MlDsa44, &[0; 32]));
    refused(p384.sign_ml_dsa_external_mu(&[0; 64]));
    refused(p384.sign_sha256_digest(&[0; 32]));
    assert!(matches!(
        p384.decrypt(EncryptionAlgorithm::RsaOaepSha256, &[0; 256]),
        Err(CryptoError::WrongKeyType { .. })
    ));
    assert!(matches!(
        p384.public_key()
            .encrypt(EncryptionAlgorithm::RsaOaepSha256, b"x"),
        Err(CryptoError::WrongKeyType { .. })
    ));
    assert!(matches!(
        ml_dsa.sign_ml_dsa_external_mu(&[0; 63]),
        Err(CryptoError::Malformed { .. })
    ));
}

#[test]
fn every_ecdsa_curve_signs_digests_of_its_own_hash() {
    for spec in [
        KeySpec::EcdsaP256,
        KeySpec::EcdsaP384,
        KeySpec::EcdsaP521,
        KeySpec::EcdsaSecp256k1,
    ] {
        let key = signing_key(spec);
        let verifier = VerifyingKey::new(key.public_key()).unwrap();
        let algorithm = key.algorithm();
        let digest = digest_of(algorithm, b"m");
        let signature = key.sign_digest(algorithm, &digest).unwrap();
        verifier
            .verify(b"m", &signature, PqVerifyMode::And)
            .unwrap();
        verifier
            .verify(b"n", &signature, PqVerifyMode::And)
            .unwrap_err();
        // A digest of another length is malformed, never silently truncated.
        let wrong = [0u8; 20];
        assert!(key.sign_digest(algorithm, &wrong).is_err(), "{spec}");
    }
}

#[test]
fn oaep_round_trips_at_its_limit_and_refuses_past_it() {
    for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072] {
        let key = signing_key(spec);
        let public = key.public_key();
        for algorithm in [
            EncryptionAlgorithm::RsaOaepSha1,
            EncryptionAlgorithm::RsaOaepSha256,
        ] {
            let max = algorithm.max_plaintext_len(spec).unwrap();
            let plaintext = vec![0x5a; max];
            let ciphertext = public.encrypt(algorithm, &plaintext).unwrap();
            assert_eq!(ciphertext.len(), spec.rsa_bits().unwrap() / 8);
            assert_eq!(
                key.decrypt(algorithm, &ciphertext).unwrap().expose_secret(),
                plaintext
            );
            assert!(matches!(
                public.encrypt(algorithm, &vec![0; max + 1]),
                Err(CryptoError::TooLong { .. })
            ));
            // The other OAEP hash, a flipped byte, a short ciphertext: one error.
            let other = match algorithm {
                EncryptionAlgorithm::RsaOaepSha1 => EncryptionAlgorithm::RsaOaepSha256,
                EncryptionAlgorithm::RsaOaepSha256 => EncryptionAlgorithm::RsaOaepSha1,
            };
            let mut flipped = ciphertext.clone();
            flipped[7] ^= 1;
            for result in [
                key.decrypt(other, &ciphertext),
                key.decrypt(algorithm, &flipped),
                key.decrypt(algorithm, &ciphertext[1..]),
            ] {
                assert_eq!(result.err(), Some(CryptoError::DecryptFailed));
            }
        }
    }
}
