//! HSM-resident keys through the API (`protection = hsm`) on a server whose custody is
//! a SoftHSM2 token: created in the token, signing and sealing there, rotated into it,
//! shown with where each version lives, published in JWKS, certified; refused clearly
//! where no HSM holds them. Skipped without SoftHSM unless `COFFER_REQUIRE_SOFTHSM=1`.

use coffer_api::crypto::{DatakeyRequest, RewrapRequest, SignRequest, VerifyRequest};
use coffer_api::keys::{CreateKeyRequest, IssueCertificateRequest, KeyView, ListKeysQuery};
use coffer_api::{B64, ErrorCode};
use coffer_client::{Client, ClientError};
use coffer_crypto::{PqVerifyMode, PublicKey, SignatureAlgorithm, VerifyingKey};

use super::api::{unwrap_request, wrap_request};
use super::harness::TestServer;
use super::hsm::hsm_server;

/// Verifies with the `openssl` command line: an implementation independent of Coffer's
/// (aws-lc) and of the token.
fn openssl_verifies(pem: &str, algorithm: SignatureAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
    let dir = super::harness::temp_dir();
    let (key, m, s) = (dir.join("k.pem"), dir.join("m"), dir.join("s"));
    std::fs::write(&key, pem).unwrap();
    std::fs::write(&m, msg).unwrap();
    std::fs::write(&s, sig).unwrap();
    let mut command = std::process::Command::new("openssl");
    if algorithm == SignatureAlgorithm::Ed25519 {
        command.args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"]);
        command.arg(&key).arg("-in").arg(&m).arg("-sigfile").arg(&s);
    } else {
        command.args(["dgst", "-sha256", "-verify"]).arg(&key);
        if algorithm.as_str().starts_with("rsa-pss") {
            command.args([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:-1",
            ]);
        }
        command.arg("-signature").arg(&s).arg(&m);
    }
    command.output().unwrap().status.success()
}

