//! Wycheproof known answers for Ed25519, ECDSA (P-256 SHA-256, P-384 SHA-384, P-521
//! SHA-512, secp256k1 SHA-256) and HMAC-SHA256, run through Coffer's public types
//! (including their SPKI, PEM and JWK decoders).

use coffer_crypto::{
    DigestAlgorithm, KeySpec, MacKey, PqVerifyMode, PublicKey, SignatureAlgorithm, VerifyingKey,
};

use super::vectors::{hex_field, is_valid, wycheproof_cases};

#[test]
fn wycheproof_ed25519() {
    let mut ran = 0;
    for (group, case) in wycheproof_cases("wycheproof_ed25519_test.json") {
        let der = hex_field(&group, "publicKeyDer");
        let key = PublicKey::from_spki_der(&der).expect("Wycheproof Ed25519 SPKI");
        // The three encodings Wycheproof ships must decode to the same key.
        let pem = group["publicKeyPem"].as_str().unwrap();
        assert_eq!(PublicKey::from_pem(pem).unwrap(), key);
        let jwk = group["publicKeyJwk"].to_string();
        assert_eq!(PublicKey::from_jwk_json(&jwk).unwrap(), key);
        assert_eq!(key.to_spki_der(), der);
        let verifier = VerifyingKey::new(key).unwrap();
        let result = verifier.verify(
            &hex_field(&case, "msg"),
            &hex_field(&case, "sig"),
            PqVerifyMode::And,
        );
        assert_eq!(result.is_ok(), is_valid(&case), "tcId {}", case["tcId"]);
        ran += 1;
    }
    assert!(ran > 100);
    println!("Wycheproof Ed25519 vectors: {ran} ran");
}

#[test]
fn wycheproof_ecdsa() {
    for (file, spec) in [
        (
            "wycheproof_ecdsa_secp256r1_sha256_test.json",
            KeySpec::EcdsaP256,
        ),
        (
            "wycheproof_ecdsa_secp384r1_sha384_test.json",
            KeySpec::EcdsaP384,
        ),
        (
            "wycheproof_ecdsa_secp521r1_sha512_test.json",
            KeySpec::EcdsaP521,
        ),
        (
            "wycheproof_ecdsa_secp256k1_sha256_test.json",
            KeySpec::EcdsaSecp256k1,
        ),
    ] {
        let mut ran = 0;
        for (group, case) in wycheproof_cases(file) {
            let der = hex_field(&group, "publicKeyDer");
            let key = PublicKey::from_spki_der(&der).expect("Wycheproof EC SPKI");
            assert_eq!(key.spec(), spec);
            assert_eq!(key.to_spki_der(), der);
            if let Some(pem) = group["publicKeyPem"].as_str() {
                assert_eq!(PublicKey::from_pem(pem).unwrap(), key);
            }
            if group["publicKeyJwk"].is_object() {
                let jwk = group["publicKeyJwk"].to_string();
                assert_eq!(PublicKey::from_jwk_json(&jwk).unwrap(), key, "{file}");
            }
            let verifier = VerifyingKey::new(key).unwrap();
            let (msg, sig) = (hex_field(&case, "msg"), hex_field(&case, "sig"));
            let result = verifier.verify(&msg, &sig, PqVerifyMode::And);
            assert_eq!(
                result.is_ok(),
                is_valid(&case),
                "{file} tcId {}",
                case["tcId"]
            );
            // The same verdict over the message's digest (the digest signing path).
            let algorithm = SignatureAlgorithm::for_spec(spec)[0];
            let digest = digest_of(algorithm, &msg);
            let result = verifier.verify_digest(algorithm, &digest, &sig);
            assert_eq!(
                result.is_ok(),
                is_valid(&case),
                "{file} tcId {}",
                case["tcId"]
            );
            ran += 1;
        }
        assert!(ran > 300, "{file}");
        println!("Wycheproof {file}: {ran} ran");
    }
}

pub fn digest_of(algorithm: SignatureAlgorithm, message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest::{SHA256, SHA384, SHA512, digest};
    let hash = match algorithm.digest().unwrap() {
        DigestAlgorithm::Sha256 => &SHA256,
        DigestAlgorithm::Sha384 => &SHA384,
        DigestAlgorithm::Sha512 => &SHA512,
    };
    digest(hash, message).as_ref().to_vec()
}

#[test]
fn wycheproof_hmac_sha256() {
    let mut ran = 0;
    for (group, case) in wycheproof_cases("wycheproof_hmac_sha256_test.json") {
        let key = hex_field(&case, "key");
        let tag = hex_field(&case, "tag");
        // Coffer's MAC keys are 256 bits and its tags full length; other groups test
        // sizes Coffer refuses by construction.
        if group["keySize"] != 256 {
            assert!(MacKey::from_bytes(&key).is_err(), "tcId {}", case["tcId"]);
            ran += 1;
            continue;
        }
        let mac = MacKey::from_bytes(&key).unwrap();
        let msg = hex_field(&case, "msg");
        let computed = mac.sign(&msg);
        let matches = computed[..tag.len()] == tag[..];
        assert_eq!(matches, is_valid(&case), "tcId {}", case["tcId"]);
        if group["tagSize"] == 256 {
            assert_eq!(
                mac.verify(&msg, &tag).is_ok(),
                is_valid(&case),
                "tcId {}",
                case["tcId"]
            );
        }
        ran += 1;
    }
    assert!(ran > 100);
    println!("Wycheproof HMAC-SHA256 vectors: {ran} ran");
}
