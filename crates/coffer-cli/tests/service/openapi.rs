//! The OpenAPI documents (`GET /v1/openapi.json`, and `/openapi.json` on the operations
//! port): served without a token, every operation in them reaches its route, and
//! schemathesis, driven by them against a live server, finds no 5xx and no answer
//! outside the document. Schemathesis runs from the venv `.ci/run` makes
//! (`COFFER_SCHEMATHESIS_VENV` names another); without it the test skips, unless
//! `COFFER_REQUIRE_SCHEMATHESIS=1` (set by CI), where it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use super::harness::TestServer;

async fn get_json(url: &str) -> (u16, Option<String>, Value) {
    coffer_client::install_tls_provider();
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let media = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, media, response.json().await.unwrap_or(Value::Null))
}

/// A value for each path parameter, so a request reaches the route (what it names
/// need not exist: a handler's own 404 is not the router's).
fn fill(path: &str) -> String {
    path.replace("{key}", "6f1c2a55-3a70-4bb5-9a57-0d5c3e7e2b11")
        .replace("{name}", "payments")
        .replace("{action}", "rotate")
        .replace("{tenant}", "acme")
        .replace("{id}", "7d0b7a3c-1f53-4a55-8c0e-6e3a6f0f2a10")
        .replace("{track_id}", "row-1")
}

