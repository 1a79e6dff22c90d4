//! The persisted reference tracker through real servers: `GET …/references` and
//! `coffer rotate references` give the same answer after a restart (SQLite: the
//! graceful stop flushes the use of the last second) and from a second replica on one
//! PostgreSQL (each replica flushes its use about once a second).

use std::time::{Duration, Instant};

use coffer_api::rotation::ReferencesView;
use coffer_client::Client;
use coffer_server::startup::InitMethod;

use super::api::{create, unwrap_request, wrap_request};
use super::harness::{Db, TestServer};

/// `(version, principal, kind, first seen, last seen, count)`, in the view's order.
fn rows(view: &ReferencesView) -> Vec<(u32, String, String, String, String, u64)> {
    view.versions
        .iter()
        .flat_map(|v| {
            v.principals.iter().map(|p| {
                (
                    v.version,
                    p.principal.clone(),
                    p.kind.clone(),
                    p.first_seen.clone(),
                    p.last_seen.clone(),
                    p.count,
                )
            })
        })
        .collect()
}

/// `(kind, count)` by kind.
fn counts(rows: &[(u32, String, String, String, String, u64)]) -> Vec<(&str, u64)> {
    let mut out: Vec<(&str, u64)> = rows.iter().map(|r| (r.2.as_str(), r.5)).collect();
    out.sort();
    out
}

/// Two wraps and one unwrap of version 1.
async fn use_key(client: &Client, key: &str) {
    let sealed = client.wrap(&wrap_request(key, b"row", &[])).await.unwrap();
    client.wrap(&wrap_request(key, b"row", &[])).await.unwrap();
    client
        .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_are_the_same_after_a_restart() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "kek").await;
    use_key(&acme, &key).await;
    let before = rows(&acme.references(&key).await.unwrap());
    assert_eq!(
        counts(&before),
        [("decrypt", 1), ("encrypt", 2)],
        "{before:?}"
    );

    // Stopped at once: whatever the last tick left, the graceful stop flushes the rest.
    let server = server.restart().await;
    let acme = server.client(&token);
    assert_eq!(rows(&acme.references(&key).await.unwrap()), before);
    let (code, out, err) = server.cli(&token, &["rotate", "references", "alias/kek"]);
    assert_eq!(code, 0, "{err}");
    for (_, principal, kind, first_seen, _, count) in &before {
        assert!(
            out.lines().any(|l| l.contains(principal.as_str())
                && l.contains(kind.as_str())
                && l.contains(first_seen.as_str())
                && l.trim_end().ends_with(&format!(" {count}"))),
            "{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_on_postgres_gives_the_same_answer() {
    let Some(first) = TestServer::start_with(Db::Postgres, InitMethod::KeyFile, &[]).await else {
        return;
    };
    // Minted first: a replica learns of tokens minted elsewhere at its next refresh.
    let token = first.tenant_token("acme").await;
    let second = first.another_replica().await;
    let (a, b) = (first.client(&token), second.client(&token));
    let key = create(&a, "aes-256", "kek").await;
    use_key(&a, &key).await;
    use_key(&b, &key).await;
    // Each replica flushes within about a second; then both show both replicas' use.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (from_a, from_b) = (
            rows(&a.references(&key).await.unwrap()),
            rows(&b.references(&key).await.unwrap()),
        );
        if from_a == from_b && counts(&from_a) == [("decrypt", 2), ("encrypt", 4)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replicas disagree: {from_a:?} {from_b:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
