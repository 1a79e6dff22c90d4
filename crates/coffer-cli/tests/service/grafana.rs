//! The Grafana dashboard (`deploy/grafana/coffer.json`) cannot drift from the server:
//! every metric its queries name (panels and template variables) is one a running
//! server exports, scraped from `/metrics` after traffic that touches every panel —
//! sheds, refusals, a failed unwrap, verify cache hits, misses and stale verdicts, a
//! key with an expiry — and it covers the signals of the alert rules.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use coffer_api::B64;
use coffer_api::crypto::{SignRequest, UnwrapRequest, VerifyRequest};
use coffer_api::keys::CreateKeyRequest;
use coffer_client::Client;
use coffer_server::admission::Class;
use coffer_server::startup::InitMethod;
use tokio::io::AsyncWriteExt;

use super::api::wrap_request;
use super::harness::{Db, TestServer};

/// PromQL words that are not metric names.
const KEYWORDS: [&str; 9] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
];
const SET_OPERATORS: [&str; 2] = ["or", "unless"];

/// Removes every `open … close` span (label matchers, range selectors).
fn without_spans(text: &str, open: char, close: char) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for c in text.chars() {
        if c == open {
            depth += 1;
        } else if c == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(c);
        }
    }
    out
}

/// The metric names a PromQL expression selects (a Grafana `label_values(metric,
/// label)` query: its metric).
fn metric_names(expr: &str) -> BTreeSet<String> {
    if let Some(args) = expr
        .trim()
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
    {
        let metric = args.split(',').next().unwrap_or_default();
        return metric_names(metric);
    }
    let text = without_spans(&without_spans(expr, '{', '}'), '[', ']');
    // Grouping clauses: `by (op, le)`, `on ()`, …: their labels are not metrics.
    let mut cleaned = String::new();
    let mut rest = text.as_str();
    'outer: while !rest.is_empty() {
        for keyword in [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ] {
            if let Some(after) = rest.strip_prefix(keyword) {
                let boundary = cleaned
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                let trimmed = after.trim_start();
                if boundary && trimmed.starts_with('(') {
                    let close = trimmed.find(')').map_or(trimmed.len(), |i| i + 1);
                    cleaned.push(' ');
                    rest = &trimmed[close..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        cleaned.push(c);
        rest = &rest[c.len_utf8()..];
    }
    let mut names = BTreeSet::new();
    let chars: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '$' {
            // A number (1e9, 0.95) or a Grafana variable.
            while i < chars.len() && (chars[i].is_alphanumeric() || "._$".contains(chars[i])) {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let is_call = next == Some(&'(');
            if !is_call
                && !KEYWORDS.contains(&word.as_str())
                && !SET_OPERATORS.contains(&word.as_str())
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Every query of the dashboard: panel targets and template variables.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut queries = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            assert!(!expr.trim().is_empty(), "empty query in {}", panel["title"]);
            queries.push(expr.to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] == "query" {
            queries.push(
                variable["query"]["query"]
                    .as_str()
                    .expect("query")
                    .to_owned(),
            );
        }
    }
    queries
}

/// The metric names in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn promql_metric_names_are_read_without_functions_labels_or_keywords() {
    let expr = r#"histogram_quantile(0.95, sum by (op, le) (rate(kms_latency_seconds_bucket{tenant=~"$tenant",op!="x"}[$__rate_interval]))) / on() group_left 2 * max(verify_cache_ttl_ms) or bottomk(20, min without (key) (a:b_total offset 5m) / 86400) > 1e9"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        [
            "a:b_total",
            "kms_latency_seconds_bucket",
            "verify_cache_ttl_ms"
        ]
    );
    assert_eq!(
        metric_names("label_values(kms_ops_total, instance)"),
        BTreeSet::from(["kms_ops_total".to_owned()])
    );
}

async fn hold_wrap_slot(server: &TestServer, token: &str) -> tokio::net::TcpStream {
    let address = server.api.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/kms/wrap HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 4096\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.state.admission.inflight(Class::Wrap) == 0 {
        assert!(Instant::now() < deadline, "the slot was never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stream
}

async fn sign_and_verify(client: &Client, key: &str, times: usize) {
    let message = B64(b"release-1.2.3".to_vec());
    let signature = client
        .sign(&SignRequest {
            key_id: key.to_owned(),
            message: Some(message.clone()),
            digest: None,
            mu: None,
            algorithm: None,
            attestation: None,
        })
        .await
        .unwrap()
        .signature;
    for _ in 0..times {
        let answer = client
            .verify(&VerifyRequest {
                key_id: key.to_owned(),
                key_version: None,
                message: Some(message.clone()),
                digest: None,
                mu: None,
                signature: signature.clone(),
                algorithm: None,
            })
            .await
            .unwrap();
        assert!(answer.valid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported_by_a_running_server() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/coffer.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let used: BTreeSet<String> = dashboard_queries(&dashboard)
        .iter()
        .flat_map(|q| metric_names(q))
        .collect();
    // The signals of deploy/prometheus/alerts.yml the dashboard is for.
    for signal in [
        "rejected_total",
        "kms_reject_total",
        "kms_inflight",
        "kms_ops_total",
        "kms_latency_seconds_bucket",
        "verify_cache_hit_total",
        "verify_cache_stale_max_ms",
        "verify_cache_ttl_ms",
        "kms_key_version_expiry_seconds",
        "kms_sealed",
    ] {
        assert!(used.contains(signal), "no panel shows {signal}");
    }

    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_MAX_INFLIGHT_WRAP", "1")],
    )
    .await
    .unwrap();
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let create = |spec: &str, validity: Option<&str>| CreateKeyRequest {
        spec: spec.into(),
        validity: validity.map(Into::into),
        ..Default::default()
    };
    let aes = acme
        .create_key(&create("aes-256", None))
        .await
        .unwrap()
        .key_id;
    let signer = acme
        .create_key(&create("ed25519", Some("365d")))
        .await
        .unwrap()
        .key_id;
    // The expiry gauges are set by the scheduler pass, which runs as the server starts.
    let server = server.restart().await;
    let acme = server.client(&token);

    // A wrap and its unwrap, then an unwrap of a damaged ciphertext (refused).
    let sealed = acme
        .wrap(&wrap_request(&aes, b"data key", &[]))
        .await
        .unwrap();
    let mut damaged = sealed.ciphertext.0.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    for ciphertext in [sealed.ciphertext.0.clone(), damaged] {
        let _ = acme
            .unwrap(&UnwrapRequest {
                ciphertext: B64(ciphertext),
                ..Default::default()
            })
            .await;
    }
    // Verify cache: a miss, then hits; a disable and enable makes the verdict stale.
    sign_and_verify(&acme, &signer, 3).await;
    acme.disable_key(&signer).await.unwrap();
    acme.enable_key(&signer).await.unwrap();
    sign_and_verify(&acme, &signer, 2).await;
    // A shed: the one wrap slot held, the next wrap answered 503 backpressure.
    let held = hold_wrap_slot(&server, &token).await;
    assert!(acme.wrap(&wrap_request(&aes, b"shed", &[])).await.is_err());
    drop(held);

    let deadline = Instant::now() + Duration::from_secs(15);
    let missing = loop {
        let text = server.anonymous().metrics(&server.ops).await.unwrap();
        let names = exported(&text);
        let missing: Vec<&String> = used.iter().filter(|n| !names.contains(*n)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        // kms_ready comes from the readiness check, once a second.
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the server does not export: {missing:?}"
    );
}
