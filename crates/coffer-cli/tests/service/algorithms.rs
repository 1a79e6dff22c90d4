//! The algorithms beyond Coffer's first five (RSA, ECDSA P-384/P-521/secp256k1,
//! ML-DSA-44/87) through the native API and the `coffer` binary: every spec signs and
//! verifies, RSA with each algorithm it offers, RSA encrypt keys encrypt and decrypt,
//! rotation keeps old versions checking, and each misuse is refused with its code.

use coffer_api::admin::MintTokenRequest;
use coffer_api::crypto::{DecryptRequest, EncryptRequest, SignRequest, VerifyRequest};
use coffer_api::keys::{CreateKeyRequest, IssueCertificateRequest, SetAliasRequest};
use coffer_api::{B64, B64Secret, ErrorCode};
use coffer_client::Client;
use coffer_crypto::{
    EncryptionAlgorithm, PqVerifyMode, PublicKey, SignatureAlgorithm, VerifyingKey,
};
use coffer_server::startup::InitMethod;

use super::api::{code_of, wrap_request};
use super::harness::{Db, TestServer};

fn sign_request(key: &str, message: &[u8], algorithm: Option<&str>) -> SignRequest {
    SignRequest {
        key_id: key.into(),
        message: Some(B64(message.to_vec())),
        algorithm: algorithm.map(str::to_owned),
        ..Default::default()
    }
}

fn verify_request(
    key: &str,
    version: Option<u32>,
    message: &[u8],
    signature: &B64,
) -> VerifyRequest {
    VerifyRequest {
        key_id: key.into(),
        key_version: version,
        message: Some(B64(message.to_vec())),
        signature: signature.clone(),
        ..Default::default()
    }
}

async fn create_key(client: &Client, spec: &str, purpose: Option<&str>) -> String {
    let request = CreateKeyRequest {
        spec: spec.into(),
        purpose: purpose.map(str::to_owned),
        ..Default::default()
    };
    client.create_key(&request).await.unwrap().key_id
}

/// The public key of `key`'s `version`, as the API shows it.
async fn public_key(client: &Client, key: &str, version: u32) -> PublicKey {
    let view = client.show_key(key).await.unwrap();
    let pem = view
        .versions
        .iter()
        .find(|v| v.version == version)
        .and_then(|v| v.public_key_pem.clone())
        .unwrap();
    PublicKey::from_pem(&pem).unwrap()
}

