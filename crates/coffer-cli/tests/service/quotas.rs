//! Per-tenant quotas, as a token holder meets them: every quota refuses with `429
//! quota_exceeded` naming the quota and its limit, a refusal changes nothing (and is
//! audited and counted in `kms_reject_total{reason="quota"}`), and concurrent creations
//! never take more than the last free slot (and are counted in
//! `kms_key_creation_batch_keys`). SQLite and PostgreSQL.

use std::collections::BTreeMap;

use coffer_api::ErrorCode;
use coffer_api::admin::{MintTokenRequest, RevokeTokenRequest};
use coffer_api::keys::{CreateKeyRequest, ListKeysQuery};
use coffer_audit::entry::ExportedEntry;
use coffer_client::{Client, ClientError};
use coffer_server::startup::InitMethod;

use super::harness::{Db, TestServer};

const SMALL: &[(&str, &str)] = &[
    ("COFFER_QUOTAS_KEYS_PER_TENANT", "3"),
    ("COFFER_QUOTAS_VERSIONS_PER_KEY", "2"),
    ("COFFER_QUOTAS_ALIASES_PER_TENANT", "2"),
    ("COFFER_QUOTAS_LABELS_PER_KEY", "2"),
    ("COFFER_QUOTAS_TOKENS_PER_TENANT", "2"),
];

