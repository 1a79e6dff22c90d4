//! Seed 002's PQ rollout per tenant: `pq_produce_hybrid` (a hybrid key signs with the
//! composite, or with its classical half alone) and `pq_rollout_percent` (which keys do,
//! by a stable hash of tenant and key), server defaults that an operator overrides per
//! tenant at runtime (`coffer tenant set`), audited, without a restart. Each signature
//! produced verifies under the verify mode that accepts its form; the one the mode
//! refuses counts as a `pq_policy` rejection.

use coffer_api::B64;
use coffer_api::admin::SetPqPolicyRequest;
use coffer_api::crypto::{SignRequest, SignResponse, VerifyRequest};
use coffer_client::{Client, ClientError};
use coffer_core::{KeyId, TenantId};
use coffer_crypto::{PqVerifyMode, PublicKey, VerifyingKey};
use coffer_server::startup::InitMethod;

use super::api::create;
use super::harness::{Db, TestServer};
use super::pq_policy::{pq_rejects, shown};

const HYBRID: &str = "hybrid-ed25519-ml-dsa-65";
const COMPOSITE: &str = "ml-dsa-65-ed25519-sha512";
/// The composite's length: ML-DSA-65 (3309) and Ed25519 (64).
const COMPOSITE_LEN: usize = 3309 + 64;

async fn sign(
    client: &Client,
    key: &str,
    algorithm: Option<&str>,
) -> Result<SignResponse, ClientError> {
    client
        .sign(&SignRequest {
            key_id: key.to_owned(),
            message: Some(B64(b"release 7".to_vec())),
            digest: None,
            mu: None,
            algorithm: algorithm.map(str::to_owned),
            attestation: None,
        })
        .await
}

async fn valid(client: &Client, key: &str, signature: &B64) -> bool {
    client
        .verify(&VerifyRequest {
            key_id: key.to_owned(),
            key_version: None,
            message: Some(B64(b"release 7".to_vec())),
            digest: None,
            mu: None,
            signature: signature.clone(),
            algorithm: None,
        })
        .await
        .unwrap()
        .valid
}

/// The composite public key's Ed25519 part, as a verifier that is not PQ-ready has it.
async fn classical_public_key(client: &Client, key: &str) -> VerifyingKey {
    let view = client.show_key(key).await.unwrap();
    let pem = view.versions[0].public_key_pem.clone().unwrap();
    let PublicKey::Composite { ed25519, .. } = PublicKey::from_pem(&pem).unwrap() else {
        panic!("not a composite key")
    };
    VerifyingKey::new(PublicKey::Ed25519(ed25519)).unwrap()
}

async fn set(server: &TestServer, request: SetPqPolicyRequest) {
    server.admin().set_pq_policy(&request).await.unwrap();
}

fn request(tenant: &str) -> SetPqPolicyRequest {
    SetPqPolicyRequest {
        tenant: tenant.into(),
        ..Default::default()
    }
}

async fn tenant_id(server: &TestServer, name: &str) -> TenantId {
    let view = server.admin().show_tenant(name).await.unwrap();
    view.tenant.tenant_id.parse().unwrap()
}

