//! Issue 13, item 9: what an unauthenticated caller or a metric scrape learns.

use super::api::create;
use super::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_answers_alike_for_absent_and_silent_tenants() {
    let server = TestServer::start().await;
    let client = server.tenant("silent").await;
    create(&client, "ed25519", "unpublished").await;
    let absent = server.anonymous().jwks("no-such-tenant").await.unwrap();
    let silent = server.anonymous().jwks("silent").await.unwrap();
    assert_eq!(absent, silent);
    assert_eq!(absent, serde_json::json!({ "keys": [] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_in_odd_spellings_add_no_key_series() {
    let server = TestServer::start().await;
    let client = server.tenant("acme").await;
    let key = create(&client, "aes-256", "k").await;
    client.disable_key(&key).await.unwrap();
    let spellings = [
        key.to_uppercase(),
        key.replace('-', ""),
        format!("{{{key}}}"),
        format!("urn:uuid:{key}"),
    ];
    for spelling in &spellings {
        let refused = client
            .wrap(&super::api::wrap_request(spelling, b"x", &[]))
            .await;
        assert!(refused.is_err(), "{spelling}");
    }
    let metrics = reqwest::get(format!("{}/metrics", server.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kms_key_ops_total{") && l.contains("key_disabled"))
        .filter(|l| spellings.iter().any(|s| l.contains(s.as_str())) || l.contains(&key))
        .collect();
    assert!(
        series
            .iter()
            .all(|l| !spellings.iter().any(|s| l.contains(s.as_str()))),
        "{series:?}"
    );
    assert_eq!(series.len(), 1, "{series:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_checkpoint_names_no_anchor_url_or_path() {
    // Nothing listens on port 9 of the loopback: every post to the anchor fails.
    let url = "http://127.0.0.1:9/private-anchor-path";
    let server = TestServer::start_with(
        super::harness::Db::Sqlite,
        coffer_server::startup::InitMethod::KeyFile,
        &[("COFFER_AUDIT_ANCHOR_URL", url)],
    )
    .await
    .unwrap();
    match server.admin().audit_new_checkpoint().await {
        Err(coffer_client::ClientError::Api { code, message, .. }) => {
            assert_eq!(code, coffer_api::ErrorCode::Unavailable);
            assert!(
                !message.contains("private-anchor-path") && !message.contains("127.0.0.1"),
                "{message}"
            );
        }
        other => panic!("expected 503, got {other:?}"),
    }
}
