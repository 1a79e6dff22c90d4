//! Scheduled deletion on a real server: a key whose waiting period has passed is
//! destroyed by the scheduler at the next pass — every version's material gone from the
//! database — answers `404 not_found` to cryptographic operations, still shows as
//! `destroyed`, and its deletion can no longer be cancelled. A key not yet due is left
//! alone.
//!
//! Seven days cannot pass in a test: the server is stopped, the key's due time moved
//! into the past in the database (with the row's state tag made as Coffer makes it),
//! and the scheduler lease of the stopped replica
//! dropped (the new one would otherwise wait out its 90 s); the pass runs at start.

use std::time::{Duration, Instant};

use coffer_audit::entry::ExportedEntry;
use coffer_core::kms::DELETION_PRINCIPAL;
use coffer_server::startup::InitMethod;
use serde_json::{Value, json};

use super::db;
use super::http::{self, Answer};
use crate::harness::{Db, TestServer};

async fn key(server: &TestServer, token: &str, spec: &str) -> String {
    http::post(
        &http::client(),
        &server.api,
        "/v1/kms/keys",
        token,
        Some(&json!({"spec": spec})),
    )
    .await
    .unwrap()
    .field("key_id")
}

async fn post(server: &TestServer, token: &str, path: &str, body: Value) -> Answer {
    let body = (!body.is_null()).then_some(body);
    http::post(&http::client(), &server.api, path, token, body.as_ref())
        .await
        .unwrap()
}

async fn show(server: &TestServer, token: &str, key: &str) -> Value {
    let answer = http::get(
        &http::client(),
        &server.api,
        &format!("/v1/kms/keys/{key}"),
        token,
    )
    .await
    .unwrap();
    assert!(answer.ok(), "{answer:?}");
    answer.json
}

async fn scheduled_deletion_destroys_due_keys(db_kind: Db) {
    let Some(server) = TestServer::start_with(db_kind, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let due = key(&server, &token, "aes-256").await;
    let signing = key(&server, &token, "ed25519").await;
    post(
        &server,
        &token,
        &format!("/v1/kms/keys/{due}/rotate"),
        Value::Null,
    )
    .await;
    let sealed = post(
        &server,
        &token,
        "/v1/kms/wrap",
        json!({"key_id": due, "plaintext": "aGVsbG8="}),
    )
    .await
    .field("ciphertext");
    for key in [&due, &signing] {
        let answer = post(
            &server,
            &token,
            &format!("/v1/kms/keys/{key}/schedule-deletion"),
            json!({"pending_window_days": 7}),
        )
        .await;
        assert!(answer.ok(), "{answer:?}");
    }

    // The due time is under the key row's state tag (`coffer_core::state_seal`): the
    // moved row is sealed as Coffer seals a change, with this deployment's seal, or
    // the scheduler would rightly refuse it as edited.
    let moved_tag = {
        let mut conn = db::connect(&server.database_url).await;
        let tenant: String = sqlx::query_scalar("SELECT tenant_id FROM keys WHERE id = $1")
            .bind(&due)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let keys = server.state.kms.key_service();
        let mut row = keys
            .key(tenant.parse().unwrap(), due.parse().unwrap())
            .await
            .unwrap();
        row.deletion_due = Some(coffer_core::Timestamp::from_millis(1));
        keys.seal().key_tag(&row).unwrap().to_vec()
    };
    let stopped = server.stop().await;
    let url = stopped.database_url.clone();
    let mut conn = db::connect(&url).await;
    sqlx::query("UPDATE keys SET deletion_due = 1, state_tag = $2 WHERE id = $1")
        .bind(&due)
        .bind(moved_tag)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM leases")
        .execute(&mut conn)
        .await
        .unwrap();
    let server = stopped.start().await;

    let started = Instant::now();
    while show(&server, &token, &due).await["state"] != "destroyed" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the due key was not destroyed: {}",
            show(&server, &token, &due).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = show(&server, &token, &due).await;
    let versions = shown["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{shown}");
    assert!(
        versions
            .iter()
            .all(|v| v["state"] == "destroyed" && v["primary"] != true),
        "{shown}"
    );
    let with_material: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM key_versions WHERE key_id = $1 AND wrapped_material IS NOT NULL",
    )
    .bind(&due)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(with_material, 0, "material left in the database");
    assert_eq!(
        show(&server, &token, &signing).await["state"],
        "pending-deletion"
    );

    // Gone for cryptography (as AWS KMS: not found); no way back.
    let refused = [
        post(
            &server,
            &token,
            "/v1/kms/wrap",
            json!({"key_id": due, "plaintext": "aGVsbG8="}),
        )
        .await,
        post(
            &server,
            &token,
            "/v1/kms/unwrap",
            json!({"ciphertext": sealed}),
        )
        .await,
    ];
    for answer in refused {
        assert_eq!(answer.status, 404, "{answer:?}");
        assert_eq!(answer.json["error"]["code"], "not_found", "{answer:?}");
    }
    let cancel = post(
        &server,
        &token,
        &format!("/v1/kms/keys/{due}/cancel-deletion"),
        Value::Null,
    )
    .await;
    assert_eq!(cancel.status, 409, "{cancel:?}");

    // Recorded as the deletion worker's, and the log is whole.
    let log = server.admin().audit_entries(0, 10_000).await.unwrap();
    let entry = log
        .lines()
        .map(|l| serde_json::from_str::<ExportedEntry>(l).unwrap())
        .find(|e| e.entry.op == "keys.destroy.scheduled")
        .expect("the destruction is in the audit log");
    assert_eq!(
        (entry.entry.principal.as_str(), entry.entry.key.as_deref()),
        (DELETION_PRINCIPAL, Some(due.as_str()))
    );
    let audit = server.state.audit.as_ref().unwrap();
    assert!(audit.verify_stored().await.failures.is_empty());
    assert_eq!(audit.integrity_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_due_key_is_destroyed_by_the_scheduler() {
    scheduled_deletion_destroys_due_keys(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_due_key_is_destroyed_by_the_scheduler() {
    scheduled_deletion_destroys_due_keys(Db::Postgres).await;
}
