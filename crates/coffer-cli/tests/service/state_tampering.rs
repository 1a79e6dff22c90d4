//! Issue 13: key and version states under a MAC, written as the attacks. Whoever can
//! write the database edits a spare version into an active one, moves the primary
//! back to an older version, or re-enables a disabled key; each key then answers an
//! integrity failure (500, nothing signed or unwrapped), a legitimate change on the
//! edited row is refused rather than sealing the edit in, and the other keys keep
//! working. A store from before the seal is bound at its first start. SQLite and
//! PostgreSQL.

use coffer_api::B64;
use coffer_api::ErrorCode;
use coffer_api::crypto::{SignRequest, VerifyRequest};
use coffer_server::startup::InitMethod;
use sqlx::{AnyConnection, Connection, Executor};

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::{Db, TestServer};

async fn connect(database_url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(database_url).await.unwrap();
    if database_url.starts_with("sqlite:") {
        conn.execute("PRAGMA busy_timeout=10000").await.unwrap();
    }
    conn
}

/// Runs `statements` (each with `$1` bound to a key id) against the stopped server's
/// database, then starts it again.
async fn tamper_and_restart(server: TestServer, statements: &[(&str, &str)]) -> TestServer {
    let stopped = server.stop().await;
    let mut conn = connect(&stopped.database_url).await;
    for (sql, arg) in statements {
        let done = sqlx::query(sql)
            .bind(*arg)
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(done.rows_affected() >= 1, "{sql} changed nothing");
    }
    conn.close().await.unwrap();
    stopped.start().await
}

async fn key_state(server: &TestServer, key: &str) -> String {
    let mut conn = connect(&server.database_url).await;
    let (state,): (String,) = sqlx::query_as("SELECT state FROM keys WHERE id = $1")
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    state
}