fn key(alias: Option<&str>, labels: usize) -> CreateKeyRequest {
    CreateKeyRequest {
        spec: "aes-256".into(),
        alias: alias.map(str::to_owned),
        labels: (0..labels)
            .map(|i| (format!("l{i}"), "v".to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

/// The refusal's status, code and message, or a panic if it was not refused.
fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, ErrorCode, String) {
    match result {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => (status, code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn assert_quota<T: std::fmt::Debug>(result: Result<T, ClientError>, quota: &str, limit: u32) {
    let (status, code, message) = refused(result);
    assert_eq!((status, code), (429, ErrorCode::QuotaExceeded), "{message}");
    assert_eq!(
        message,
        format!("quota exceeded: {quota} is limited to {limit} for this tenant")
    );
}

async fn key_count(client: &Client) -> usize {
    client
        .list_keys(&ListKeysQuery::default())
        .await
        .unwrap()
        .keys
        .len()
}

async fn mint(server: &TestServer, tenant: &str) -> Result<String, ClientError> {
    server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some(tenant.into()),
            ..Default::default()
        })
        .await
        .map(|minted| minted.token_id)
}

async fn every_quota_refuses_with_429_and_changes_nothing(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, SMALL).await else {
        return;
    };
    // The tenant's first token is one of its two.
    let acme = server.tenant("acme").await;

    // Labels: three on a key refused; the key is not made.
    assert_quota(acme.create_key(&key(None, 3)).await, "labels_per_key", 2);
    assert_eq!(key_count(&acme).await, 0);
    let first = acme.create_key(&key(Some("a1"), 2)).await.unwrap();
    acme.create_key(&key(Some("a2"), 0)).await.unwrap();
    // Aliases: a third refused with the key that would carry it.
    assert_quota(
        acme.create_key(&key(Some("a3"), 0)).await,
        "aliases_per_tenant",
        2,
    );
    assert_eq!(key_count(&acme).await, 2);
    // Keys: the third fits, the fourth does not.
    acme.create_key(&key(None, 0)).await.unwrap();
    assert_quota(acme.create_key(&key(None, 0)).await, "keys_per_tenant", 3);
    assert_eq!(key_count(&acme).await, 3);

    // Versions: one rotation fits, the next is refused and the primary stays.
    acme.rotate_key(&first.key_id).await.unwrap();
    assert_quota(acme.rotate_key(&first.key_id).await, "versions_per_key", 2);
    let shown = acme.show_key(&first.key_id).await.unwrap();
    assert_eq!((shown.versions.len(), shown.primary_version), (2, 2));

    // Tokens: a second fits, a third does not; revoking one frees its slot.
    let second = mint(&server, "acme").await.unwrap();
    assert_quota(mint(&server, "acme").await, "tokens_per_tenant", 2);
    server
        .admin()
        .revoke_token(&RevokeTokenRequest { token_id: second })
        .await
        .unwrap();
    mint(&server, "acme").await.unwrap();

    // Each route that just answered 429 says so in the OpenAPI document, naming the
    // quota it met.
    let document: serde_json::Value = reqwest::get(format!("{}/v1/openapi.json", server.api))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, quotas) in [
        (
            "/v1/kms/keys",
            &["labels_per_key", "aliases_per_tenant", "keys_per_tenant"][..],
        ),
        ("/v1/kms/keys/{key}/{action}", &["versions_per_key"][..]),
        ("/v1/admin/tokens", &["tokens_per_tenant"][..]),
    ] {
        let documented = document["paths"][path]["post"]["responses"]["429"]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("POST {path} answered 429 but does not document it"));
        for quota in quotas {
            assert!(documented.contains(quota), "POST {path}: {documented}");
        }
    }

    // Another tenant has its own quota.
    let globex = server.tenant("globex").await;
    globex.create_key(&key(Some("a1"), 0)).await.unwrap();

    // Each refusal is audited as quota_exceeded and counted once.
    let log = server.admin().audit_entries(0, 10_000).await.unwrap();
    let refusals = log
        .lines()
        .map(|l| serde_json::from_str::<ExportedEntry>(l).unwrap())
        .filter(|e| e.entry.outcome == "quota_exceeded")
        .map(|e| e.entry.op)
        .collect::<Vec<_>>();
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    // The registry is the test process's, shared with tests running alongside: at
    // least this test's refusals.
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kms_reject_total{reason=\"quota\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no kms_reject_total{{reason=\"quota\"}}: {metrics}"));
    assert!(counted >= 5, "{counted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_quota_refuses_with_429_and_changes_nothing_sqlite() {
    every_quota_refuses_with_429_and_changes_nothing(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_quota_refuses_with_429_and_changes_nothing_postgres() {
    every_quota_refuses_with_429_and_changes_nothing(Db::Postgres).await;
}

async fn concurrent_creations_never_pass_the_last_slot(db: Db) {
    let env = [
        ("COFFER_QUOTAS_KEYS_PER_TENANT", "5"),
        ("COFFER_QUOTAS_TOKENS_PER_TENANT", "4"),
    ];
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &env).await else {
        return;
    };
    let acme = server.tenant("acme").await;
    acme.create_key(&key(None, 0)).await.unwrap();
    // 20 creations at once for the 4 slots left.
    let creations: Vec<_> = (0..20)
        .map(|_| {
            let acme = acme.clone();
            tokio::spawn(async move { acme.create_key(&key(None, 0)).await })
        })
        .collect();
    let mut made = 0;
    for creation in creations {
        match creation.await.unwrap() {
            Ok(_) => made += 1,
            refusal => assert_eq!(refused(refusal).1, ErrorCode::QuotaExceeded),
        }
    }
    assert_eq!(made, 4);
    assert_eq!(key_count(&acme).await, 5);
    // Every creation went through a group commit, which the summary counts: at least
    // this test's 21 (the registry is the test process's, shared with other tests).
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    let grouped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kms_key_creation_batch_keys_sum "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no kms_key_creation_batch_keys_sum: {metrics}"));
    assert!(grouped >= 21.0, "{grouped}");
    // The same for tokens: 3 slots left after the first, 12 mints at once.
    let mints: Vec<_> = (0..12)
        .map(|_| {
            let admin = server.admin();
            tokio::spawn(async move {
                admin
                    .mint_token(&MintTokenRequest {
                        tenant: Some("acme".into()),
                        ..Default::default()
                    })
                    .await
            })
        })
        .collect();
    let mut minted = 0;
    for mint in mints {
        match mint.await.unwrap() {
            Ok(_) => minted += 1,
            refusal => assert_eq!(refused(refusal).1, ErrorCode::QuotaExceeded),
        }
    }
    assert_eq!(minted, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_never_pass_the_last_slot_sqlite() {
    concurrent_creations_never_pass_the_last_slot(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_never_pass_the_last_slot_postgres() {
    concurrent_creations_never_pass_the_last_slot(Db::Postgres).await;
}
