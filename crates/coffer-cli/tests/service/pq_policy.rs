//! Per-tenant PQ policy (seed 002 §6.4): an operator changes one tenant's hybrid verify
//! mode at runtime (`coffer tenant set`), audited, persisted, without a restart and
//! without touching other tenants; `coffer tenant show` prints each setting and its
//! source; a signature refused by the mode alone counts as a `pq_policy` rejection.

use coffer_api::B64;
use coffer_api::admin::SetPqPolicyRequest;
use coffer_api::crypto::{SignRequest, VerifyRequest};
use coffer_client::{Client, ClientError};

use super::api::create;
use coffer_server::startup::InitMethod;

use super::harness::{Db, TestServer};

/// A hybrid signature over `message`, then two copies with one half broken: the
/// ML-DSA half (first byte) and the Ed25519 half (last byte).
async fn signatures(client: &Client, key: &str, message: &[u8]) -> (B64, B64, B64) {
    let good = client
        .sign(&SignRequest {
            key_id: key.to_owned(),
            message: Some(B64(message.to_vec())),
            digest: None,
            mu: None,
            algorithm: None,
            attestation: None,
        })
        .await
        .unwrap()
        .signature;
    let mut pq_broken = good.0.clone();
    pq_broken[0] ^= 1;
    let mut classical_broken = good.0.clone();
    *classical_broken.last_mut().unwrap() ^= 1;
    (good, B64(pq_broken), B64(classical_broken))
}

async fn valid(client: &Client, key: &str, message: &[u8], signature: &B64) -> bool {
    client
        .verify(&VerifyRequest {
            key_id: key.to_owned(),
            key_version: None,
            message: Some(B64(message.to_vec())),
            digest: None,
            mu: None,
            signature: signature.clone(),
            algorithm: None,
        })
        .await
        .unwrap()
        .valid
}