fn sign_request(key: &str) -> SignRequest {
    SignRequest {
        attestation: None,
        key_id: key.into(),
        message: Some(B64(b"release".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
    }
}

fn verify_request(key: &str, version: u32, signature: Vec<u8>) -> VerifyRequest {
    VerifyRequest {
        key_id: key.into(),
        key_version: Some(version),
        message: Some(B64(b"release".to_vec())),
        signature: B64(signature),
        ..Default::default()
    }
}

async fn edited_states_fail_closed(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let client = server.client(&token);
    // A spare (inactive) version: it may not verify until activated.
    let spare = create(&client, "ed25519", "spare").await;
    client.add_spare(&spare).await.unwrap();
    client.publish_key(&spare).await.unwrap();
    // A rotated key: version 2 signs, version 1 only verifies.
    let rotated = create(&client, "ed25519", "rotated").await;
    client.rotate_key(&rotated).await.unwrap();
    // A disabled key, with data sealed before it was disabled.
    let disabled = create(&client, "aes-256", "disabled").await;
    let sealed = client
        .wrap(&wrap_request(&disabled, b"payroll", &[]))
        .await
        .unwrap();
    client.disable_key(&disabled).await.unwrap();
    let untouched = create(&client, "ed25519", "untouched").await;
    let signed = client.sign(&sign_request(&spare)).await.unwrap();

    let server = tamper_and_restart(
        server,
        &[
            (
                "UPDATE key_versions SET state = 'active' WHERE key_id = $1 AND number = 2",
                &spare,
            ),
            (
                "UPDATE key_versions SET is_primary = 0 WHERE key_id = $1",
                &rotated,
            ),
            (
                "UPDATE key_versions SET is_primary = 1 WHERE key_id = $1 AND number = 1",
                &rotated,
            ),
            ("UPDATE keys SET state = 'enabled' WHERE id = $1", &disabled),
        ],
    )
    .await;
    let client = server.client(&token);

    // Each edited key answers an integrity failure, and nothing is signed, verified
    // or unwrapped with it.
    let signature = signed.signature.0.clone();
    assert_eq!(
        code_of(client.verify(&verify_request(&spare, 1, signature)).await),
        ErrorCode::Internal,
        "a spare edited into an active version must not serve"
    );
    assert_eq!(
        code_of(client.sign(&sign_request(&rotated)).await),
        ErrorCode::Internal,
        "a primary moved in the database must not sign"
    );
    assert_eq!(
        code_of(
            client
                .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
                .await
        ),
        ErrorCode::Internal,
        "a disabled key enabled in the database must not unwrap"
    );
    assert_eq!(
        code_of(client.wrap(&wrap_request(&disabled, b"more", &[])).await),
        ErrorCode::Internal
    );
    // Nor is the edited spare published (its key leaves the JWKS altogether).
    let jwks = server.anonymous().jwks("acme").await.unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(!kids.iter().any(|kid| kid.starts_with(&spare)), "{kids:?}");
    // A 500 names nothing internal.
    let err = client.sign(&sign_request(&rotated)).await.unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("integrity") && !text.contains(&rotated),
        "{text}"
    );
    assert!(server.state.kms.integrity_failures() >= 3);

    // A legitimate change on an edited row is refused, so the edit is never sealed
    // in: disabling the re-enabled key leaves its row as the attacker left it, and the
    // key still refuses to serve.
    assert_eq!(
        code_of(client.disable_key(&disabled).await),
        ErrorCode::Internal
    );
    assert_eq!(key_state(&server, &disabled).await, "enabled");
    assert_eq!(
        code_of(
            client
                .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
                .await
        ),
        ErrorCode::Internal
    );

    // The other keys keep working, and so do changes made through Coffer.
    client.sign(&sign_request(&untouched)).await.unwrap();
    client.rotate_key(&untouched).await.unwrap();
    client.disable_key(&untouched).await.unwrap();
    client.enable_key(&untouched).await.unwrap();
    client.sign(&sign_request(&untouched)).await.unwrap();
    let metrics = reqwest::get(format!("{}/metrics", server.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kms_integrity_failed_total{check=\"key_state\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_version_and_key_states_are_integrity_failures_sqlite() {
    edited_states_fail_closed(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_version_and_key_states_are_integrity_failures_postgres() {
    edited_states_fail_closed(Db::Postgres).await;
}

/// A store from before key states were sealed (no tags, no marker) keeps working: the
/// first start binds every row; after that, a row stripped of its tag fails.
async fn upgraded_store_binds_earlier_states(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let client = server.client(&token);
    let key = create(&client, "aes-256", "k").await;
    client.rotate_key(&key).await.unwrap();
    let sealed = client
        .wrap(&wrap_request(&key, b"kept", &[]))
        .await
        .unwrap();
    let server = tamper_and_restart(
        server,
        &[
            ("UPDATE keys SET state_tag = NULL WHERE id = $1", &key),
            (
                "UPDATE key_versions SET state_tag = NULL WHERE key_id = $1",
                &key,
            ),
            (
                "DELETE FROM server_secrets WHERE name = $1",
                "key-states-bound",
            ),
        ],
    )
    .await;
    let client = server.client(&token);
    let opened = client
        .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"kept");
    client.rotate_key(&key).await.unwrap();
    assert_eq!(server.state.kms.integrity_failures(), 0);

    // Bound now: stripping a tag again is tampering, not a row from before.
    let server = tamper_and_restart(
        server,
        &[(
            "UPDATE key_versions SET state_tag = NULL WHERE key_id = $1 AND number = 1",
            &key,
        )],
    )
    .await;
    let client = server.client(&token);
    assert_eq!(
        code_of(
            client
                .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
                .await
        ),
        ErrorCode::Internal
    );
    assert!(server.state.kms.integrity_failures() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_store_binds_earlier_key_states_sqlite() {
    upgraded_store_binds_earlier_states(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_store_binds_earlier_key_states_postgres() {
    upgraded_store_binds_earlier_states(Db::Postgres).await;
}
