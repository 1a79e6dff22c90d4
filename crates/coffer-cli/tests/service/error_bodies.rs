//! Issue 13, item 9: every refusal, axum's own included, answers Coffer's JSON error
//! body, so a client never has to parse a second shape (or plain text) to learn why.

use super::api::create;
use super::harness::TestServer;

/// The `{"error": {"code", "message", "request_id"}}` body of an answer, or a panic
/// naming what came instead.
async fn error_of(response: reqwest::Response) -> (u16, String, reqwest::header::HeaderMap) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: no error code: {text}"))
        .to_owned();
    assert!(
        body["error"]["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{text}"
    );
    (status, code, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_bad_path_and_oversized_action_bodies_answer_json() {
    coffer_client::install_tls_provider();
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let key = create(&server.client(&token), "aes-256", "k").await;
    let http = reqwest::Client::new();

    // A known path with a method it does not take.
    let response = http
        .delete(format!("{}/v1/kms/keys/{key}/rotate", server.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, code, headers) = error_of(response).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert!(headers.contains_key("allow"), "{headers:?}");

    // A path segment that percent-decodes to bytes that are not UTF-8.
    let response = http
        .get(format!("{}/v1/kms/keys/%FF%FE", server.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));

    // Bad percent-encoding.
    let response = http
        .get(format!("{}/v1/kms/keys/%ZZ", server.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));

    // A key-action body over the limit (64 KiB by default).
    let response = http
        .post(format!("{}/v1/kms/keys/{key}/rotate", server.api))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 256 * 1024])
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));

    // The key was not rotated by the refused call.
    let shown = server.client(&token).show_key(&key).await.unwrap();
    assert_eq!(shown.primary_version, 1);
}
