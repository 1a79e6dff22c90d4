//! Seed 004's commands through the binary: list with expiration, register a purpose,
//! spare + activate, history, test-sign, publish and the public JWKS.

use coffer_api::keys::CreateKeyRequest;

use super::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expired_attestation_key_runbook_commands_work() {
    let server = TestServer::start().await;
    let token = server.tenant_token("releases").await;
    let client = server.client(&token);
    let request = CreateKeyRequest {
        spec: "ed25519".into(),
        alias: Some("attestation".into()),
        validity: Some("365d".into()),
        ..Default::default()
    };
    let key = client.create_key(&request).await.unwrap().key_id;

    let (code, out, _) = server.cli(
        &token,
        &[
            "keys",
            "list",
            "--purpose",
            "sign",
            "--show-expiration",
            "--state",
            "active",
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("DAYS LEFT")
            && out.contains(&key)
            && (out.contains("364") || out.contains("365")),
        "{out}"
    );

    let (code, out, err) = server.cli(
        &token,
        &[
            "keys",
            "register",
            "alias/attestation",
            "--purpose",
            "attestation-signing",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("attestation-signing"), "{out}");

    let (code, out, _) = server.cli(&token, &["keys", "add-spare", "alias/attestation"]);
    assert_eq!(code, 0);
    assert!(out.contains("v2 inactive"), "{out}");
    let (code, out, _) = server.cli(
        &token,
        &["keys", "list", "--show-expiration", "--state", "inactive"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("inactive"), "{out}");
    // Without --show-expiration too: the keys with a spare, and which versions.
    let (code, out, err) = server.cli(&token, &["keys", "list", "--state", "inactive"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("INACTIVE VERSIONS") && out.contains(&key) && out.contains("v2"),
        "{out}"
    );
    let (code, out, err) = server.cli(&token, &["--json", "keys", "list", "--state", "retired"]);
    assert_eq!(code, 0, "{err}");
    let none: coffer_api::keys::ListKeysResponse = serde_json::from_str(&out).unwrap();
    assert!(none.keys.is_empty(), "no key has a retired version: {out}");
    let (code, out, _) = server.cli(&token, &["keys", "activate", "alias/attestation", "2"]);
    assert_eq!(code, 0);
    assert!(out.contains("v2 active (primary)"), "{out}");

    // Seed 004's "keys config set rotation.*": auto-rotation 30 days before expiry, 14 days overlap.
    let (code, out, err) = server.cli(
        &token,
        &[
            "keys",
            "set-policy",
            "alias/attestation",
            "--rotate-before-expiry",
            "30d",
            "--overlap",
            "2w",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("before expiry 30d") && out.contains("overlap 2w"),
        "{out}"
    );
    let shown = client.show_key("alias/attestation").await.unwrap();
    assert_eq!(
        (
            shown.rotation.before_expiry.as_deref(),
            shown.validity.as_deref()
        ),
        (Some("30d"), Some("365d"))
    );

    let (code, out, _) = server.cli(&token, &["keys", "test-sign", "alias/attestation"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("version 2") && out.contains("signed and verified"),
        "{out}"
    );

    let (code, out, _) = server.cli(&token, &["keys", "history", "alias/attestation"]);
    assert_eq!(code, 0);
    for event in [
        "key.created",
        "key.purpose",
        "version.created",
        "version.activated",
    ] {
        assert!(out.contains(event), "{event}: {out}");
    }

    // Publishing: the tenant's JWKS (no token) lists both usable versions.
    assert!(
        server.anonymous().jwks("releases").await.unwrap()["keys"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (code, _, err) = server.cli(&token, &["keys", "publish", "alias/attestation"]);
    assert_eq!(code, 0, "{err}");
    let jwks = server.anonymous().jwks("releases").await.unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [format!("{key}:1"), format!("{key}:2")]);
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    // An encryption key cannot be published.
    let aes = client
        .create_key(&CreateKeyRequest {
            spec: "aes-256".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key_id;
    let (code, _, err) = server.cli(&token, &["keys", "publish", &aes]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: wrong_key_purpose"), "{err}");
}
