//! `wrap` with a `track_id`: a data key the caller already holds, registered as a
//! tracked data key exactly as `datakey --track-id` registers a generated one. The
//! rotation saga and quiet retirement rewrap it like the others, a repeat of the same
//! import answers the stored envelope, and every refused import stores nothing
//! (SQLite and PostgreSQL).

use std::time::Duration;

use coffer_api::B64Secret;
use coffer_api::ErrorCode;
use coffer_api::admin::MintTokenRequest;
use coffer_api::crypto::{Batch, CiphertextResponse, DatakeyRequest, ItemResult, WrapRequest};
use coffer_client::{Client, ClientError};
use coffer_core::lifecycle::VersionState;
use coffer_server::startup::InitMethod;

use super::api::{code_of, create, unwrap_request};
use super::harness::{Db, TestServer};
use super::rotation::start;

fn import(key: &str, dek: &[u8], track_id: &str) -> WrapRequest {
    WrapRequest {
        key_id: key.into(),
        plaintext: B64Secret::new(dek.to_vec()),
        context: [("blob".to_owned(), track_id.to_owned())].into(),
        track_id: Some(track_id.into()),
    }
}

/// The tracked copy of `track_id` is under `version` and opens to `dek`.
async fn tracked_opens(client: &Client, track_id: &str, version: u32, dek: &[u8]) {
    let tracked = client.tracked(track_id).await.unwrap();
    assert_eq!(tracked.key_version, version, "{track_id}");
    let opened = client
        .unwrap(&unwrap_request(&tracked.ciphertext, &[("blob", track_id)]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), dek, "{track_id}");
}

/// Runs the scheduler's quiet retirement once version 1 of `key` has been quiet for
/// `rotation.retire_after_quiet` (one second here), and checks that it is retired (by
/// this call or by the server's own pass).
async fn retire_quietly(server: &TestServer, client: &Client, key: &str) {
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    server.state.kms.retire_quiet_versions().await.unwrap();
    let shown = client.show_key(key).await.unwrap();
    assert_eq!(shown.versions[0].version, 1);
    assert_eq!(shown.versions[0].state, "retired", "{shown:?}");
}