fn operations(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            found.push((method.clone(), path.clone()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_its_route_and_the_router_has_no_other() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let (status, media, document) = get_json(&format!("{}/v1/openapi.json", server.api)).await;
    assert_eq!(status, 200, "served without a token");
    assert_eq!(media.as_deref(), Some("application/json"));
    assert_eq!(document["openapi"], "3.0.3");
    let operations = operations(&document);
    assert_eq!(operations.len(), 57, "{operations:?}");

    let http = reqwest::Client::new();
    let reached = |status: u16, body: &Value| {
        // The fallback's answer, and the one for a method the path does not take.
        !(status == 404 && body["error"]["message"] == "no such endpoint") && status != 405
    };
    for (method, path) in &operations {
        let url = format!("{}{}", server.api, fill(path));
        let request = match method.as_str() {
            "get" => http.get(&url),
            "post" => http.post(&url).body("{}"),
            other => panic!("{other} {path}: a method the test does not know"),
        };
        let response = request.bearer_auth(&token).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(reached(status, &body), "{method} {path}: {status} {body}");
    }
    // The check itself tells a missing route apart: a path and a method nobody routes.
    let response = http
        .get(format!("{}/v1/kms/nothing-here", server.api))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(!reached(status, &response.json().await.unwrap()));
    let response = http
        .get(format!("{}/v1/kms/wrap", server.api))
        .send()
        .await
        .unwrap();
    assert!(!reached(response.status().as_u16(), &Value::Null));

    // The operations port's document, on its own port.
    let (status, _, ops) = get_json(&format!("{}/openapi.json", server.ops)).await;
    assert_eq!(status, 200);
    let mut ops_paths: Vec<String> = operations_of(&ops);
    ops_paths.sort();
    assert_eq!(
        ops_paths,
        [
            "/config",
            "/custody",
            "/healthz",
            "/metrics",
            "/openapi.json",
            "/readyz"
        ]
    );
}

fn operations_of(document: &Value) -> Vec<String> {
    operations(document).into_iter().map(|(_, p)| p).collect()
}

fn schemathesis() -> Option<PathBuf> {
    let venv = std::env::var("COFFER_SCHEMATHESIS_VENV")
        .unwrap_or_else(|_| "/var/tmp/coffer-schemathesis-venv".to_owned());
    let st = PathBuf::from(venv).join("bin/st");
    if st.exists() {
        return Some(st);
    }
    assert!(
        std::env::var("COFFER_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
        "COFFER_REQUIRE_SCHEMATHESIS=1 and no schemathesis at {} (.ci/run installs it)",
        st.display()
    );
    eprintln!("skipped: no schemathesis at {}", st.display());
    None
}

/// Every check but `positive_data_acceptance`: no 5xx; every answer's status, media
/// type, headers and body as the document says; requests the document calls invalid
/// refused with a 4xx; a missing required header, an undocumented method (405 with
/// `Allow`) and a missing token (401) each refused. Left out: a request valid by the
/// document may still be refused by the domain (an unknown spec name, a key id that
/// does not exist), which that check counts as a failure.
const EXCLUDED: &str = "positive_data_acceptance";

/// One schemathesis run over the operations `include` matches, as `token`'s holder,
/// with the path parameters `config` fixes (so requests reach existing objects). A
/// longer run by hand: `COFFER_SCHEMATHESIS_EXAMPLES` (per operation, default 20).
fn run_schemathesis(st: &PathBuf, config: &str, document: &str, token: &str, include: &str) {
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi/hooks.py");
    let examples = std::env::var("COFFER_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "20".into());
    let started = Instant::now();
    // Its cache (`.schemathesis/`) goes to a temporary directory, not the source tree.
    let out = Command::new(st)
        .current_dir(super::harness::temp_dir())
        .args(["--config-file", config, "run", document, "--checks", "all"])
        .args(["--exclude-checks", EXCLUDED])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--include-path-regex", include])
        .args([
            "--max-examples",
            &examples,
            "--phases",
            "examples,coverage,fuzzing",
        ])
        .args([
            "--seed",
            "1309",
            "--workers",
            "1",
            "--request-timeout",
            "20",
        ])
        .args(["--suppress-health-check", "all", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", hooks)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis {include} ({:.0?}):\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(out.status.success(), "schemathesis found failures (above)");
    // It generated and sent cases, rather than finding nothing to do.
    assert!(stdout.contains(" generated, "), "{stdout}");
    assert!(!stdout.contains(" 0 generated"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(st) = schemathesis() else {
        return;
    };
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    // Objects for the path parameters: a key with an alias, a tracked data key and a
    // rotation, so generated requests reach them rather than only 404s.
    let (status, key) = server
        .post_raw(
            "/v1/kms/keys",
            &token,
            r#"{"spec": "aes-256", "alias": "alias/payments"}"#,
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key_id = key["key_id"].as_str().unwrap().to_owned();
    let body = format!(r#"{{"key_id": "{key_id}", "track_id": "row-1"}}"#);
    let (status, answer) = server.post_raw("/v1/kms/datakey", &token, body).await;
    assert_eq!(status, 200, "{answer}");
    let body = format!(r#"{{"key_id": "{key_id}", "until": "stage"}}"#);
    let (status, rotation) = server.post_raw("/v1/kms/rotations", &token, body).await;
    assert_eq!(status, 202, "{rotation}");
    let config = super::harness::temp_dir().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.key\" = \"{key_id}\"\n\"path.name\" = \"payments\"\n\
             \"path.id\" = \"{}\"\n\"path.track_id\" = \"row-1\"\n\"path.tenant\" = \"acme\"\n",
            rotation["rotation_id"].as_str().unwrap()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let document = format!("{}/v1/openapi.json", server.api);
    let started = Instant::now();
    // The tenant's side of the API (keys, crypto, rotations, the AWS front, sys), with
    // a tenant token; then the administration and audit routes with the admin token.
    let tenant_side = "^/(v1/(kms|jwks|sys|openapi)|$)";
    run_schemathesis(&st, &config, &document, &token, tenant_side);
    let admin_side = "^/v1/(admin|audit)/";
    run_schemathesis(&st, &config, &document, &server.admin_token, admin_side);
    let ops = format!("{}/openapi.json", server.ops);
    run_schemathesis(&st, &config, &ops, "none", ".");
    eprintln!("schemathesis, all runs: {:.0?}", started.elapsed());
}
