//! Seed 002's operating envelope: in-flight caps per class shed before any work (503
//! when the server is saturated, 429 when a tenant is over its share), each active
//! tenant keeps its floor, and refusals do not wait for an audit commit.
//!
//! A request is held in flight deterministically by sending its headers and only part
//! of its body: its slot is taken before the body is read, and kept until it is.

use std::time::{Duration, Instant};

use coffer_api::B64;
use coffer_api::admin::MintTokenRequest;
use coffer_api::crypto::SignRequest;
use coffer_server::admission::Class;
use sqlx::{AnyConnection, Connection, Executor};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::api::{create, wrap_request};
use super::harness::{Db, TestServer};
use coffer_server::startup::InitMethod;

/// A request to `path` whose body never completes: it holds a slot of its class until
/// the connection is dropped.
async fn hold(server: &TestServer, path: &str, token: &str) -> TcpStream {
    let addr = server.api.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

async fn wait_inflight(server: &TestServer, class: Class, n: usize) {
    for _ in 0..1000 {
        if server.state.admission.inflight(class) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "{} requests of {class:?} in flight, expected {n}",
        server.state.admission.inflight(class)
    );
}

fn sign_body(key: &str) -> String {
    serde_json::to_string(&SignRequest {
        key_id: key.to_owned(),
        message: Some(B64(b"release".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
        attestation: None,
    })
    .unwrap()
}

/// Status, `Retry-After`, error code of a raw POST.
async fn post(server: &TestServer, path: &str, token: &str, body: String) -> (u16, String, String) {
    coffer_client::install_tls_provider();
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.api))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    let code = json["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, retry, code)
}

/// The value of the series `name{labels}` (0 when absent).
async fn metric(server: &TestServer, series: &str) -> f64 {
    let text = server.anonymous().metrics(&server.ops).await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_full_class_sheds_with_503_and_retry_after_before_any_work() {
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_MAX_INFLIGHT_SIGN", "1")],
    )
    .await
    .unwrap();
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "hybrid-ed25519-ml-dsa-65", "release").await;
    let other = server.tenant_token("globex").await;
    let other_key = create(&server.client(&other), "ed25519", "g").await;

    let held = hold(&server, "/v1/kms/sign", &token).await;
    wait_inflight(&server, Class::Sign, 1).await;
    let jobs = server.state.heavy.jobs_run();
    let log = server.state.audit.clone().unwrap();
    log.settle().await;
    let entries = log.size();
    let shed_before = metric(&server, "kms_reject_total{reason=\"backpressure\"}").await;

    for (who, key) in [(&token, &key), (&other, &other_key)] {
        let (status, retry, code) = post(&server, "/v1/kms/sign", who, sign_body(key)).await;
        assert_eq!(
            (status, retry.as_str(), code.as_str()),
            (503, "1", "unavailable")
        );
    }
    // Nothing was signed, nothing recorded: the requests were shed before their key
    // was even loaded.
    assert_eq!(server.state.heavy.jobs_run(), jobs);
    log.settle().await;
    assert_eq!(log.size(), entries);
    assert_eq!(
        metric(&server, "kms_reject_total{reason=\"backpressure\"}").await,
        shed_before + 2.0
    );
    assert!(metric(&server, "rejected_total{reason=\"backpressure\"}").await >= 2.0);
    assert_eq!(metric(&server, "kms_inflight{class=\"sign\"}").await, 1.0);
    assert_eq!(
        metric(&server, "kms_inflight_max{class=\"sign\"}").await,
        1.0
    );

    // Other classes have their own slots.
    let (status, _, _) = post(
        &server,
        "/v1/kms/verify",
        &token,
        serde_json::json!({"key_id": key, "message": "AA==", "signature": "AA=="}).to_string(),
    )
    .await;
    assert_eq!(status, 200);

    // The held request ends; its slot is free again.
    drop(held);
    wait_inflight(&server, Class::Sign, 0).await;
    let (status, _, _) = post(&server, "/v1/kms/sign", &token, sign_body(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(server.state.heavy.jobs_run(), jobs + 1);
}

#[tokio::test]
async fn a_tenant_over_its_share_gets_429_while_a_quiet_tenant_is_served() {
    // 4 sign slots, a floor of one each.
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[
            ("COFFER_MAX_INFLIGHT_SIGN", "4"),
            ("COFFER_TENANT_SHARE_MIN", "0.25"),
        ],
    )
    .await
    .unwrap();
    let noisy = server.tenant_token("noisy").await;
    let quiet = server.tenant_token("quiet").await;
    let noisy_key = create(&server.client(&noisy), "ed25519", "n").await;
    let quiet_key = create(&server.client(&quiet), "ed25519", "q").await;

    let mut held = Vec::new();
    for n in 1..=3 {
        held.push(hold(&server, "/v1/kms/sign", &noisy).await);
        wait_inflight(&server, Class::Sign, n).await;
    }
    let before = metric(&server, "kms_reject_total{reason=\"tenant_share\"}").await;
    // The quiet tenant signs (and so is active); the noisy one may not take the last
    // slot, which is the quiet tenant's floor.
    let (status, _, _) = post(&server, "/v1/kms/sign", &quiet, sign_body(&quiet_key)).await;
    assert_eq!(status, 200);
    let (status, retry, code) = post(&server, "/v1/kms/sign", &noisy, sign_body(&noisy_key)).await;
    assert_eq!(
        (status, retry.as_str(), code.as_str()),
        (429, "1", "too_many_requests")
    );
    assert_eq!(
        metric(&server, "kms_reject_total{reason=\"tenant_share\"}").await,
        before + 1.0
    );
    let (status, _, _) = post(&server, "/v1/kms/sign", &quiet, sign_body(&quiet_key)).await;
    assert_eq!(status, 200);
    drop(held);
    wait_inflight(&server, Class::Sign, 0).await;
    let (status, _, _) = post(&server, "/v1/kms/sign", &noisy, sign_body(&noisy_key)).await;
    assert_eq!(status, 200);
}

/// On PostgreSQL, where an operation's entry commits in the audit table and a lock on
/// its head row holds every commit back (on SQLite it goes to the audit journal, which
/// nothing outside the server can hold).
#[tokio::test]
async fn a_refusal_does_not_wait_for_its_audit_commit_but_is_recorded() {
    let Some(server) = TestServer::start_with(Db::Postgres, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let key = create(&server.client(&token), "aes-256", "data").await;
    let sign_only = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            operations: vec!["sign".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let wrap = serde_json::to_string(&wrap_request(&key, b"secret", &[])).unwrap();

    // Another connection locks the audit head: no audit entry can commit.
    sqlx::any::install_default_drivers();
    let mut blocker = AnyConnection::connect(&server.database_url).await.unwrap();
    blocker.execute("BEGIN").await.unwrap();
    blocker
        .execute("LOCK TABLE audit_head IN EXCLUSIVE MODE")
        .await
        .unwrap();

    let wrapping = tokio::spawn({
        let (api, token, wrap) = (server.api.clone(), token.clone(), wrap.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{api}/v1/kms/wrap"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(wrap)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let started = Instant::now();
    let (forbidden, _, code) = post(&server, "/v1/kms/wrap", &sign_only, wrap.clone()).await;
    let refusal_took = started.elapsed();
    assert_eq!((forbidden, code.as_str()), (403, "forbidden"));
    let (missing, _, _) = post(
        &server,
        "/v1/kms/wrap",
        &token,
        serde_json::to_string(&wrap_request("alias/none", b"x", &[])).unwrap(),
    )
    .await;
    assert_eq!(missing, 404);
    // So does a refused authentication (a 401 is audited under the refusal limit).
    let started = Instant::now();
    let (unauthorized, _, _) = post(&server, "/v1/kms/wrap", "not-a-token", wrap.clone()).await;
    let unauthorized_took = started.elapsed();
    assert_eq!(unauthorized, 401);
    assert!(
        unauthorized_took < Duration::from_secs(1),
        "{unauthorized_took:?}"
    );
    // And a batch whose items are all refused (nothing in it waits for a commit).
    let started = Instant::now();
    let batch = serde_json::json!({ "items": [
        wrap_request("alias/none", b"x", &[]),
        wrap_request("alias/none-either", b"x", &[]),
    ]});
    let (batch_status, _, _) = post(&server, "/v1/kms/wrap", &token, batch.to_string()).await;
    assert_eq!(batch_status, 200);
    let batch_took = started.elapsed();
    assert!(batch_took < Duration::from_secs(1), "{batch_took:?}");
    // The refusals answered while the wrap still waits for its commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !wrapping.is_finished(),
        "the wrap did not wait for its commit"
    );
    assert!(refusal_took < Duration::from_secs(1), "{refusal_took:?}");

    blocker.execute("ROLLBACK").await.unwrap();
    blocker.close().await.unwrap();
    assert_eq!(wrapping.await.unwrap(), 200);

    // Both refusals are in the log.
    let log = server.state.audit.clone().unwrap();
    let lines = log.export(0, 1000).await.unwrap();
    let outcomes: Vec<String> = lines
        .lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let entry = &v["entry"];
            (entry["op"] == "wrap").then(|| entry["outcome"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    for outcome in ["forbidden", "not_found", "ok"] {
        assert!(
            outcomes.iter().any(|o| o == outcome),
            "{outcome}: {outcomes:?}"
        );
    }
    assert!(
        lines
            .lines()
            .any(|line| line.contains("\"op\":\"authenticate\"")
                && line.contains("\"outcome\":\"unauthorized\"")),
        "the 401 is in the log"
    );

    // Figures (printed; PERFORMANCE.md): medians of 50 sequential 403s and 50 wraps.
    let mut medians = Vec::new();
    for who in [&sign_only, &token] {
        let mut took = Vec::new();
        for _ in 0..50 {
            let started = Instant::now();
            post(&server, "/v1/kms/wrap", who, wrap.clone()).await;
            took.push(started.elapsed());
        }
        took.sort();
        medians.push(took[25]);
    }
    eprintln!(
        "refusal cost: median 403 {:?}, median wrap {:?}",
        medians[0], medians[1]
    );
}

/// `coffer serve` logs `service=coffer ready=1` once it serves (seed 002: "Logs show
/// service=… ready=1"), and `/readyz` agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coffer_serve_logs_ready_once_it_serves() {
    let dir = super::harness::temp_dir();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (api, ops) = (port(), port());
    let coffer = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
        command
            .args(args)
            .env_clear()
            .env("COFFER_DATA_DIR", &dir)
            .env("COFFER_API_ADDR", format!("127.0.0.1:{api}"))
            .env("COFFER_METRICS_ADDR", format!("127.0.0.1:{ops}"));
        command
    };
    let init = coffer(&["init"]).output().unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = coffer(&["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("service=coffer ready=1") {
            break text;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("no ready line: {text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ops_url = format!("http://127.0.0.1:{ops}");
    let probe = coffer_client::Client::new(&ops_url, None).unwrap();
    let ready = probe.readyz(&ops_url).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(matches!(ready, Ok(true)), "{ready:?}");
    assert_eq!(seen.matches("service=coffer ready=1").count(), 1, "{seen}");
    assert!(!seen.contains("ready=0"), "{seen}");
}
