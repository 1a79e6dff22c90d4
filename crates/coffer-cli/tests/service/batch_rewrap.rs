//! `POST /v1/kms/rewrap` with `items` on a real server: caller-held ciphertexts move to
//! the new primary in one request, a bad item answers its own error without failing
//! the others, every item is in the audit log, and an oversized batch is refused
//! whole with a clear error.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_api::paths;

use super::api::{create, wrap_request};
use super::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrap_batch_answers_per_item_and_audits_every_item() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "sidecars").await;
    let mut ciphertexts = Vec::new();
    for i in 0..5 {
        let sealed = acme
            .wrap(&wrap_request(
                &key,
                format!("dek {i}").as_bytes(),
                &[("blob", "b")],
            ))
            .await
            .unwrap();
        ciphertexts.push(STANDARD.encode(&sealed.ciphertext.0));
    }
    acme.rotate_key(&key).await.unwrap();
    let mut items: Vec<serde_json::Value> = ciphertexts
        .iter()
        .map(|c| serde_json::json!({ "ciphertext": c, "context": { "blob": "b" } }))
        .collect();
    // Wrong context: that item fails alone.
    items.insert(
        2,
        serde_json::json!({ "ciphertext": ciphertexts[0], "context": { "blob": "x" } }),
    );
    let (status, body) = server
        .post_raw(
            paths::REWRAP,
            &token,
            serde_json::json!({ "items": items }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let answers = body["items"].as_array().unwrap();
    assert_eq!(answers.len(), 6);
    for (i, answer) in answers.iter().enumerate() {
        if i == 2 {
            assert_eq!(answer["error"]["code"], "invalid_ciphertext", "{answer}");
        } else {
            assert_eq!(answer["key_version"], 2, "{answer}");
        }
    }

    let log = server.admin().audit_entries(0, 100_000).await.unwrap();
    let rewraps: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"op\":\"rewrap\""))
        .collect();
    assert_eq!(rewraps.len(), 6, "one entry per item");
    assert_eq!(
        rewraps
            .iter()
            .filter(|l| l.contains("\"outcome\":\"ok\""))
            .count(),
        5
    );
    assert!(
        rewraps
            .iter()
            .all(|l| l.contains("from key") && l.contains("version 1"))
    );

    let too_many: Vec<serde_json::Value> = (0..257).map(|_| items[0].clone()).collect();
    let (status, body) = server
        .post_raw(
            paths::REWRAP,
            &token,
            serde_json::json!({ "items": too_many }).to_string(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 256 items"),
        "{body}"
    );
}
