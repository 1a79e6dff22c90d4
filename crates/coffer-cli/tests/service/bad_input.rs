//! Bad input: each gets a clear error with its status and changes nothing.

use coffer_api::ErrorCode;
use coffer_api::keys::{CreateKeyRequest, ListKeysQuery};
use coffer_core::VersionState;

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_with_400_and_413() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "k").await;
    let token = server.admin_token.clone();
    let minted = server
        .admin()
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let cases: [(&str, String, u16, &str); 5] = [
        (
            "malformed JSON",
            "{\"key_id\": ".into(),
            400,
            "invalid_request",
        ),
        (
            "wrong base64",
            format!("{{\"key_id\":\"{key}\",\"plaintext\":\"not base64!\"}}"),
            400,
            "invalid_request",
        ),
        (
            "unknown field",
            format!("{{\"key_id\":\"{key}\",\"plaintext\":\"aGk=\",\"colour\":1}}"),
            400,
            "invalid_request",
        ),
        (
            "wrong type",
            "{\"key_id\":7,\"plaintext\":\"aGk=\"}".into(),
            400,
            "invalid_request",
        ),
        (
            "oversized body",
            format!(
                "{{\"key_id\":\"{key}\",\"plaintext\":\"{}\"}}",
                "A".repeat(200_000)
            ),
            413,
            "payload_too_large",
        ),
    ];
    for (what, body, status, code) in cases {
        let (got, json) = server.post_raw("/v1/kms/wrap", &minted, body).await;
        assert_eq!(got, status, "{what}: {json}");
        assert_eq!(json["error"]["code"], code, "{what}");
        assert!(
            !json["error"]["request_id"]
                .as_str()
                .unwrap_or("")
                .is_empty(),
            "{what}: request id"
        );
    }
    // A wrap of more than 4 KiB of plaintext is refused by the service.
    assert_eq!(
        code_of(acme.wrap(&wrap_request(&key, &[0u8; 4097], &[])).await),
        ErrorCode::InvalidRequest
    );
    // Unknown spec, bad alias, bad duration on create; nothing created.
    for request in [
        CreateKeyRequest {
            spec: "rsa-1024".into(),
            ..Default::default()
        },
        CreateKeyRequest {
            spec: "aes-256".into(),
            alias: Some("alias/aws/x".into()),
            ..Default::default()
        },
        CreateKeyRequest {
            spec: "aes-256".into(),
            validity: Some("soon".into()),
            ..Default::default()
        },
        CreateKeyRequest {
            spec: "ed25519".into(),
            purpose: Some("encrypt".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(
            code_of(acme.create_key(&request).await),
            ErrorCode::InvalidRequest
        );
    }
    assert_eq!(
        acme.list_keys(&ListKeysQuery::default())
            .await
            .unwrap()
            .keys
            .len(),
        1
    );
    // Missing and garbage tokens.
    let (status, json) = server
        .post_raw("/v1/kms/wrap", "coffer_v1_garbage", "{}")
        .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let _ = token;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertext_errors_are_clear_and_change_nothing() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let key = create(&acme, "aes-256", "k").await;
    let ctx = [("purpose", "test")];
    let sealed = acme
        .wrap(&wrap_request(&key, b"secret", &ctx))
        .await
        .unwrap();

    // Tampered: one flipped bit in the body.
    let mut tampered = sealed.ciphertext.clone();
    let last = tampered.0.len() - 1;
    tampered.0[last] ^= 1;
    assert_eq!(
        code_of(acme.unwrap(&unwrap_request(&tampered, &ctx)).await),
        ErrorCode::InvalidCiphertext
    );
    // Wrong context, missing context.
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_request(&sealed.ciphertext, &[("purpose", "other")]))
                .await
        ),
        ErrorCode::InvalidCiphertext
    );
    assert_eq!(
        code_of(acme.unwrap(&unwrap_request(&sealed.ciphertext, &[])).await),
        ErrorCode::InvalidCiphertext
    );
    // Another tenant's ciphertext: its key is absent there.
    assert_eq!(
        code_of(
            globex
                .unwrap(&unwrap_request(&sealed.ciphertext, &ctx))
                .await
        ),
        ErrorCode::NotFound
    );
    // A ciphertext from another key: header rewritten to name another key of the tenant.
    let other = create(&acme, "aes-256", "other").await;
    let mut moved = sealed.ciphertext.clone();
    moved.0[1..17].copy_from_slice(uuid::Uuid::parse_str(&other).unwrap().as_bytes());
    assert_eq!(
        code_of(acme.unwrap(&unwrap_request(&moved, &ctx)).await),
        ErrorCode::InvalidCiphertext
    );
    // Not an envelope at all.
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_request(&coffer_api::B64(vec![9; 80]), &[]))
                .await
        ),
        ErrorCode::InvalidCiphertext
    );

    // Disabled key: 409, and enabling again restores it (nothing was changed by the refusals).
    acme.disable_key(&key).await.unwrap();
    assert_eq!(
        code_of(acme.unwrap(&unwrap_request(&sealed.ciphertext, &ctx)).await),
        ErrorCode::KeyDisabled
    );
    acme.enable_key(&key).await.unwrap();
    let opened = acme
        .unwrap(&unwrap_request(&sealed.ciphertext, &ctx))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"secret");

    // A retired version: refused by name.
    acme.rotate_key(&key).await.unwrap();
    let kms = &server.state.kms;
    let tenant = acme_tenant(&server).await;
    let id = key.parse().unwrap();
    let v1 = coffer_core::VersionNumber::new(1).unwrap();
    let operator = coffer_core::Actor::new("test-operator", "test", "keys.retire");
    kms.key_service()
        .set_version_state(tenant, id, v1, VersionState::Retiring, &operator)
        .await
        .unwrap();
    kms.key_service()
        .set_version_state(tenant, id, v1, VersionState::Retired, &operator)
        .await
        .unwrap();
    kms.forget_key(tenant, id);
    match acme.unwrap(&unwrap_request(&sealed.ciphertext, &ctx)).await {
        Err(coffer_client::ClientError::Api {
            code,
            message,
            status,
            ..
        }) => {
            assert_eq!((code, status), (ErrorCode::VersionRetired, 409));
            assert!(message.contains("version 1"), "{message}");
        }
        other => panic!("expected version_retired, got {other:?}"),
    }

    // `coffer keys reactivate`: the retired version decrypts again, and only that.
    let token = server
        .admin()
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let coffer = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
            .env_clear()
            .env("COFFER_ADDR", &server.api)
            .env("COFFER_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };
    let reactivated = coffer(&["keys", "reactivate", &key, "1"]);
    assert!(
        reactivated.status.success(),
        "{}",
        String::from_utf8_lossy(&reactivated.stderr)
    );
    let opened = acme
        .unwrap(&unwrap_request(&sealed.ciphertext, &ctx))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"secret");
    let shown = acme.show_key(&key).await.unwrap();
    assert_eq!(
        (shown.versions[0].state.as_str(), shown.versions[1].primary),
        ("retiring", true)
    );
    // Refused: a retiring version (already reactivated) and the active primary.
    for version in ["1", "2"] {
        let refused = coffer(&["keys", "reactivate", &key, version]);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && said.contains("only a retired version"),
            "{said}"
        );
    }
    assert_eq!(
        code_of(acme.reactivate_version(&key, 2).await),
        ErrorCode::Conflict
    );
    let log = server.admin().audit_entries(0, 10_000).await.unwrap();
    let reactivations: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"keys.reactivate\""))
        .collect();
    assert_eq!(reactivations.len(), 4, "one change, three refusals: {log}");
    assert_eq!(
        reactivations
            .iter()
            .filter(|l| l.contains("\"outcome\":\"ok\""))
            .count(),
        1,
        "{log}"
    );
}