// Multi-threaded: the `coffer` binary runs as a blocking child process while this
// runtime serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_production_and_rollout_change_per_tenant_at_runtime() {
    rollout(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_production_and_rollout_on_postgres_reach_another_replica() {
    rollout(Db::Postgres).await;
}

async fn rollout(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        eprintln!("skipped: COFFER_TEST_DATABASE_URL is not set");
        return;
    };
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let key = create(&acme, HYBRID, "release").await;
    let other = create(&globex, HYBRID, "release").await;

    // The server's defaults: the composite, every key.
    assert_eq!(
        shown(&server, "acme", "pq_produce_hybrid"),
        ("true".into(), "server".into())
    );
    assert_eq!(
        shown(&server, "acme", "pq_rollout_percent"),
        ("100".into(), "server".into())
    );
    let composite = sign(&acme, &key, None).await.unwrap();
    assert_eq!(composite.algorithm, COMPOSITE);
    assert_eq!(composite.signature.0.len(), COMPOSITE_LEN);
    assert!(valid(&acme, &key, &composite.signature).await);

    // acme's hybrid keys sign with the classical half alone, at once; globex's do not.
    let (code, out, err) = server.cli(
        &server.admin_token,
        &["tenant", "set", "acme", "--pq-produce-hybrid", "false"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pq_produce_hybrid"), "{out}");
    assert_eq!(
        shown(&server, "acme", "pq_produce_hybrid"),
        ("false".into(), "tenant".into())
    );
    assert_eq!(
        shown(&server, "acme", "pq_verify_mode"),
        ("and".into(), "server".into())
    );
    let classical = sign(&acme, &key, None).await.unwrap();
    assert_eq!(classical.algorithm, "ed25519");
    assert_eq!(classical.signature.0.len(), 64);
    assert_eq!(
        sign(&globex, &other, None).await.unwrap().algorithm,
        COMPOSITE
    );
    // A verifier that is not PQ-ready checks it with the key's Ed25519 part.
    classical_public_key(&acme, &key)
        .await
        .verify(b"release 7", &classical.signature.0, PqVerifyMode::And)
        .unwrap();

    // `and` (the default) refuses it: a PQ-policy rejection, not a forgery. The
    // composite made before still verifies.
    let before = pq_rejects(&server).await;
    assert!(!valid(&acme, &key, &classical.signature).await);
    assert!(pq_rejects(&server).await >= before + 1.0);
    assert!(valid(&acme, &key, &composite.signature).await);

    // A request naming the form the policy does not produce is refused, nothing signed.
    let before = pq_rejects(&server).await;
    match sign(&acme, &key, Some(COMPOSITE)).await {
        Err(ClientError::Api {
            status, message, ..
        }) => {
            assert_eq!(status, 400);
            assert!(message.contains("PQ policy"), "{message}");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    assert!(pq_rejects(&server).await >= before + 1.0);
    assert_eq!(
        sign(&acme, &key, Some("ed25519")).await.unwrap().algorithm,
        "ed25519"
    );

    // `or` accepts the classical half (and only the genuine one); `pq_only` refuses it.
    let mut or = request("acme");
    or.pq_verify_mode = Some(Some("or".into()));
    set(&server, or).await;
    assert!(valid(&acme, &key, &classical.signature).await);
    let mut forged = classical.signature.clone();
    forged.0[5] ^= 1;
    assert!(!valid(&acme, &key, &forged).await);
    let mut pq_only = request("acme");
    pq_only.pq_verify_mode = Some(Some("pq_only".into()));
    set(&server, pq_only).await;
    let before = pq_rejects(&server).await;
    assert!(!valid(&acme, &key, &classical.signature).await);
    assert!(pq_rejects(&server).await >= before + 1.0);
    assert!(valid(&acme, &key, &composite.signature).await);

    // Half of acme's keys in the rollout: each key signs as its bucket says, the same
    // way every time, and its signature verifies under `and` exactly when composite.
    let mut half = request("acme");
    half.pq_produce_hybrid = Some(Some(true));
    half.pq_rollout_percent = Some(Some(50));
    half.pq_verify_mode = Some(None);
    set(&server, half).await;
    assert_eq!(
        shown(&server, "acme", "pq_rollout_percent"),
        ("50".into(), "tenant".into())
    );
    assert_eq!(
        shown(&server, "acme", "pq_produce_hybrid"),
        ("true".into(), "tenant".into())
    );
    assert_eq!(
        shown(&server, "acme", "pq_verify_mode"),
        ("and".into(), "server".into())
    );
    let tenant = tenant_id(&server, "acme").await;
    let mut keys = vec![key.clone()];
    for n in 0..23 {
        keys.push(create(&acme, HYBRID, &format!("k{n}")).await);
    }
    let mut composites = 0;
    for key in &keys {
        let id: KeyId = key.parse().unwrap();
        let inside = coffer_core::pq::bucket(tenant, id) < 50;
        for _ in 0..2 {
            let signed = sign(&acme, key, None).await.unwrap();
            let expected = if inside { COMPOSITE } else { "ed25519" };
            assert_eq!(signed.algorithm, expected, "{key}");
            assert_eq!(valid(&acme, key, &signed.signature).await, inside, "{key}");
        }
        composites += usize::from(inside);
    }
    assert!(
        (1..keys.len()).contains(&composites),
        "{composites} of {} keys in the rollout",
        keys.len()
    );
    // 0 %: none; 100 %: all.
    for (percent, algorithm) in [("0", "ed25519"), ("100", COMPOSITE)] {
        let (code, _, err) = server.cli(
            &server.admin_token,
            &["tenant", "set", "acme", "--pq-rollout-percent", percent],
        );
        assert_eq!(code, 0, "{err}");
        for key in &keys {
            assert_eq!(sign(&acme, key, None).await.unwrap().algorithm, algorithm);
        }
    }

    // Refusals change nothing: a tenant token, a bad percent, nothing named, an unknown
    // tenant, a bad value on the command line.
    let admin = server.admin();
    let mut bad_percent = request("acme");
    bad_percent.pq_rollout_percent = Some(Some(101));
    let mut by_tenant = request("acme");
    by_tenant.pq_rollout_percent = Some(Some(10));
    let mut nobody = request("nobody");
    nobody.pq_rollout_percent = Some(Some(10));
    for (client, request, status) in [
        (&acme, by_tenant, 403),
        (&admin, bad_percent, 400),
        (&admin, request("acme"), 400),
        (&admin, nobody, 404),
    ] {
        match client.set_pq_policy(&request).await {
            Err(ClientError::Api { status: got, .. }) => assert_eq!(got, status),
            other => panic!("expected {status}, got {other:?}"),
        }
    }
    let (code, _, _) = server.cli(
        &server.admin_token,
        &["tenant", "set", "acme", "--pq-produce-hybrid", "maybe"],
    );
    assert_ne!(code, 0);
    let (code, _, _) = server.cli(&server.admin_token, &["tenant", "set", "acme"]);
    assert_ne!(code, 0);
    assert_eq!(
        shown(&server, "acme", "pq_rollout_percent"),
        ("100".into(), "tenant".into())
    );

    // Kept in the store: a restarted server applies it from the start; another replica
    // follows at its next token refresh.
    let mut none = request("acme");
    none.pq_rollout_percent = Some(Some(0));
    set(&server, none).await;
    let server = server.restart().await;
    let acme = server.client(&acme_token(&server).await);
    assert_eq!(sign(&acme, &key, None).await.unwrap().algorithm, "ed25519");
    if db == Db::Postgres {
        let replica = server.another_replica().await;
        let on_replica = replica.client(&acme_token(&replica).await);
        assert_eq!(
            sign(&on_replica, &key, None).await.unwrap().algorithm,
            "ed25519"
        );
        let mut all = request("acme");
        all.pq_rollout_percent = Some(None);
        set(&server, all).await;
        let changed = std::time::Instant::now();
        while sign(&on_replica, &key, None).await.unwrap().algorithm != COMPOSITE {
            assert!(
                changed.elapsed() < std::time::Duration::from_secs(15),
                "the replica still signs with the classical half"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        eprintln!("replica followed after {:?}", changed.elapsed());
    }

    // `default` puts each back to the server's.
    let (code, _, err) = server.cli(
        &server.admin_token,
        &[
            "tenant",
            "set",
            "acme",
            "--pq-produce-hybrid",
            "default",
            "--pq-rollout-percent",
            "default",
        ],
    );
    assert_eq!(code, 0, "{err}");
    for setting in ["pq_produce_hybrid", "pq_rollout_percent", "pq_verify_mode"] {
        assert_eq!(shown(&server, "acme", setting).1, "server", "{setting}");
    }
    assert_eq!(sign(&acme, &key, None).await.unwrap().algorithm, COMPOSITE);

    // Each change is in the audit log with what it set, and only that.
    let log = server.state.audit.clone().unwrap();
    let lines = log.export(0, 100_000).await.unwrap();
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
        "pq_produce_hybrid=false",
        "pq_verify_mode=or",
        "pq_verify_mode=pq_only",
        "pq_verify_mode=server default, pq_produce_hybrid=true, pq_rollout_percent=50",
        "pq_rollout_percent=0",
        "pq_rollout_percent=100",
        "pq_rollout_percent=0",
    ];
    if db == Db::Postgres {
        expected.push("pq_rollout_percent=server default");
    }
    expected.push("pq_produce_hybrid=server default, pq_rollout_percent=server default");
    assert_eq!(details, expected);
}

/// A server started with `pq_produce_hybrid = false` and a rollout percent: every
/// tenant without an override follows them; a tenant's override wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_pq_defaults_apply_to_tenants_without_an_override() {
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_PQ_PRODUCE_HYBRID", "false")],
    )
    .await
    .unwrap();
    let acme = server.tenant("acme").await;
    let key = create(&acme, HYBRID, "release").await;
    assert_eq!(
        shown(&server, "acme", "pq_produce_hybrid"),
        ("false".into(), "server".into())
    );
    let signed = sign(&acme, &key, None).await.unwrap();
    assert_eq!(signed.algorithm, "ed25519");
    classical_public_key(&acme, &key)
        .await
        .verify(b"release 7", &signed.signature.0, PqVerifyMode::And)
        .unwrap();
    let mut composite = request("acme");
    composite.pq_produce_hybrid = Some(Some(true));
    set(&server, composite).await;
    let signed = sign(&acme, &key, None).await.unwrap();
    assert_eq!(signed.algorithm, COMPOSITE);
    assert!(valid(&acme, &key, &signed.signature).await);

    // The rollout percent from the environment, per key as its bucket says.
    let server = server
        .stop()
        .await
        .with_var("COFFER_PQ_PRODUCE_HYBRID", "true")
        .with_var("COFFER_PQ_ROLLOUT_PERCENT", "0")
        .start()
        .await;
    let globex = server.tenant("globex").await;
    let other = create(&globex, HYBRID, "release").await;
    assert_eq!(
        shown(&server, "globex", "pq_rollout_percent"),
        ("0".into(), "server".into())
    );
    assert_eq!(
        sign(&globex, &other, None).await.unwrap().algorithm,
        "ed25519"
    );
}

/// A fresh token for acme on a restarted server.
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
