//! Keys only an attested caller can use (issue 19, seed 001's allow-list): a key's
//! attestation policy puts unwrap, datakey, sign and mac behind an attestation document
//! whose measurement is on the key's allow-list. Documents in the Coffer test format
//! (signed by the authority the server is configured with) and Nitro documents under a
//! test root configured as the Nitro root.

use coffer_api::attestation::SetAttestationPolicyRequest;
use coffer_api::crypto::{DatakeyRequest, MacRequest, SignRequest, UnwrapRequest};
use coffer_api::{B64, ErrorCode};
use coffer_attest::Measurement;
use coffer_attest::nitro::testkit::{Claims, TestChain, Validity};
use coffer_attest::test_format::Authority;
use coffer_client::Client;
use coffer_server::startup::InitMethod;

use super::api::{code_of, create, wrap_request};
use super::harness::{Db, TestServer, temp_dir};

pub fn measurement(byte: u8) -> Measurement {
    Measurement::from_bytes(&[byte; 48]).unwrap()
}

pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A server trusting `authority`, and the authority's documents.
pub async fn server_trusting(authority: &Authority) -> TestServer {
    let file = temp_dir().join("authority.pem");
    std::fs::write(&file, authority.public_key_pem()).unwrap();
    let file = file.display().to_string();
    TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_ATTESTATION_AUTHORITY_PUBLIC_KEY_FILE", &file)],
    )
    .await
    .unwrap()
}

fn doc(authority: &Authority, m: &Measurement) -> Option<B64> {
    Some(B64(authority
        .attest_now(m, now_ms(), None)
        .unwrap()
        .into_bytes()))
}

pub async fn set_policy(
    client: &Client,
    key: &str,
    operations: &[&str],
    measurements: &[&Measurement],
) -> u32 {
    client
        .set_attestation_policy(
            key,
            &SetAttestationPolicyRequest {
                operations: operations.iter().map(|o| o.to_string()).collect(),
                measurements: measurements.iter().map(|m| m.to_string()).collect(),
                expect_version: None,
            },
        )
        .await
        .unwrap()
        .version
}

pub fn unwrap_with(ciphertext: &B64, attestation: Option<B64>) -> UnwrapRequest {
    UnwrapRequest {
        ciphertext: ciphertext.clone(),
        context: Default::default(),
        attestation,
    }
}