async fn acme_tenant(server: &TestServer) -> coffer_core::TenantId {
    server.state.kms.find_tenant("acme").await.unwrap().id
}

/// Labels, registered purposes and track ids are shown to operators and stored with
/// the key: control characters and unbounded sizes are refused, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_purposes_and_track_ids_refuse_control_characters_and_huge_sizes() {
    use std::collections::{BTreeMap, BTreeSet};
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let with_labels = |labels: BTreeMap<String, String>| CreateKeyRequest {
        spec: "aes-256".into(),
        labels,
        ..Default::default()
    };
    let many: BTreeMap<String, String> =
        (0..65).map(|i| (format!("l{i}"), String::new())).collect();
    for labels in [
        BTreeMap::from([("team".to_owned(), "pay\u{1b}[2Jments".to_owned())]),
        BTreeMap::from([("te\nam".to_owned(), "x".to_owned())]),
        BTreeMap::from([("team".to_owned(), "x".repeat(257))]),
        BTreeMap::from([("t".repeat(129), "x".to_owned())]),
        many,
    ] {
        assert_eq!(
            code_of(acme.create_key(&with_labels(labels)).await),
            ErrorCode::InvalidRequest
        );
    }
    let purposes = CreateKeyRequest {
        spec: "ed25519".into(),
        registered_purposes: BTreeSet::from(["sign\u{7}ing".to_owned()]),
        ..Default::default()
    };
    assert_eq!(
        code_of(acme.create_key(&purposes).await),
        ErrorCode::InvalidRequest
    );
    let listed = acme.list_keys(&ListKeysQuery::default()).await.unwrap();
    assert!(listed.keys.is_empty(), "nothing was created");

    let key = create(&acme, "aes-256", "k").await;
    for track_id in ["a\u{0}b".to_owned(), "x".repeat(257), String::new()] {
        let request = coffer_api::crypto::DatakeyRequest {
            key_id: key.clone(),
            bytes: Some(32),
            track_id: Some(track_id),
            ..Default::default()
        };
        assert_eq!(
            code_of(acme.datakey(&request).await),
            ErrorCode::InvalidRequest
        );
    }
    let fine = with_labels(BTreeMap::from([("team".to_owned(), "payments".to_owned())]));
    acme.create_key(&fine).await.unwrap();
}