pub(super) async fn pq_rejects(server: &TestServer) -> f64 {
    let text = server.anonymous().metrics(&server.ops).await.unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("kms_reject_total{reason=\"pq_policy\"}")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// The value and source `coffer tenant show` prints for `setting`.
pub(super) fn shown(server: &TestServer, tenant: &str, setting: &str) -> (String, String) {
    let (code, out, err) = server.cli(&server.admin_token, &["tenant", "show", tenant]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(setting))
        .unwrap_or_else(|| panic!("{setting} not shown: {out}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[1].to_owned(), fields[2].to_owned())
}

// Multi-threaded: the `coffer` binary runs as a blocking child process while this
// runtime serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_verify_mode_changes_at_runtime_is_audited_and_survives_a_restart() {
    runtime_policy(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_verify_mode_on_postgres() {
    runtime_policy(Db::Postgres).await;
}

async fn runtime_policy(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        eprintln!("skipped: COFFER_TEST_DATABASE_URL is not set");
        return;
    };
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let key = create(&acme, "hybrid-ed25519-ml-dsa-65", "release").await;
    let other = create(&globex, "hybrid-ed25519-ml-dsa-65", "release").await;
    let (good, pq_broken, classical_broken) = signatures(&acme, &key, b"v1").await;
    let (_, _, other_broken) = signatures(&globex, &other, b"v1").await;

    // The server's default, `and`: either broken half refuses, and the one `or` would
    // have accepted counts as a PQ-policy rejection.
    assert_eq!(
        shown(&server, "acme", "pq_verify_mode"),
        ("and".into(), "server".into())
    );
    let before = pq_rejects(&server).await;
    assert!(valid(&acme, &key, b"v1", &good).await);
    assert!(!valid(&acme, &key, b"v1", &classical_broken).await);
    assert!(pq_rejects(&server).await >= before + 1.0);

    // `or` for acme alone, at once.
    let (code, out, err) = server.cli(
        &server.admin_token,
        &["tenant", "set", "acme", "--pq-verify-mode", "or"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pq_verify_mode"), "{out}");
    assert_eq!(
        shown(&server, "acme", "pq_verify_mode"),
        ("or".into(), "tenant".into())
    );
    assert_eq!(
        shown(&server, "acme", "max_inflight_sign"),
        ("512".into(), "server".into())
    );
    assert!(valid(&acme, &key, b"v1", &classical_broken).await);
    assert!(valid(&acme, &key, b"v1", &pq_broken).await);
    assert!(!valid(&globex, &other, b"v1", &other_broken).await);

    // `pq_only`: only the ML-DSA half counts.
    let admin = server.admin();
    admin
        .set_pq_policy(&SetPqPolicyRequest {
            tenant: "acme".into(),
            pq_verify_mode: Some(Some("pq_only".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(valid(&acme, &key, b"v1", &classical_broken).await);
    assert!(!valid(&acme, &key, b"v1", &pq_broken).await);

    // Refusals change nothing: a tenant token, a bad mode, an unknown tenant.
    for (client, tenant, mode, status) in [
        (&acme, "acme", Some("or"), 403),
        (&admin, "acme", Some("both"), 400),
        (&admin, "nobody", Some("or"), 404),
    ] {
        let refused = client
            .set_pq_policy(&SetPqPolicyRequest {
                tenant: tenant.into(),
                pq_verify_mode: Some(mode.map(str::to_owned)),
                ..Default::default()
            })
            .await;
        match refused {
            Err(ClientError::Api { status: got, .. }) => assert_eq!(got, status),
            other => panic!("expected {status}, got {other:?}"),
        }
    }
    assert_eq!(
        shown(&server, "acme", "pq_verify_mode"),
        ("pq_only".into(), "tenant".into())
    );

    // Kept in the store: a restarted server applies it from the start.
    let server = server.restart().await;
    let acme = server.client(&acme_token(&server).await);
    assert!(!valid(&acme, &key, b"v1", &pq_broken).await);
    assert_eq!(
        shown(&server, "acme", "pq_verify_mode"),
        ("pq_only".into(), "tenant".into())
    );

    // Back to the server's default.
    let (code, _, err) = server.cli(
        &server.admin_token,
        &["tenant", "set", "acme", "--pq-verify-mode", "default"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        shown(&server, "acme", "pq_verify_mode"),
        ("and".into(), "server".into())
    );
    assert!(!valid(&acme, &key, b"v1", &classical_broken).await);

    // Another replica on the same database follows at its next token refresh.
    if db == Db::Postgres {
        let replica = server.another_replica().await;
        let on_replica = replica.admin();
        server
            .admin()
            .set_pq_policy(&SetPqPolicyRequest {
                tenant: "acme".into(),
                pq_verify_mode: Some(Some("or".into())),
                ..Default::default()
            })
            .await
            .unwrap();
        let changed = std::time::Instant::now();
        loop {
            let view = on_replica.show_tenant("acme").await.unwrap();
            let mode = &view.settings[0];
            if (mode.value.as_str(), mode.source.as_str()) == ("or", "tenant") {
                break;
            }
            assert!(
                changed.elapsed() < std::time::Duration::from_secs(15),
                "the replica still has {mode:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        eprintln!("replica followed after {:?}", changed.elapsed());
        server
            .admin()
            .set_pq_policy(&SetPqPolicyRequest {
                tenant: "acme".into(),
                pq_verify_mode: Some(None),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    // Each change is in the audit log with what it set.
    let log = server.state.audit.clone().unwrap();
    let lines = log.export(0, 10_000).await.unwrap();
    let details: Vec<String> = lines
        .lines()
        .filter_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let entry = &v["entry"];
            (entry["op"] == "tenant.pq_policy" && entry["outcome"] == "ok")
                .then(|| entry["detail"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let mut expected = vec![
        "pq_verify_mode=or",
        "pq_verify_mode=pq_only",
        "pq_verify_mode=server default",
    ];
    if db == Db::Postgres {
        expected.extend(["pq_verify_mode=or", "pq_verify_mode=server default"]);
    }
    assert_eq!(details, expected);
}

/// A fresh token for acme on a restarted server (tokens survive; this mints another
/// so the test needs no state from before the restart).
async fn acme_token(server: &TestServer) -> String {
    server
        .admin()
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
}