async fn every_new_spec_signs_and_verifies(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let acme = server.tenant("acme").await;
    for (spec, algorithm) in [
        ("ecdsa-p384", "ecdsa-p384-sha384"),
        ("ecdsa-p521", "ecdsa-p521-sha512"),
        ("ecdsa-secp256k1", "ecdsa-secp256k1-sha256"),
        ("ml-dsa-44", "ml-dsa-44"),
        ("ml-dsa-87", "ml-dsa-87"),
        ("rsa-2048", "rsa-pss-sha256"),
        ("rsa-4096", "rsa-pss-sha256"),
    ] {
        let key = create_key(&acme, spec, None).await;
        let view = acme.show_key(&key).await.unwrap();
        assert_eq!((view.spec.as_str(), view.purpose.as_str()), (spec, "sign"));
        let signed = acme
            .sign(&sign_request(&key, b"release", None))
            .await
            .unwrap();
        assert_eq!(signed.algorithm, algorithm, "{spec}");
        let ok = acme
            .verify(&verify_request(&key, None, b"release", &signed.signature))
            .await
            .unwrap();
        let tampered = acme
            .verify(&verify_request(&key, None, b"releasf", &signed.signature))
            .await
            .unwrap();
        assert!(ok.valid && !tampered.valid, "{spec}");
        // Checked outside Coffer too, against the public key the API shows.
        let verifier = VerifyingKey::new(public_key(&acme, &key, 1).await).unwrap();
        let alg: SignatureAlgorithm = algorithm.parse().unwrap();
        verifier
            .verify_with(alg, b"release", &signed.signature.0, PqVerifyMode::And)
            .unwrap();
    }

    // RSA: every algorithm the key offers, each verifying only as itself.
    let rsa = create_key(&acme, "rsa-3072", None).await;
    for algorithm in SignatureAlgorithm::for_spec(coffer_crypto::KeySpec::Rsa3072) {
        let name = algorithm.as_str();
        let signed = acme
            .sign(&sign_request(&rsa, b"m", Some(name)))
            .await
            .unwrap();
        assert_eq!(signed.algorithm, name);
        for other in ["rsa-pss-sha256", "rsa-pkcs1-sha512"] {
            let mut request = verify_request(&rsa, None, b"m", &signed.signature);
            request.algorithm = Some(other.into());
            let answer = acme.verify(&request).await.unwrap();
            assert_eq!(answer.valid, other == name, "{name} checked as {other}");
        }
    }
    // A digest by the algorithm's hash: 48 bytes for SHA-384, refused at 32.
    let digest = vec![0x42; 48];
    let mut request = SignRequest {
        key_id: rsa.clone(),
        digest: Some(B64(digest.clone())),
        algorithm: Some("rsa-pkcs1-sha384".into()),
        ..Default::default()
    };
    let signed = acme.sign(&request).await.unwrap();
    let verifier = VerifyingKey::new(public_key(&acme, &rsa, 1).await).unwrap();
    verifier
        .verify_digest(
            SignatureAlgorithm::RsaPkcs1Sha384,
            &digest,
            &signed.signature.0,
        )
        .unwrap();
    request.digest = Some(B64(vec![0x42; 32]));
    assert_eq!(
        code_of(acme.sign(&request).await),
        ErrorCode::InvalidRequest
    );
    // Algorithms the spec does not offer, and unknown names.
    for bad in ["ecdsa-p256-sha256", "rsa-pss-sha1", "ml-dsa-44"] {
        let result = acme.sign(&sign_request(&rsa, b"m", Some(bad))).await;
        assert_eq!(code_of(result), ErrorCode::InvalidRequest, "{bad}");
    }

    // ML-DSA external μ: signed and verified as μ; a digest is refused.
    let ml_dsa = create_key(&acme, "ml-dsa-87", None).await;
    let mu = B64(vec![7; 64]);
    let request = SignRequest {
        key_id: ml_dsa.clone(),
        mu: Some(mu.clone()),
        ..Default::default()
    };
    let signed = acme.sign(&request).await.unwrap();
    let check = |mu: &B64| VerifyRequest {
        key_id: ml_dsa.clone(),
        mu: Some(mu.clone()),
        signature: signed.signature.clone(),
        ..Default::default()
    };
    assert!(acme.verify(&check(&mu)).await.unwrap().valid);
    assert!(!acme.verify(&check(&B64(vec![8; 64]))).await.unwrap().valid);
    let digest_request = SignRequest {
        key_id: ml_dsa.clone(),
        digest: Some(B64(vec![0; 64])),
        ..Default::default()
    };
    assert_eq!(
        code_of(acme.sign(&digest_request).await),
        ErrorCode::InvalidRequest
    );

    // Rotation: the new version signs, the old one still verifies by number.
    let p384 = create_key(&acme, "ecdsa-p384", None).await;
    let old = acme.sign(&sign_request(&p384, b"v1", None)).await.unwrap();
    acme.rotate_key(&p384).await.unwrap();
    let new = acme.sign(&sign_request(&p384, b"v2", None)).await.unwrap();
    assert_eq!((old.key_version, new.key_version), (1, 2));
    let answer = acme
        .verify(&verify_request(&p384, Some(1), b"v1", &old.signature))
        .await
        .unwrap();
    assert!(answer.valid);
    let answer = acme
        .verify(&verify_request(&p384, Some(2), b"v1", &old.signature))
        .await
        .unwrap();
    assert!(!answer.valid);

    // Published: the tenant's JWKS carries the P-384 and RSA keys in their JOSE forms.
    acme.publish_key(&p384).await.unwrap();
    acme.publish_key(&rsa).await.unwrap();
    let jwks = server.anonymous().jwks("acme").await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["kty"] == "EC" && k["crv"] == "P-384"));
    let rsa_jwk = keys.iter().find(|k| k["kty"] == "RSA").unwrap();
    assert_eq!(
        PublicKey::from_jwk_json(&rsa_jwk.to_string()).unwrap(),
        public_key(&acme, &rsa, 1).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_spec_signs_and_verifies_on_sqlite() {
    every_new_spec_signs_and_verifies(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_spec_signs_and_verifies_on_postgres() {
    every_new_spec_signs_and_verifies(Db::Postgres).await;
}

fn encrypt_request(
    key: &str,
    version: Option<u32>,
    algorithm: &str,
    plaintext: &[u8],
) -> EncryptRequest {
    EncryptRequest {
        key_id: key.into(),
        key_version: version,
        algorithm: algorithm.into(),
        plaintext: B64Secret::new(plaintext.to_vec()),
    }
}

fn decrypt_request(
    key: &str,
    version: Option<u32>,
    algorithm: &str,
    ciphertext: &B64,
) -> DecryptRequest {
    DecryptRequest {
        key_id: key.into(),
        key_version: version,
        algorithm: algorithm.into(),
        ciphertext: ciphertext.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_encrypt_keys_encrypt_and_decrypt_and_nothing_else() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let rsa = create_key(&acme, "rsa-2048", Some("encrypt")).await;
    assert_eq!(acme.show_key(&rsa).await.unwrap().purpose, "encrypt");

    for algorithm in ["rsa-oaep-sha256", "rsa-oaep-sha1"] {
        let sealed = acme
            .encrypt_asymmetric(&encrypt_request(&rsa, None, algorithm, b"db password"))
            .await
            .unwrap();
        assert_eq!((sealed.key_version, sealed.ciphertext.0.len()), (1, 256));
        let opened = acme
            .decrypt_asymmetric(&decrypt_request(&rsa, None, algorithm, &sealed.ciphertext))
            .await
            .unwrap();
        assert_eq!(opened.plaintext.expose_secret(), b"db password");
    }
    // Encrypted outside Coffer with the public key the API shows; decrypted inside.
    let public = public_key(&acme, &rsa, 1).await;
    let outside = B64(public
        .encrypt(EncryptionAlgorithm::RsaOaepSha256, b"from outside")
        .unwrap());
    let opened = acme
        .decrypt_asymmetric(&decrypt_request(&rsa, None, "rsa-oaep-sha256", &outside))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"from outside");
    // The wrong OAEP hash, a changed byte, the 190-byte limit: each refused by code.
    let wrong_hash = acme
        .decrypt_asymmetric(&decrypt_request(&rsa, None, "rsa-oaep-sha1", &outside))
        .await;
    assert_eq!(code_of(wrong_hash), ErrorCode::InvalidCiphertext);
    let mut changed = outside.clone();
    changed.0[100] ^= 1;
    let changed = acme
        .decrypt_asymmetric(&decrypt_request(&rsa, None, "rsa-oaep-sha256", &changed))
        .await;
    assert_eq!(code_of(changed), ErrorCode::InvalidCiphertext);
    acme.encrypt_asymmetric(&encrypt_request(&rsa, None, "rsa-oaep-sha256", &[1; 190]))
        .await
        .unwrap();
    let too_long = acme
        .encrypt_asymmetric(&encrypt_request(&rsa, None, "rsa-oaep-sha256", &[1; 191]))
        .await;
    assert_eq!(code_of(too_long), ErrorCode::InvalidRequest);
    let unknown = acme
        .encrypt_asymmetric(&encrypt_request(&rsa, None, "rsa-pkcs1v15", b"x"))
        .await;
    assert_eq!(code_of(unknown), ErrorCode::InvalidRequest);

    // Purposes: an RSA encrypt key neither wraps nor signs; the others do not OAEP.
    assert_eq!(
        code_of(acme.wrap(&wrap_request(&rsa, b"x", &[])).await),
        ErrorCode::WrongKeyPurpose
    );
    assert_eq!(
        code_of(acme.sign(&sign_request(&rsa, b"m", None)).await),
        ErrorCode::WrongKeyPurpose
    );
    let rsa_signing = create_key(&acme, "rsa-2048", None).await;
    let aes = create_key(&acme, "aes-256", None).await;
    for other in [&rsa_signing, &aes] {
        let result = acme
            .encrypt_asymmetric(&encrypt_request(other, None, "rsa-oaep-sha256", b"x"))
            .await;
        assert_eq!(code_of(result), ErrorCode::WrongKeyPurpose);
    }
    // An alias on the AES key cannot move to the RSA encrypt key, nor back: same
    // purpose, but none of one's operations works on the other.
    let aes_alias = CreateKeyRequest {
        spec: "aes-256".into(),
        alias: Some("kek".into()),
        ..Default::default()
    };
    acme.create_key(&aes_alias).await.unwrap();
    let moved = acme
        .set_alias(&SetAliasRequest {
            alias: "alias/kek".into(),
            key_id: rsa.clone(),
            expected_key_id: None,
        })
        .await;
    assert_eq!(code_of(moved), ErrorCode::InvalidRequest);
    let mac_purpose = CreateKeyRequest {
        spec: "rsa-2048".into(),
        purpose: Some("mac".into()),
        ..Default::default()
    };
    assert_eq!(
        code_of(acme.create_key(&mac_purpose).await),
        ErrorCode::InvalidRequest
    );

    // Rotation: version 1's ciphertext decrypts by number, not under the new primary.
    let v1 = acme
        .encrypt_asymmetric(&encrypt_request(&rsa, None, "rsa-oaep-sha256", b"old"))
        .await
        .unwrap();
    acme.rotate_key(&rsa).await.unwrap();
    let under_primary = acme
        .decrypt_asymmetric(&decrypt_request(
            &rsa,
            None,
            "rsa-oaep-sha256",
            &v1.ciphertext,
        ))
        .await;
    assert_eq!(code_of(under_primary), ErrorCode::InvalidCiphertext);
    let opened = acme
        .decrypt_asymmetric(&decrypt_request(
            &rsa,
            Some(1),
            "rsa-oaep-sha256",
            &v1.ciphertext,
        ))
        .await
        .unwrap();
    assert_eq!(
        (opened.plaintext.expose_secret(), opened.key_version),
        (&b"old"[..], 1)
    );

    // Authorisation: a token allowed only wrap encrypts but may not decrypt.
    let minted = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            operations: vec!["wrap".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let wrap_only = server.client(&minted.token);
    let sealed = wrap_only
        .encrypt_asymmetric(&encrypt_request(&rsa, None, "rsa-oaep-sha256", b"x"))
        .await
        .unwrap();
    let refused = wrap_only
        .decrypt_asymmetric(&decrypt_request(
            &rsa,
            None,
            "rsa-oaep-sha256",
            &sealed.ciphertext,
        ))
        .await;
    assert_eq!(code_of(refused), ErrorCode::Forbidden);

    // Disabled: refused as every other operation refuses it.
    acme.disable_key(&rsa).await.unwrap();
    let disabled = acme
        .decrypt_asymmetric(&decrypt_request(
            &rsa,
            None,
            "rsa-oaep-sha256",
            &sealed.ciphertext,
        ))
        .await;
    assert_eq!(code_of(disabled), ErrorCode::KeyDisabled);

    // Audited like every key operation, refusals included.
    let log = server.admin().audit_entries(0, 1000).await.unwrap();
    let ops = |op: &str, outcome: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"op\":\"{op}\"")))
            .filter(|l| l.contains(&format!("\"outcome\":\"{outcome}\"")))
            .count()
    };
    assert!(ops("encrypt", "ok") >= 4, "{log}");
    assert!(ops("decrypt", "ok") >= 4);
    assert!(ops("decrypt", "invalid_ciphertext") >= 3);
    assert!(ops("decrypt", "forbidden") >= 1);
}

