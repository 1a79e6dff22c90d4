//! A batch is one durable commit: when that commit fails, no item is acknowledged (each
//! answers `unavailable`, none carries a ciphertext) and the log records none of them
//! as done; once commits work again, the same batch is answered and recorded whole.
//! On PostgreSQL the fault is at COMMIT itself (a deferred trigger). On SQLite a batch's
//! durable write is the audit journal, and the fault is a full disk under it (a small
//! tmpfs filled while the server runs; root, as in CI).

use serde_json::{Value, json};

use coffer_server::startup::InitMethod;

use super::db;
use super::disk_full::{Mount, fill};
use super::http;
use crate::harness::{Db, TestServer};

const ITEMS: usize = 16;

async fn wrap_batch(server: &TestServer, token: &str, key: &str, request_id: &str) -> Value {
    let items: Vec<Value> = (0..ITEMS)
        .map(|_| json!({"key_id": key, "plaintext": "aGVsbG8="}))
        .collect();
    let response = http::client()
        .post(format!("{}/v1/kms/wrap", server.api))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .json(&json!({ "items": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a batch answers per item");
    response.json().await.unwrap()
}

async fn a_batch_whose_commit_fails_acknowledges_no_item(db_kind: Db) {
    // SQLite: the deployment on a small filesystem, to fill.
    let mount = match db_kind {
        Db::Sqlite => match Mount::tmpfs("16m") {
            Some(mount) => Some(mount),
            None => return,
        },
        Db::Postgres => None,
    };
    let server = match &mount {
        Some(mount) => {
            TestServer::start_in(mount.path.join("data"), db_kind, InitMethod::KeyFile, &[]).await
        }
        None => TestServer::start_with(db_kind, InitMethod::KeyFile, &[]).await,
    };
    let Some(server) = server else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let key = http::post(
        &http::client(),
        &server.api,
        "/v1/kms/keys",
        &token,
        Some(&json!({"spec": "aes-256"})),
    )
    .await
    .unwrap()
    .field("key_id");
    let url = server.database_url.clone();
    let mut conn = db::connect(&url).await;

    let filler = mount.as_ref().map(|m| m.path.join("filler"));
    match &filler {
        Some(filler) => {
            fill(filler);
        }
        None => db::fail_audit_commits(&mut conn, &url).await,
    }
    let failed = wrap_batch(&server, &token, &key, "batch-commit-fails").await;
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), ITEMS);
    for item in items {
        assert!(item.get("ciphertext").is_none(), "acknowledged: {item}");
        assert_eq!(item["error"]["code"], "unavailable", "{item}");
    }
    match &filler {
        Some(filler) => std::fs::remove_file(filler).unwrap(),
        None => db::accept_audit(&mut conn, &url).await,
    }
    server.settle_audit().await;
    assert!(
        db::audit_leaves_of(&mut conn, "batch-commit-fails")
            .await
            .is_empty(),
        "the log records nothing of the failed batch"
    );

    let answered = wrap_batch(&server, &token, &key, "batch-commit-works").await;
    let items = answered["items"].as_array().unwrap();
    assert!(
        items.iter().all(|item| item["ciphertext"].is_string()),
        "{answered}"
    );
    server.settle_audit().await;
    let leaves = db::audit_leaves_of(&mut conn, "batch-commit-works").await;
    assert_eq!(leaves.len(), ITEMS, "one entry per item");
    assert!(
        leaves
            .iter()
            .all(|leaf| leaf.contains("\"outcome\":\"ok\""))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_batch_whose_commit_fails_acknowledges_no_item() {
    a_batch_whose_commit_fails_acknowledges_no_item(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_whose_commit_fails_acknowledges_no_item() {
    a_batch_whose_commit_fails_acknowledges_no_item(Db::Postgres).await;
}