async fn imported_keys_are_rewrapped_by_rotation_and_retirement(db: Db) {
    let Some(server) = TestServer::start_with(
        db,
        InitMethod::KeyFile,
        &[("COFFER_ROTATION_RETIRE_AFTER_QUIET", "1s")],
    )
    .await
    else {
        return;
    };
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "kek").await;
    let deks: Vec<(String, Vec<u8>)> = (1..=3)
        .map(|i| (format!("legacy-{i}"), vec![i; 32]))
        .collect();

    // One import alone, two in a batch: all three registered under version 1.
    let first = acme
        .wrap(&import(&key, &deks[0].1, &deks[0].0))
        .await
        .unwrap();
    assert_eq!(first.key_version, 1);
    let batch = acme
        .wrap_batch(&Batch {
            items: deks[1..]
                .iter()
                .map(|(id, dek)| import(&key, dek, id))
                .collect(),
        })
        .await
        .unwrap();
    assert!(
        batch.iter().all(|item| matches!(item, ItemResult::Ok(_))),
        "{batch:?}"
    );
    let tracked = acme.tracked("legacy-1").await.unwrap();
    assert_eq!(
        tracked.ciphertext, first.ciphertext,
        "the wrap's answer is the row"
    );

    // The same import again (a client that lost the answer): the stored envelope, and
    // no second row.
    let again = acme
        .wrap(&import(&key, &deks[0].1, &deks[0].0))
        .await
        .unwrap();
    assert_eq!(again, first);
    let refs = acme.references(&key).await.unwrap();
    let v1 = refs.versions.iter().find(|v| v.version == 1).unwrap();
    assert_eq!(v1.tracked, 3);
    assert!(
        v1.principals.iter().all(|p| p.kind != "encrypt"),
        "tracked imports are not untracked use: {v1:?}"
    );

    // The saga rewraps them to version 2 (no `retire_untracked` needed for them).
    let done = start(&acme, "alias/kek", None).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.tracked_remaining),
        ("completed", 0)
    );
    for (id, dek) in &deks {
        tracked_opens(&acme, id, 2, dek).await;
    }
    // Retiring version 1: the tracked copies still open, the caller's old copy does not.
    retire_quietly(&server, &acme, &key).await;
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_request(&first.ciphertext, &[("blob", "legacy-1")]))
                .await
        ),
        ErrorCode::VersionRetired
    );
    for (id, dek) in &deks {
        tracked_opens(&acme, id, 2, dek).await;
    }

    // Quiet retirement alone (no saga): a key imported under version 1, a plain
    // rotation, version 1 retiring; the retirement rewraps the import first.
    let other = create(&acme, "aes-256", "kek-2").await;
    let dek = vec![9u8; 16];
    let sealed = acme.wrap(&import(&other, &dek, "legacy-4")).await.unwrap();
    acme.rotate_key(&other).await.unwrap();
    let tenant = server.state.kms.find_tenant("acme").await.unwrap().id;
    let id = other.parse().unwrap();
    let operator = coffer_core::Actor::new("test-operator", "test", "keys.retire");
    server
        .state
        .kms
        .key_service()
        .set_version_state(
            tenant,
            id,
            coffer_core::VersionNumber::new(1).unwrap(),
            VersionState::Retiring,
            &operator,
        )
        .await
        .unwrap();
    server.state.kms.forget_key(tenant, id);
    retire_quietly(&server, &acme, &other).await;
    tracked_opens(&acme, "legacy-4", 2, &dek).await;
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_request(&sealed.ciphertext, &[("blob", "legacy-4")]))
                .await
        ),
        ErrorCode::VersionRetired
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_keys_are_rewrapped_by_rotation_and_retirement_sqlite() {
    imported_keys_are_rewrapped_by_rotation_and_retirement(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_keys_are_rewrapped_by_rotation_and_retirement_postgres() {
    imported_keys_are_rewrapped_by_rotation_and_retirement(Db::Postgres).await;
}

async fn token(server: &TestServer, operations: &[&str]) -> Client {
    let token = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            operations: operations.iter().map(|o| (*o).to_owned()).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    server.client(&token)
}

fn refused(result: Result<CiphertextResponse, ClientError>) -> (ErrorCode, String) {
    match result {
        Err(ClientError::Api { code, message, .. }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn refused_imports_store_nothing(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let acme_token = server.tenant_token("acme").await;
    let acme = server.client(&acme_token);
    let key = create(&acme, "aes-256", "kek").await;
    let mac = create(&acme, "hmac-sha256", "mac").await;
    let dek = [5u8; 32];
    // A generated tracked data key holds the id `taken`.
    let taken = acme
        .datakey(&DatakeyRequest {
            key_id: key.clone(),
            context: [("blob".to_owned(), "taken".to_owned())].into(),
            track_id: Some("taken".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let taken_dek = taken.plaintext.unwrap().expose_secret().to_vec();

    let wrap_only = token(&server, &["wrap"]).await;
    let no_wrap = token(&server, &["datakey", "unwrap"]).await;
    let long_id = "x".repeat(257);
    let cases: Vec<(&str, Client, WrapRequest, ErrorCode, &str)> = vec![
        (
            "no wrap",
            no_wrap,
            import(&key, &dek, "t-1"),
            ErrorCode::Forbidden,
            "does not allow",
        ),
        (
            "empty",
            acme.clone(),
            import(&key, b"", "t-2"),
            ErrorCode::InvalidRequest,
            "1 to 1024 bytes",
        ),
        (
            "too long",
            acme.clone(),
            import(&key, &[1; 1025], "t-3"),
            ErrorCode::InvalidRequest,
            "1 to 1024 bytes",
        ),
        (
            "empty id",
            acme.clone(),
            import(&key, &dek, ""),
            ErrorCode::InvalidRequest,
            "track_id",
        ),
        (
            "long id",
            acme.clone(),
            import(&key, &dek, &long_id),
            ErrorCode::InvalidRequest,
            "track_id",
        ),
        (
            "control",
            acme.clone(),
            import(&key, &dek, "a\nb"),
            ErrorCode::InvalidRequest,
            "track_id",
        ),
        (
            "mac key",
            acme.clone(),
            import(&mac, &dek, "t-4"),
            ErrorCode::WrongKeyPurpose,
            "",
        ),
        (
            "absent key",
            acme.clone(),
            import("alias/nope", &dek, "t-5"),
            ErrorCode::NotFound,
            "",
        ),
        // The id in use with other bytes, or under another context.
        (
            "other bytes",
            acme.clone(),
            import(&key, &dek, "taken"),
            ErrorCode::Conflict,
            "already in use",
        ),
        (
            "other context",
            acme.clone(),
            WrapRequest {
                context: Default::default(),
                ..import(&key, &taken_dek, "taken")
            },
            ErrorCode::Conflict,
            "already in use",
        ),
        // The very same bytes, but a token that may not read the row back learns nothing.
        (
            "no unwrap",
            wrap_only,
            import(&key, &taken_dek, "taken"),
            ErrorCode::Conflict,
            "already in use",
        ),
    ];
    for (name, client, request, code, words) in cases {
        let (got, message) = refused(client.wrap(&request).await);
        assert_eq!(got, code, "{name}: {message}");
        assert!(message.contains(words), "{name}: {message}");
    }
    acme.disable_key(&key).await.unwrap();
    let (got, _) = refused(acme.wrap(&import(&key, &dek, "t-6")).await);
    assert_eq!(got, ErrorCode::KeyDisabled);
    acme.enable_key(&key).await.unwrap();

    // In a batch, a refused item stores nothing and the good one is registered.
    let batch = acme
        .wrap_batch(&Batch {
            items: vec![import(&key, b"", "t-7"), import(&key, &dek, "t-8")],
        })
        .await
        .unwrap();
    assert!(
        matches!(&batch[0], ItemResult::Err { error } if error.code == ErrorCode::InvalidRequest),
        "{batch:?}"
    );
    assert!(matches!(&batch[1], ItemResult::Ok(_)), "{batch:?}");

    // Nothing but `taken` and `t-8` was stored, and `taken` is as it was.
    for id in ["t-1", "t-2", "t-3", "t-4", "t-5", "t-6", "t-7"] {
        assert_eq!(code_of(acme.tracked(id).await), ErrorCode::NotFound, "{id}");
    }
    let refs = acme.references(&key).await.unwrap();
    assert_eq!(refs.versions.iter().map(|v| v.tracked).sum::<u64>(), 2);
    let row = acme.tracked("taken").await.unwrap();
    assert_eq!(row.ciphertext, taken.ciphertext);
    tracked_opens(&acme, "taken", 1, &taken_dek).await;
    // The token that may read it back gets the same import answered with the row.
    let replay = acme.wrap(&import(&key, &taken_dek, "taken")).await.unwrap();
    assert_eq!(replay.ciphertext, taken.ciphertext);

    // `coffer encrypt --track-id`: the same import from the command line; a second one
    // under the same id with other bytes is refused and changes nothing.
    let cli = |plaintext: &str| {
        server.cli(
            &acme_token,
            &[
                "encrypt",
                "--key",
                "alias/kek",
                "--track-id",
                "cli-1",
                "--context",
                "blob=cli-1",
                "--plaintext",
                plaintext,
            ],
        )
    };
    let (code, stdout, stderr) = cli("a data key from the command line");
    assert_eq!(code, 0, "{stderr}");
    let row = acme.tracked("cli-1").await.unwrap();
    assert_eq!(
        stdout.trim(),
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            &row.ciphertext.0
        )
    );
    let (code, _, stderr) = cli("other bytes");
    assert_ne!(code, 0);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert_eq!(
        acme.tracked("cli-1").await.unwrap().ciphertext,
        row.ciphertext
    );
    tracked_opens(&acme, "cli-1", 1, b"a data key from the command line").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_imports_store_nothing_sqlite() {
    refused_imports_store_nothing(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_imports_store_nothing_postgres() {
    refused_imports_store_nothing(Db::Postgres).await;
}