/// The commands a user runs: `coffer keys create --spec rsa-3072`, `coffer sign
/// --algorithm`, `coffer verify --algorithm`, `coffer encrypt/decrypt --algorithm`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_signs_verifies_encrypts_and_decrypts() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let run = |args: &[&str]| server.cli(&token, args);
    let (code, _, err) = run(&["keys", "create", "--spec", "rsa-3072", "--alias", "release"]);
    assert_eq!(code, 0, "{err}");
    let (code, signature, err) = run(&[
        "sign",
        "--key",
        "alias/release",
        "--algorithm",
        "rsa-pkcs1-sha384",
        "--message",
        "v1.0",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("algorithm=rsa-pkcs1-sha384"), "{err}");
    let signature = signature.trim();
    let verify = |algorithm: &str, message: &str| {
        run(&[
            "verify",
            "--key",
            "alias/release",
            "--algorithm",
            algorithm,
            "--signature",
            signature,
            "--message",
            message,
        ])
    };
    let (code, out, _) = verify("rsa-pkcs1-sha384", "v1.0");
    assert_eq!((code, out.trim()), (0, "valid"));
    let (code, out, _) = verify("rsa-pss-sha384", "v1.0");
    assert_eq!((code, out.trim()), (1, "invalid"));
    let (code, out, _) = verify("rsa-pkcs1-sha384", "v1.1");
    assert_eq!((code, out.trim()), (1, "invalid"));

    let (code, _, err) = run(&[
        "keys",
        "create",
        "--spec",
        "rsa-2048",
        "--purpose",
        "encrypt",
        "--alias",
        "inbox",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, ciphertext, err) = run(&[
        "encrypt",
        "--key",
        "alias/inbox",
        "--algorithm",
        "rsa-oaep-sha256",
        "--plaintext",
        "hello",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, plaintext, err) = run(&[
        "decrypt",
        "--key",
        "alias/inbox",
        "--algorithm",
        "rsa-oaep-sha256",
        "--ciphertext",
        ciphertext.trim(),
    ]);
    assert_eq!((code, plaintext.as_str()), (0, "hello"), "{err}");
    // The envelope path refuses the RSA key by purpose.
    let (code, _, err) = run(&["encrypt", "--key", "alias/inbox", "--plaintext", "hello"]);
    assert_eq!(code, 1);
    assert!(err.contains("wrong_key_purpose"), "{err}");
}

/// Certificates: a P-384 CA certifies itself and a P-384 leaf, and the chain verifies;
/// the specs rcgen cannot sign for (RSA, P-521, secp256k1, ML-DSA) are refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p384_keys_issue_and_verify_certificates_other_new_specs_are_refused() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let ca = create_key(&acme, "ecdsa-p384", None).await;
    let leaf = create_key(&acme, "ecdsa-p384", None).await;
    let issue = |subject: &str, ca: &str, validity: &str| IssueCertificateRequest {
        ca_key: ca.into(),
        subject: subject.into(),
        validity: validity.into(),
    };
    acme.issue_certificate(&ca, &issue("P-384 CA", &ca, "30d"))
        .await
        .unwrap();
    let issued = acme
        .issue_certificate(&leaf, &issue("leaf", &ca, "10d"))
        .await
        .unwrap();
    assert_eq!(issued.links.len(), 2);
    let report = acme.verify_chain(&leaf, None).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert!(
        report.links.iter().all(|l| l.signature_ok == Some(true)),
        "{report:?}"
    );
    for spec in ["rsa-2048", "ecdsa-p521", "ecdsa-secp256k1", "ml-dsa-44"] {
        let key = create_key(&acme, spec, None).await;
        let refused = acme.issue_certificate(&key, &issue("x", &ca, "10d")).await;
        match refused {
            Err(coffer_client::ClientError::Api {
                status, message, ..
            }) => {
                assert_eq!(status, 400, "{spec}");
                assert!(message.contains("P-384 keys only"), "{spec}: {message}");
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
}