fn sign_with(key: &str, attestation: Option<B64>) -> SignRequest {
    SignRequest {
        key_id: key.into(),
        message: Some(B64(b"release".to_vec())),
        attestation,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwrap_needs_an_attestation_whose_measurement_is_on_the_allow_list() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let server = server_trusting(&authority).await;
    let acme = server.client(&server.tenant_token("acme").await);
    let kek = create(&acme, "aes-256", "enclave-kek").await;
    let sealed = acme
        .wrap(&wrap_request(&kek, b"token signing secret", &[]))
        .await
        .unwrap()
        .ciphertext;
    // Before any policy the key serves everyone.
    acme.unwrap(&unwrap_with(&sealed, None)).await.unwrap();
    let (m1, m2, m3) = (measurement(1), measurement(2), measurement(3));
    assert_eq!(
        set_policy(&acme, &kek, &["unwrap", "datakey"], &[&m1, &m2]).await,
        1
    );

    // No document.
    assert_eq!(
        code_of(acme.unwrap(&unwrap_with(&sealed, None)).await),
        ErrorCode::AttestationRequired
    );
    // wrap and rewrap hand out no secret: not behind the policy.
    acme.wrap(&wrap_request(&kek, b"more", &[])).await.unwrap();
    acme.rewrap(&coffer_api::crypto::RewrapRequest {
        ciphertext: sealed.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    // An allowed measurement opens it.
    let good = doc(&authority, &m1);
    let opened = acme
        .unwrap(&unwrap_with(&sealed, good.clone()))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"token signing secret");
    // The same document again: replayed.
    let replay = acme.unwrap(&unwrap_with(&sealed, good)).await;
    let Err(coffer_client::ClientError::Api { code, message, .. }) = &replay else {
        panic!("{replay:?}")
    };
    assert_eq!(*code, ErrorCode::AttestationRequired);
    assert!(message.contains("already used"), "{message}");
    // A measurement not on the list.
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m3)))
                .await
        ),
        ErrorCode::MeasurementNotAllowed
    );
    // A document another authority signed.
    let (forger, _) = Authority::generate_ed25519().unwrap();
    assert_eq!(
        code_of(acme.unwrap(&unwrap_with(&sealed, doc(&forger, &m1))).await),
        ErrorCode::AttestationRequired
    );
    // A stale document (ten minutes old).
    let stale = authority.attest_now(&m1, now_ms() - 600_000, None).unwrap();
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_with(&sealed, Some(B64(stale.into_bytes()))))
                .await
        ),
        ErrorCode::AttestationRequired
    );

    // m1 removed from the list: its next document is refused at once, m2 still works.
    assert_eq!(
        set_policy(&acme, &kek, &["unwrap", "datakey"], &[&m2]).await,
        2
    );
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m1)))
                .await
        ),
        ErrorCode::MeasurementNotAllowed
    );
    acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m2)))
        .await
        .unwrap();

    // Batches carry a document per item.
    let batch = coffer_api::crypto::Batch {
        items: vec![
            unwrap_with(&sealed, doc(&authority, &m2)),
            unwrap_with(&sealed, None),
        ],
    };
    let items = acme.unwrap_batch(&batch).await.unwrap();
    assert!(matches!(items[0], coffer_api::crypto::ItemResult::Ok(_)));
    assert!(matches!(
        &items[1],
        coffer_api::crypto::ItemResult::Err { error } if error.code == ErrorCode::AttestationRequired
    ));

    // A refused datakey with a track id registers nothing.
    let refused = acme
        .datakey(&DatakeyRequest {
            key_id: kek.clone(),
            track_id: Some("session-1".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(refused), ErrorCode::AttestationRequired);
    assert_eq!(
        code_of(acme.tracked("session-1").await),
        ErrorCode::NotFound
    );
    acme.datakey(&DatakeyRequest {
        key_id: kek.clone(),
        track_id: Some("session-1".into()),
        attestation: doc(&authority, &m2),
        ..Default::default()
    })
    .await
    .unwrap();
    acme.tracked("session-1").await.unwrap();

    // The allow-list's history, oldest first.
    let history = acme.attestation_policies(&kek).await.unwrap();
    assert_eq!(history.versions.len(), 2);
    assert_eq!(
        history.versions[0].measurements,
        vec![m1.to_string(), m2.to_string()]
    );
    assert_eq!(history.current.unwrap().measurements, vec![m2.to_string()]);

    // Audited with the measurement seen; counted.
    let log = server.admin().audit_entries(0, 1000).await.unwrap();
    let line_with = |needles: &[&str]| log.lines().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(line_with(&[
        "\"op\":\"unwrap\"",
        "\"outcome\":\"measurement_not_allowed\"",
        &format!("measurement={m3} not allowed (policy v1)"),
    ]));
    assert!(line_with(&[
        "\"op\":\"unwrap\"",
        "\"outcome\":\"ok\"",
        &format!("measurement={m2} allowed (policy v2)"),
    ]));
    assert!(line_with(&[
        "\"outcome\":\"attestation_required\"",
        "attestation: none"
    ]));
    assert!(line_with(&[
        "\"op\":\"keys.attestation_policy\"",
        "\"outcome\":\"ok\""
    ]));
    let metrics = reqwest::get(format!("{}/metrics", server.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rejected: f64 = metrics
        .lines()
        .find(|l| l.starts_with("kms_reject_total{reason=\"attestation\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no kms_reject_total: {metrics}"));
    assert!(rejected >= 8.0, "{rejected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_and_mac_need_an_attestation_and_verify_does_not() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let server = server_trusting(&authority).await;
    let acme = server.client(&server.tenant_token("acme").await);
    let signer = create(&acme, "ed25519", "enclave-signer").await;
    let mac = create(&acme, "hmac-sha256", "enclave-mac").await;
    let m1 = measurement(1);
    set_policy(&acme, &signer, &["sign"], &[&m1]).await;
    set_policy(&acme, &mac, &["mac"], &[&m1]).await;

    assert_eq!(
        code_of(acme.sign(&sign_with(&signer, None)).await),
        ErrorCode::AttestationRequired
    );
    assert_eq!(
        code_of(
            acme.sign(&sign_with(&signer, doc(&authority, &measurement(9))))
                .await
        ),
        ErrorCode::MeasurementNotAllowed
    );
    let signed = acme
        .sign(&sign_with(&signer, doc(&authority, &m1)))
        .await
        .unwrap();
    // Verification is not behind the policy.
    let verified = acme
        .verify(&coffer_api::crypto::VerifyRequest {
            key_id: signer.clone(),
            message: Some(B64(b"release".to_vec())),
            signature: signed.signature,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(verified.valid);

    let mac_request = |attestation| MacRequest {
        key_id: mac.clone(),
        message: B64(b"m".to_vec()),
        attestation,
    };
    assert_eq!(
        code_of(acme.mac(&mac_request(None)).await),
        ErrorCode::AttestationRequired
    );
    acme.mac(&mac_request(doc(&authority, &m1))).await.unwrap();

    // Lifting the requirement (no operations) serves everyone again.
    set_policy(&acme, &signer, &[], &[]).await;
    acme.sign(&sign_with(&signer, None)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_are_checked_scoped_and_compare_and_set() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let server = server_trusting(&authority).await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "kek").await;
    let m1 = measurement(1);
    let request = |ops: &[&str], ms: &[&str], expect: Option<u32>| SetAttestationPolicyRequest {
        operations: ops.iter().map(|s| s.to_string()).collect(),
        measurements: ms.iter().map(|s| s.to_string()).collect(),
        expect_version: expect,
    };
    let m1s = m1.to_string();
    // Bad input changes nothing.
    for bad in [
        request(&["encrypt"], &[&m1s], None),
        request(&["unwrap"], &["not-hex"], None),
        request(&["unwrap"], &["abcd"], None),
    ] {
        assert_eq!(
            code_of(acme.set_attestation_policy(&key, &bad).await),
            ErrorCode::InvalidRequest
        );
    }
    assert!(
        acme.attestation_policies(&key)
            .await
            .unwrap()
            .versions
            .is_empty()
    );
    // Compare-and-set on the version in force.
    acme.set_attestation_policy(&key, &request(&["unwrap"], &[&m1s], Some(0)))
        .await
        .unwrap();
    assert_eq!(
        code_of(
            acme.set_attestation_policy(&key, &request(&[], &[], Some(0)))
                .await
        ),
        ErrorCode::Conflict
    );
    // A token without keys:manage cannot change it; another tenant does not see the key.
    let reader = server
        .admin()
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            operations: vec!["unwrap".into(), "keys:read".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let reader = server.client(&reader);
    assert_eq!(
        code_of(
            reader
                .set_attestation_policy(&key, &request(&[], &[], None))
                .await
        ),
        ErrorCode::Forbidden
    );
    reader.attestation_policies(&key).await.unwrap();
    let globex = server.client(&server.tenant_token("globex").await);
    assert_eq!(
        code_of(globex.attestation_policies(&key).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        acme.attestation_policies(&key)
            .await
            .unwrap()
            .versions
            .len(),
        1
    );

    // The CLI: set by alias, then show.
    let (code, out, err) = server.cli(
        &token,
        &[
            "keys",
            "attestation-policy",
            "set",
            "alias/kek",
            "--operations",
            "unwrap,datakey",
            "--allowed-measurements",
            &format!("{},{}", m1, measurement(2)),
            "--expect-version",
            "1",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("v2  operations unwrap,datakey"), "{out}");
    let (code, out, _) = server.cli(&token, &["keys", "attestation-policy", "show", "alias/kek"]);
    assert_eq!(code, 0);
    assert!(out.contains("v2") && out.contains("v1"), "{out}");
    let (code, _, err) = server.cli(
        &token,
        &[
            "keys",
            "attestation-policy",
            "set",
            "alias/kek",
            "--operations",
            "unwrap",
            "--allowed-measurements",
            "zz",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("invalid_request") || err.contains("measurement"),
        "{err}"
    );
    assert_eq!(
        acme.attestation_policies(&key)
            .await
            .unwrap()
            .versions
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nitro_documents_under_the_configured_root_are_checked_by_pcr0() {
    let now = now_ms();
    let chain = TestChain::new(
        Validity {
            from: now / 1000 - 3600,
            until: now / 1000 + 3600,
        },
        true,
    );
    let root = temp_dir().join("nitro-root.pem");
    std::fs::write(&root, chain.root_pem()).unwrap();
    let root = root.display().to_string();
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_ATTESTATION_NITRO_ROOT_FILE", &root)],
    )
    .await
    .unwrap();
    let acme = server.client(&server.tenant_token("acme").await);
    let signer = create(&acme, "ecdsa-p256", "enclave-signer").await;
    let pcr0 = [0x5a; 48];
    set_policy(
        &acme,
        &signer,
        &["sign"],
        &[&Measurement::from_bytes(&pcr0).unwrap()],
    )
    .await;
    let nitro = |chain: &TestChain, pcr0: [u8; 48], nonce: &[u8]| {
        Some(B64(chain.document(&Claims {
            pcr0,
            timestamp_ms: now_ms(),
            nonce: Some(nonce.to_vec()),
            public_key: None,
        })))
    };
    acme.sign(&sign_with(&signer, nitro(&chain, pcr0, b"nonce-0001")))
        .await
        .unwrap();
    assert_eq!(
        code_of(
            acme.sign(&sign_with(
                &signer,
                nitro(&chain, [0x11; 48], b"nonce-0002")
            ))
            .await
        ),
        ErrorCode::MeasurementNotAllowed
    );
    let other = TestChain::new(
        Validity {
            from: now / 1000 - 3600,
            until: now / 1000 + 3600,
        },
        true,
    );
    assert_eq!(
        code_of(
            acme.sign(&sign_with(&signer, nitro(&other, pcr0, b"nonce-0003")))
                .await
        ),
        ErrorCode::AttestationRequired
    );
    // The test format is refused: no authority is configured here.
    let (authority, _) = Authority::generate_ed25519().unwrap();
    assert_eq!(
        code_of(
            acme.sign(&sign_with(
                &signer,
                doc(&authority, &Measurement::from_bytes(&pcr0).unwrap())
            ))
            .await
        ),
        ErrorCode::AttestationRequired
    );
}