async fn create_hsm(client: &Client, spec: &str) -> KeyView {
    client
        .create_key(&CreateKeyRequest {
            spec: spec.into(),
            protection: Some("hsm".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn sign_request(key: &str, message: &[u8], algorithm: Option<&str>) -> SignRequest {
    SignRequest {
        key_id: key.into(),
        message: Some(B64(message.to_vec())),
        digest: None,
        mu: None,
        algorithm: algorithm.map(str::to_owned),
        attestation: None,
    }
}

fn code_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, ErrorCode, String) {
    match result {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Every version of `key` lives in the token: location `hsm`, the token's slot and
/// label, an object label naming the key and version, a 16-byte id; distinct ids.
fn assert_in_the_hsm(key: &KeyView, slot: u64, token_label: &str) {
    assert_eq!(key.protection, "hsm");
    let mut ids = std::collections::BTreeSet::new();
    for version in &key.versions {
        assert_eq!(version.location, "hsm");
        let at = version.hsm.as_ref().expect("hsm object");
        assert_eq!((at.slot, at.token.as_str()), (slot, token_label));
        assert!(at.label.contains(&key.key_id), "{}", at.label);
        assert!(at.label.ends_with(&format!(":v{}", version.version)));
        assert_eq!(at.id.len(), 32, "{}", at.id);
        assert!(ids.insert(at.id.clone()), "ids are distinct");
    }
}

async fn token_slot(server: &TestServer) -> (u64, String) {
    let view = server.anonymous().custody(&server.ops).await.unwrap();
    let pkcs11 = view.pkcs11.expect("pkcs11 custody");
    (
        pkcs11.slot.expect("slot"),
        pkcs11.token_label.expect("label"),
    )
}

/// An ECDSA P-256 key in the HSM signs through the API; the signature verifies by the
/// API, with the public key the API shows (Coffer's verifier) and by OpenSSL. Rotation
/// makes version 2 in the token too, the old signature still verifies, both versions
/// are published in JWKS, and a certificate is issued by the HSM key for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hsm_key_signs_rotates_and_publishes_from_the_token() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let (slot, token_label) = token_slot(&server).await;
    let acme = server.client(&server.tenant_token("acme").await);
    let key = create_hsm(&acme, "ecdsa-p256").await;
    assert_in_the_hsm(&key, slot, &token_label);
    let message = b"release 2.0.0";
    let signed = acme
        .sign(&sign_request(&key.key_id, message, None))
        .await
        .unwrap();
    assert_eq!(signed.key_version, 1);
    let pem = key.versions[0].public_key_pem.clone().expect("public key");
    let public = PublicKey::from_pem(&pem).unwrap();
    VerifyingKey::new(public)
        .unwrap()
        .verify(message, &signed.signature.0, PqVerifyMode::And)
        .expect("verifies with the shown public key");
    assert!(openssl_verifies(
        &pem,
        SignatureAlgorithm::EcdsaP256Sha256,
        message,
        &signed.signature.0
    ));
    let verify = |version: u32, signature: &B64| VerifyRequest {
        key_id: key.key_id.clone(),
        key_version: Some(version),
        message: Some(B64(message.to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
        signature: signature.clone(),
    };
    assert!(
        acme.verify(&verify(1, &signed.signature))
            .await
            .unwrap()
            .valid
    );

    // Rotation: version 2 is made in the token as well.
    let rotated = acme.rotate_key(&key.key_id).await.unwrap();
    assert_eq!(rotated.version, 2);
    let shown = acme.show_key(&key.key_id).await.unwrap();
    assert_eq!(shown.versions.len(), 2);
    assert_in_the_hsm(&shown, slot, &token_label);
    let second = acme
        .sign(&sign_request(&key.key_id, message, None))
        .await
        .unwrap();
    assert_eq!(second.key_version, 2);
    assert!(
        acme.verify(&verify(2, &second.signature))
            .await
            .unwrap()
            .valid
    );
    assert!(
        acme.verify(&verify(1, &signed.signature))
            .await
            .unwrap()
            .valid
    );
    assert!(
        !acme
            .verify(&verify(2, &signed.signature))
            .await
            .unwrap()
            .valid
    );

    // JWKS publishes both versions' public keys, read from the token at creation.
    acme.publish_key(&key.key_id).await.unwrap();
    let jwks = server.anonymous().jwks("acme").await.unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [format!("{}:1", key.key_id), format!("{}:2", key.key_id)]
    );
    assert_eq!(jwks["keys"][0]["kty"], "EC");

    // The HSM key certifies itself (self-issued CA): the token signs the certificate.
    acme.issue_certificate(
        &key.key_id,
        &IssueCertificateRequest {
            ca_key: key.key_id.clone(),
            subject: "HSM release CA".into(),
            validity: "30d".into(),
        },
    )
    .await
    .unwrap();
    let report = acme.verify_chain(&key.key_id, None).await.unwrap();
    assert!(report.ok, "{report:?}");
}

/// Ed25519 and RSA keys live in the HSM too; RSA signs with PSS and PKCS #1 v1.5 as the
/// request names; every signature verifies with the shown public key and OpenSSL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_and_rsa_keys_sign_in_the_hsm() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let acme = server.client(&server.tenant_token("acme").await);
    for (spec, algorithm) in [
        ("ed25519", SignatureAlgorithm::Ed25519),
        ("rsa-2048", SignatureAlgorithm::RsaPssSha256),
        ("rsa-2048", SignatureAlgorithm::RsaPkcs1Sha256),
    ] {
        let key = create_hsm(&acme, spec).await;
        let message = format!("signed with {}", algorithm.as_str());
        let signed = acme
            .sign(&sign_request(
                &key.key_id,
                message.as_bytes(),
                Some(algorithm.as_str()),
            ))
            .await
            .unwrap();
        let pem = key.versions[0].public_key_pem.clone().expect("public key");
        let verifier = VerifyingKey::new(PublicKey::from_pem(&pem).unwrap()).unwrap();
        verifier
            .verify_with(
                algorithm,
                message.as_bytes(),
                &signed.signature.0,
                PqVerifyMode::And,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", algorithm.as_str()));
        assert!(openssl_verifies(
            &pem,
            algorithm,
            message.as_bytes(),
            &signed.signature.0
        ));
    }
}

/// An AES key in the HSM wraps and unwraps (the token seals: envelope format 0x02),
/// makes data keys, and receives a rewrap from a software key; a changed context or
/// byte does not open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hsm_aes_key_wraps_and_unwraps_in_the_token() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let acme = server.client(&server.tenant_token("acme").await);
    let kek = create_hsm(&acme, "aes-256").await;
    let sealed = acme
        .wrap(&wrap_request(&kek.key_id, b"a data key", &[("app", "x")]))
        .await
        .unwrap();
    assert_eq!(sealed.ciphertext.0[0], 0x02, "sealed by the token");
    let opened = acme
        .unwrap(&unwrap_request(&sealed.ciphertext, &[("app", "x")]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"a data key");
    let (status, code, _) = code_of(
        acme.unwrap(&unwrap_request(&sealed.ciphertext, &[("app", "y")]))
            .await,
    );
    assert_eq!((status, code), (400, ErrorCode::InvalidCiphertext));
    let mut changed = sealed.ciphertext.clone();
    let last = changed.0.len() - 1;
    changed.0[last] ^= 1;
    let (_, code, _) = code_of(
        acme.unwrap(&unwrap_request(&changed, &[("app", "x")]))
            .await,
    );
    assert_eq!(code, ErrorCode::InvalidCiphertext);

    let datakey = acme
        .datakey(&DatakeyRequest {
            key_id: kek.key_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let plain = datakey.plaintext.expect("plaintext");
    let again = acme
        .unwrap(&unwrap_request(&datakey.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(again.plaintext.expose_secret(), plain.expose_secret());

    // From a software key to the HSM key.
    let software = acme
        .create_key(&CreateKeyRequest {
            spec: "aes-256".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(software.protection, "software");
    assert_eq!(software.versions[0].location, "software");
    assert!(software.versions[0].hsm.is_none());
    let soft = acme
        .wrap(&wrap_request(&software.key_id, b"moved", &[]))
        .await
        .unwrap();
    let moved = acme
        .rewrap(&RewrapRequest {
            ciphertext: soft.ciphertext.clone(),
            context: Default::default(),
            key_id: Some(kek.key_id.clone()),
            destination_context: None,
        })
        .await
        .unwrap();
    assert_eq!(moved.ciphertext.0[0], 0x02);
    let opened = acme
        .unwrap(&unwrap_request(&moved.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"moved");
}

/// What the HSM cannot hold, a slot that is not the token's, and `hsm_slot` without
/// `protection = hsm` are refused with 400 and a reason; nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_requests_it_cannot_serve_are_refused_and_create_nothing() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let (slot, _) = token_slot(&server).await;
    let acme = server.client(&server.tenant_token("acme").await);
    let request = |spec: &str, protection: Option<&str>, hsm_slot: Option<u64>| CreateKeyRequest {
        spec: spec.into(),
        protection: protection.map(str::to_owned),
        hsm_slot,
        ..Default::default()
    };
    for (bad, reason) in [
        (
            request("hmac-sha256", Some("hsm"), None),
            "protection hsm takes",
        ),
        (
            request("ml-dsa-65", Some("hsm"), None),
            "protection hsm takes",
        ),
        (
            request("ecdsa-p256", Some("hsm"), Some(slot + 7)),
            "--hsm-slot",
        ),
        (
            request("ecdsa-p256", None, Some(slot)),
            "only with protection hsm",
        ),
        (
            request("ecdsa-p256", Some("vault"), None),
            "expected software or hsm",
        ),
    ] {
        let (status, code, message) = code_of(acme.create_key(&bad).await);
        assert_eq!(
            (status, code),
            (400, ErrorCode::InvalidRequest),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
    }
    let rsa_encrypt = CreateKeyRequest {
        purpose: Some("encrypt".into()),
        ..request("rsa-2048", Some("hsm"), None)
    };
    let (status, _, message) = code_of(acme.create_key(&rsa_encrypt).await);
    assert_eq!(status, 400, "{message}");
    let keys = acme.list_keys(&ListKeysQuery::default()).await.unwrap();
    assert!(keys.keys.is_empty(), "nothing was created: {:?}", keys.keys);
    // The token's own slot is accepted.
    let made = acme
        .create_key(&request("ecdsa-p256", Some("hsm"), Some(slot)))
        .await
        .unwrap();
    assert_eq!(made.versions[0].hsm.as_ref().unwrap().slot, slot);
}

/// A server with sealed custody has no HSM: `protection = hsm` is refused by name and
/// creates nothing.
#[tokio::test]
async fn without_an_hsm_protection_hsm_is_refused() {
    let server = TestServer::start().await;
    let acme = server.client(&server.tenant_token("acme").await);
    let (status, code, message) = code_of(
        acme.create_key(&CreateKeyRequest {
            spec: "ecdsa-p256".into(),
            protection: Some("hsm".into()),
            ..Default::default()
        })
        .await,
    );
    assert_eq!((status, code), (400, ErrorCode::InvalidRequest));
    assert!(message.contains("no HSM is configured"), "{message}");
    let keys = acme.list_keys(&ListKeysQuery::default()).await.unwrap();
    assert!(keys.keys.is_empty());
}
