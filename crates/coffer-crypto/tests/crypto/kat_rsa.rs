//! Wycheproof known answers for RSA: RSASSA-PSS and RSASSA-PKCS1-v1_5 verification
//! (over the message and over its digest) and RSAES-OAEP decryption, through Coffer's
//! public types: the SPKI, PEM and JWK decoders, stored material (PKCS #8) and the
//! signing key's decryption.

use coffer_crypto::{
    CryptoError, EncryptionAlgorithm, KeyMaterial, PqVerifyMode, PublicKey, SignatureAlgorithm,
    SigningKey, VerifyingKey,
};

use super::kat_classical::digest_of;
use super::vectors::{hex_field, is_valid, wycheproof_cases};

fn verify_file(file: &str, algorithm: SignatureAlgorithm) -> usize {
    let mut ran = 0;
    for (group, case) in wycheproof_cases(file) {
        let der = hex_field(&group, "publicKeyDer");
        let key = PublicKey::from_spki_der(&der).expect("Wycheproof RSA SPKI");
        assert_eq!(key.to_spki_der(), der);
        assert_eq!(
            PublicKey::from_pem(group["publicKeyPem"].as_str().unwrap()).unwrap(),
            key
        );
        let jwk = group
            .get("publicKeyJwk")
            .or_else(|| group.get("keyJwk"))
            .unwrap();
        assert_eq!(PublicKey::from_jwk_json(&jwk.to_string()).unwrap(), key);
        let verifier = VerifyingKey::new(key).unwrap();
        let (msg, sig) = (hex_field(&case, "msg"), hex_field(&case, "sig"));
        let tc = &case["tcId"];
        let result = verifier.verify_with(algorithm, &msg, &sig, PqVerifyMode::And);
        assert_eq!(result.is_ok(), is_valid(&case), "{file} tcId {tc}");
        let digest = digest_of(algorithm, &msg);
        let result = verifier.verify_digest(algorithm, &digest, &sig);
        assert_eq!(result.is_ok(), is_valid(&case), "{file} tcId {tc} (digest)");
        ran += 1;
    }
    ran
}

#[test]
fn wycheproof_rsa_pss() {
    for (file, algorithm) in [
        (
            "wycheproof_rsa_pss_2048_sha256_mgf1_32_test.json",
            SignatureAlgorithm::RsaPssSha256,
        ),
        (
            "wycheproof_rsa_pss_2048_sha384_mgf1_48_test.json",
            SignatureAlgorithm::RsaPssSha384,
        ),
        (
            "wycheproof_rsa_pss_3072_sha256_mgf1_32_test.json",
            SignatureAlgorithm::RsaPssSha256,
        ),
        (
            "wycheproof_rsa_pss_4096_sha512_mgf1_64_test.json",
            SignatureAlgorithm::RsaPssSha512,
        ),
    ] {
        let ran = verify_file(file, algorithm);
        assert!(ran > 50, "{file}");
        println!("Wycheproof {file}: {ran} ran");
    }
}

#[test]
fn wycheproof_rsa_pkcs1() {
    for (file, algorithm) in [
        (
            "wycheproof_rsa_signature_2048_sha256_test.json",
            SignatureAlgorithm::RsaPkcs1Sha256,
        ),
        (
            "wycheproof_rsa_signature_3072_sha384_test.json",
            SignatureAlgorithm::RsaPkcs1Sha384,
        ),
        (
            "wycheproof_rsa_signature_4096_sha512_test.json",
            SignatureAlgorithm::RsaPkcs1Sha512,
        ),
    ] {
        let ran = verify_file(file, algorithm);
        assert!(ran > 100, "{file}");
        println!("Wycheproof {file}: {ran} ran");
    }
}

fn rsa_key_from_pkcs8(code: u8, pkcs8: &[u8]) -> SigningKey {
    let mut stored = vec![0x01, code];
    stored.extend_from_slice(pkcs8);
    match KeyMaterial::from_stored(&stored).expect("Wycheproof PKCS #8 key") {
        KeyMaterial::Signing(key) => key,
        other => panic!("not RSA material: {other:?}"),
    }
}

#[test]
fn wycheproof_rsa_oaep() {
    for (file, code, algorithm) in [
        (
            "wycheproof_rsa_oaep_2048_sha1_mgf1sha1_test.json",
            7,
            EncryptionAlgorithm::RsaOaepSha1,
        ),
        (
            "wycheproof_rsa_oaep_2048_sha256_mgf1sha256_test.json",
            7,
            EncryptionAlgorithm::RsaOaepSha256,
        ),
        (
            "wycheproof_rsa_oaep_3072_sha256_mgf1sha256_test.json",
            8,
            EncryptionAlgorithm::RsaOaepSha256,
        ),
        (
            "wycheproof_rsa_oaep_4096_sha256_mgf1sha256_test.json",
            9,
            EncryptionAlgorithm::RsaOaepSha256,
        ),
    ] {
        let (mut ran, mut labelled) = (0, 0);
        for (group, case) in wycheproof_cases(file) {
            if !hex_field(&case, "label").is_empty() {
                // OAEP labels are not offered (nor by AWS KMS).
                labelled += 1;
                continue;
            }
            let key = rsa_key_from_pkcs8(code, &hex_field(&group, "privateKeyPkcs8"));
            let (msg, ct, tc) = (
                hex_field(&case, "msg"),
                hex_field(&case, "ct"),
                &case["tcId"],
            );
            match key.decrypt(algorithm, &ct) {
                Ok(plain) => {
                    assert!(
                        is_valid(&case),
                        "{file} tcId {tc}: decrypted an invalid case"
                    );
                    assert_eq!(plain.expose_secret(), msg, "{file} tcId {tc}");
                }
                Err(err) => {
                    assert!(!is_valid(&case), "{file} tcId {tc}: {err}");
                    assert_eq!(
                        err,
                        CryptoError::DecryptFailed,
                        "one error for every failure"
                    );
                }
            }
            if is_valid(&case) {
                let ours = key.public_key().encrypt(algorithm, &msg).unwrap();
                assert_eq!(key.decrypt(algorithm, &ours).unwrap().expose_secret(), msg);
            }
            ran += 1;
        }
        assert!(ran > 20, "{file}");
        println!("Wycheproof {file}: {ran} ran ({labelled} with an OAEP label skipped)");
    }
}
