//! The rotation saga on an HSM-resident AES key: the new version is made in the token,
//! and tracked data keys are rewrapped from the old version to it, both opened and
//! sealed by the token.

use coffer_api::crypto::DatakeyRequest;
use coffer_api::keys::CreateKeyRequest;

use super::api::unwrap_request;
use super::hsm::hsm_server;
use super::rotation::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_saga_rewraps_tracked_keys_between_hsm_versions() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let acme = server.client(&server.tenant_token("acme").await);
    let key = acme
        .create_key(&CreateKeyRequest {
            spec: "aes-256".into(),
            alias: Some("hsm-kek".into()),
            protection: Some("hsm".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut tracked = Vec::new();
    for id in ["blob-1", "blob-2"] {
        let answer = acme
            .datakey(&DatakeyRequest {
                key_id: key.key_id.clone(),
                track_id: Some(id.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(answer.ciphertext.0[0], 0x02, "sealed by the token");
        tracked.push((id, answer.plaintext.unwrap().expose_secret().to_vec()));
    }

    let done = start(&acme, "alias/hsm-kek", None).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.from_version, done.to_version),
        ("completed", 1, Some(2)),
        "{done:?}"
    );
    assert_eq!(done.tracked_remaining, 0);
    let shown = acme.show_key(&key.key_id).await.unwrap();
    let ids: Vec<String> = shown
        .versions
        .iter()
        .map(|v| v.hsm.as_ref().expect("every version in the HSM").id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    for (id, plaintext) in tracked {
        let moved = acme.tracked(id).await.unwrap();
        assert_eq!(moved.key_version, 2);
        assert_eq!(moved.ciphertext.0[0], 0x02);
        let opened = acme
            .unwrap(&unwrap_request(&moved.ciphertext, &[]))
            .await
            .unwrap();
        assert_eq!(opened.plaintext.expose_secret(), plaintext.as_slice());
    }
}

/// `coffer keys create --protection hsm` makes the key in the token; `keys rotate` adds
/// a version there; `keys show` prints the protection and each version's location;
/// `--hsm-slot` without `--protection` is refused by the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_hsm_keys_and_shows_where_versions_live() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let (code, out, err) = server.cli(
        &token,
        &[
            "keys",
            "create",
            "--spec",
            "ed25519",
            "--protection",
            "hsm",
            "--alias",
            "cli-hsm",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("protection:") && out.contains("hsm"), "{out}");
    let (code, _, err) = server.cli(&token, &["keys", "rotate", "alias/cli-hsm"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.cli(&token, &["keys", "show", "alias/cli-hsm"]);
    assert_eq!(code, 0, "{err}");
    let locations = out.lines().filter(|l| l.contains("hsm slot ")).count();
    assert_eq!(locations, 2, "{out}");
    assert!(out.contains("LOCATION"), "{out}");
    let (code, _, err) = server.cli(
        &token,
        &["keys", "create", "--spec", "ed25519", "--hsm-slot", "1"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("--protection"), "{err}");
}

/// The known-answer checks before readiness run HSM-resident versions through the
/// token: after a restart with only HSM keys, they pass for their specs and the server
/// is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_answer_checks_run_hsm_keys_through_the_token() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let acme = server.client(&server.tenant_token("acme").await);
    for spec in ["aes-256", "ecdsa-p256"] {
        acme.create_key(&CreateKeyRequest {
            spec: spec.into(),
            protection: Some("hsm".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let server = server.restart().await;
    match server.state.kms.known_answer_outcome() {
        coffer_core::kms::KnownAnswers::Passed(specs) => {
            assert_eq!(specs, ["aes-256", "ecdsa-p256"], "{specs:?}");
        }
        other => panic!("known-answer checks: {other:?}"),
    }
    assert!(server.anonymous().readyz(&server.ops).await.unwrap());
}
