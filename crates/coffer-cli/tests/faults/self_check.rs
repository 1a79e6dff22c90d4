//! The periodic self-check never cries wolf: under concurrent writes — wraps, whose
//! entries the group commit appends, and key creations, whose entries commit inside
//! their own transactions — with the self-check and checkpoint signing every second,
//! no integrity problem is ever reported, and the log verifies against the newest
//! checkpoint afterwards.
//!
//! The alarm is read from the server's own log (`AuditLog::integrity_failures`, its
//! share of `kms_audit_integrity_failed_total`): the metric itself is process-wide, and
//! other tests of this binary raise it on purpose while this one runs.

use std::time::{Duration, Instant};

use coffer_audit::checkpoint::CheckpointVerifier;
use coffer_audit::verify::verify_log;
use coffer_server::startup::InitMethod;
use serde_json::json;

use super::http;
use crate::harness::{Db, TestServer};

const LOAD: Duration = Duration::from_secs(8);

async fn no_false_alarm_under_load(db_kind: Db) {
    let Some(server) = TestServer::start_with(
        db_kind,
        InitMethod::KeyFile,
        &[
            ("COFFER_AUDIT_VERIFY_INTERVAL", "1s"),
            ("COFFER_AUDIT_CHECKPOINT_INTERVAL", "1s"),
        ],
    )
    .await
    else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let log = server.state.audit.clone().unwrap();
    let client = http::client();
    let key = http::post(
        &client,
        &server.api,
        "/v1/kms/keys",
        &token,
        Some(&json!({"spec": "aes-256"})),
    )
    .await
    .unwrap()
    .field("key_id");

    let until = Instant::now() + LOAD;
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (client, api, token, key) = (
            client.clone(),
            server.api.clone(),
            token.clone(),
            key.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                // One worker of four creates keys (state changes); the others wrap.
                let (path, body) = if worker == 0 {
                    ("/v1/kms/keys", json!({"spec": "aes-256"}))
                } else {
                    (
                        "/v1/kms/wrap",
                        json!({"key_id": key, "plaintext": "aGVsbG8="}),
                    )
                };
                let answer = http::post(&client, &api, path, &token, Some(&body))
                    .await
                    .unwrap();
                assert!(answer.ok(), "{path}: {answer:?}");
                done += 1;
            }
            done
        }));
    }
    // Checkpoints on demand as well (an operator, a monitoring job, another replica):
    // the periodic ones never overlap the self-check, which runs in the same loop.
    let signer = {
        let (client, api, admin) = (
            client.clone(),
            server.api.clone(),
            server.admin_token.clone(),
        );
        tokio::spawn(async move {
            while Instant::now() < until {
                let answer = http::post(&client, &api, "/v1/audit/checkpoint", &admin, None)
                    .await
                    .unwrap();
                assert!(answer.ok(), "checkpoint: {answer:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut requests = 0;
    for worker in workers {
        requests += worker.await.unwrap();
    }
    signer.await.unwrap();
    assert!(requests > 50, "only {requests} requests in {LOAD:?}");

    // One more self-check now that the load has stopped, then the verdict.
    let last = log.verify_stored().await;
    assert!(last.failures.is_empty(), "{:?}", last.failures);
    assert_eq!(
        log.integrity_failures(),
        0,
        "the self-check reported a problem under load (see the log)"
    );
    let admin = server.admin();
    let note = admin.audit_new_checkpoint().await.unwrap();
    let mut entries = String::new();
    loop {
        let from = entries.lines().count() as u64;
        let page = admin
            .audit_entries(from, coffer_api::audit::MAX_PAGE)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        entries.push_str(&page);
    }
    let verifier = CheckpointVerifier::parse(&admin.audit_key().await.unwrap()).unwrap();
    let verified = verify_log(&entries, &note, &verifier).unwrap();
    assert!(verified.checkpoint.size > requests, "{verified:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_self_check_raises_no_false_alarm_under_load() {
    no_false_alarm_under_load(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_self_check_raises_no_false_alarm_under_load() {
    no_false_alarm_under_load(Db::Postgres).await;
}