/// serde reads a struct from a JSON array of its fields in order; the API's bodies are
/// objects only. Before, `[null, null]` was an unseal request with neither field
/// (answered 200 on an unsealed server) and `["<key>", "aGk="]` a wrap request that
/// sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_in_place_of_an_object_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let (status, key) = server
        .post_raw("/v1/kms/keys", &token, r#"{"spec": "ed25519"}"#)
        .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key_id"].as_str().unwrap().to_owned();
    let register = format!("/v1/kms/keys/{key}/register");
    for (path, body) in [
        ("/v1/sys/unseal", "[null, null]".to_owned()),
        ("/v1/kms/wrap", format!(r#"["{key}", "aGk="]"#)),
        ("/v1/kms/sign", format!(r#"  ["{key}", "aGk="]"#)),
        (register.as_str(), r#"["published"]"#.to_owned()),
        (
            "/v1/kms/rotations/00000000-0000-0000-0000-000000000000/resume",
            "[null]".to_owned(),
        ),
    ] {
        let (status, answer) = server.post_raw(path, &token, body.clone()).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("expected a JSON object"), "{answer}");
    }
    // The refused registration changed nothing; the same request as an object works.
    let shown = server.client(&token).show_key(&key).await.unwrap();
    assert!(shown.registered_purposes.is_empty(), "{shown:?}");
    let (status, shown) = server
        .post_raw(&register, &token, r#"{"purpose": "published"}"#)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["registered_purposes"][0], "published");
}

/// A key action that takes no body ignored whatever it was sent (found by schemathesis:
/// `rotate` with `{"ca_key": …, "subject": ""}` rotated). It takes none or `{}` now, and
/// refuses anything else, as an unknown field is refused anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_on_a_key_action_that_takes_none_is_refused_and_changes_nothing() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "k").await;
    let rotate = format!("/v1/kms/keys/{key}/rotate");
    for body in [
        r#"{"ca_key": "x", "subject": ""}"#,
        r#"{"version": 1}"#,
        "[]",
    ] {
        let (status, answer) = server.post_raw(&rotate, &token, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
    }
    let (status, answer) = server
        .post_raw(
            &format!("/v1/kms/keys/{key}/disable"),
            &token,
            r#"{"why": "x"}"#,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let shown = acme.show_key(&key).await.unwrap();
    assert_eq!(shown.primary_version, 1, "a refused rotate rotated");
    assert_eq!(shown.state, "enabled", "a refused disable disabled");
    // No body, and `{}`, each rotate.
    let (status, answer) = server.post_raw(&rotate, &token, "").await;
    assert_eq!(
        (status, answer["version"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let (status, answer) = server.post_raw(&rotate, &token, "{}").await;
    assert_eq!(
        (status, answer["version"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
}
