//! When the audit entry of a state change cannot be written, nothing changes: every
//! state-changing call answers `503` with `Retry-After`, and the database is as it was.
//! Once audit inserts work again, the same calls succeed (the service is not wedged).
//!
//! The fault is a trigger that aborts every insert into `audit_entries`, installed
//! behind the running server's back, on SQLite and on PostgreSQL. On SQLite an
//! operation's entry (a wrap's) is durable in the audit journal before it reaches that
//! table: the wrap is answered, and its entry is in the table once inserts work again.

use coffer_server::startup::InitMethod;
use serde_json::{Value, json};

use super::db;
use super::http::{self, Answer};
use crate::harness::{Db, TestServer};

#[derive(Debug, Clone, Copy)]
enum Who {
    Admin,
    Tenant,
}

/// One state-changing call.
struct Call {
    name: &'static str,
    who: Who,
    path: String,
    body: Option<Value>,
}

fn call(name: &'static str, who: Who, path: String, body: Option<Value>) -> Call {
    Call {
        name,
        who,
        path,
        body,
    }
}

struct Setup {
    server: TestServer,
    http: reqwest::Client,
    tenant_token: String,
}

impl Setup {
    fn token(&self, who: Who) -> &str {
        match who {
            Who::Admin => &self.server.admin_token,
            Who::Tenant => &self.tenant_token,
        }
    }

    async fn send(&self, who: Who, path: &str, body: Option<&Value>) -> Answer {
        http::post(&self.http, &self.server.api, path, self.token(who), body)
            .await
            .unwrap()
    }

    /// A setup call, which must succeed.
    async fn must(&self, who: Who, path: &str, body: Option<Value>) -> Answer {
        let answer = self.send(who, path, body.as_ref()).await;
        assert!(answer.ok(), "setup: POST {path}: {answer:?}");
        answer
    }

    async fn key(&self, spec: &str) -> String {
        self.must(Who::Tenant, "/v1/kms/keys", Some(json!({"spec": spec})))
            .await
            .field("key_id")
    }

    /// A self-signed certificate for `key` (its own CA).
    async fn self_certify(&self, key: &str, subject: &str) {
        self.must(
            Who::Tenant,
            &format!("/v1/kms/keys/{key}/issue-certificate"),
            Some(json!({"ca_key": key, "subject": subject, "validity": "30d"})),
        )
        .await;
    }
}

/// Objects for every call to act on, each call on its own so that the calls do not
/// depend on one another; and the calls.
async fn prepare(setup: &Setup) -> Vec<Call> {
    use Who::{Admin, Tenant};
    let k = |id: &str, action: &str| format!("/v1/kms/keys/{id}/{action}");
    let rotate = setup.key("aes-256").await;
    let spare = setup.key("aes-256").await;
    let activate = setup.key("aes-256").await;
    setup.must(Tenant, &k(&activate, "add-spare"), None).await;
    let register = setup.key("ed25519").await;
    let policy = setup.key("aes-256").await;
    let publish = setup.key("ed25519").await;
    let disable = setup.key("aes-256").await;
    let enable = setup.key("aes-256").await;
    setup.must(Tenant, &k(&enable, "disable"), None).await;
    let schedule = setup.key("aes-256").await;
    let cancel = setup.key("aes-256").await;
    setup
        .must(Tenant, &k(&cancel, "schedule-deletion"), None)
        .await;
    let issue = setup.key("ecdsa-p256").await;
    // Importing the chain it had before puts a different chain back.
    let import = setup.key("ecdsa-p256").await;
    setup.self_certify(&import, "first").await;
    let first_chain = http::get(
        &setup.http,
        &setup.server.api,
        &k(&import, "certificate"),
        &setup.tenant_token,
    )
    .await
    .unwrap()
    .field("chain_pem");
    setup.self_certify(&import, "second").await;
    let datakey = setup.key("aes-256").await;
    let saga = setup.key("aes-256").await;
    let staged = |key: String| async move {
        let id = setup
            .must(
                Tenant,
                "/v1/kms/rotations",
                Some(json!({"key_id": key, "until": "stage"})),
            )
            .await
            .field("rotation_id");
        // The server's worker runs the saga after the 202: wait until it has paused,
        // so the snapshot below is taken with nothing moving.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let view = http::get(
                &setup.http,
                &setup.server.api,
                &format!("/v1/kms/rotations/{id}"),
                &setup.tenant_token,
            )
            .await
            .unwrap();
            if view.json["held"] == "paused" {
                break id;
            }
            assert!(std::time::Instant::now() < deadline, "{view:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let resume = staged(setup.key("aes-256").await).await;
    let rollback = staged(setup.key("aes-256").await).await;
    let revoke = setup
        .must(Admin, "/v1/admin/tokens", Some(json!({"tenant": "acme"})))
        .await
        .field("token_id");
    let wrap = setup.key("aes-256").await;

    vec![
        call(
            "create key",
            Tenant,
            "/v1/kms/keys".into(),
            Some(json!({"spec": "aes-256", "alias": "made-blind", "labels": {"team": "x"}})),
        ),
        call("rotate", Tenant, k(&rotate, "rotate"), None),
        call("add spare", Tenant, k(&spare, "add-spare"), None),
        call(
            "activate version",
            Tenant,
            k(&activate, "activate"),
            Some(json!({"version": 2})),
        ),
        call(
            "register purpose",
            Tenant,
            k(&register, "register"),
            Some(json!({"purpose": "attestation-signing"})),
        ),
        call(
            "set policy",
            Tenant,
            k(&policy, "policy"),
            Some(json!({"rotation": {"period": "90d", "overlap": "14d"}, "validity": "365d"})),
        ),
        call("publish", Tenant, k(&publish, "publish"), None),
        call("disable", Tenant, k(&disable, "disable"), None),
        call("enable", Tenant, k(&enable, "enable"), None),
        call(
            "schedule deletion",
            Tenant,
            k(&schedule, "schedule-deletion"),
            Some(json!({"pending_window_days": 7})),
        ),
        call(
            "cancel deletion",
            Tenant,
            k(&cancel, "cancel-deletion"),
            None,
        ),
        call(
            "issue certificate",
            Tenant,
            k(&issue, "issue-certificate"),
            Some(json!({"ca_key": issue, "subject": "blind", "validity": "30d"})),
        ),
        call(
            "import certificate chain",
            Tenant,
            k(&import, "certificate"),
            Some(json!({"chain_pem": first_chain})),
        ),
        call(
            "tracked data key",
            Tenant,
            "/v1/kms/datakey".into(),
            Some(json!({"key_id": datakey, "track_id": "row-1"})),
        ),
        call(
            "start rotation",
            Tenant,
            "/v1/kms/rotations".into(),
            Some(json!({"key_id": saga})),
        ),
        call(
            "resume rotation",
            Tenant,
            format!("/v1/kms/rotations/{resume}/resume"),
            None,
        ),
        call(
            "roll back rotation",
            Tenant,
            format!("/v1/kms/rotations/{rollback}/rollback"),
            None,
        ),
        call(
            "create tenant",
            Admin,
            "/v1/admin/tenants".into(),
            Some(json!({"name": "made-blind"})),
        ),
        call(
            "mint token",
            Admin,
            "/v1/admin/tokens".into(),
            Some(json!({"tenant": "acme"})),
        ),
        call(
            "revoke token",
            Admin,
            "/v1/admin/tokens/revoke".into(),
            Some(json!({"token_id": revoke})),
        ),
        // Not a state change, but audited: no ciphertext may leave without its entry.
        call(
            "wrap",
            Tenant,
            "/v1/kms/wrap".into(),
            Some(json!({"key_id": wrap, "plaintext": "aGVsbG8="})),
        ),
    ]
}

async fn nothing_changes_without_its_audit_entry(db_kind: Db) {
    let Some(server) = TestServer::start_with(db_kind, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let tenant_token = server.tenant_token("acme").await;
    let setup = Setup {
        server,
        http: http::client(),
        tenant_token,
    };
    let sqlite = matches!(db_kind, Db::Sqlite);
    let mut calls = prepare(&setup).await;
    if sqlite {
        calls.retain(|call| call.name != "wrap");
    }
    let wrap_key = setup.key("aes-256").await;
    let url = setup.server.database_url.clone();
    let mut conn = db::connect(&url).await;
    let before = db::snapshot(&mut conn, &url).await;

    db::refuse_audit(&mut conn, &url).await;
    let mut wrong = Vec::new();
    for call in &calls {
        let answer = setup.send(call.who, &call.path, call.body.as_ref()).await;
        if answer.status != 503 || answer.retry_after.is_none() {
            wrong.push(format!(
                "{}: answered {} (Retry-After {:?}), not 503 with Retry-After: {}",
                call.name, answer.status, answer.retry_after, answer.json
            ));
        }
    }
    let journaled = if sqlite {
        let answer = setup
            .http
            .post(format!("{}/v1/kms/wrap", setup.server.api))
            .bearer_auth(&setup.tenant_token)
            .header("x-request-id", "wrap-while-the-table-refuses")
            .json(&json!({"key_id": wrap_key, "plaintext": "aGVsbG8="}))
            .send()
            .await
            .unwrap();
        if answer.status() != 200 {
            wrong.push(format!(
                "wrap (its entry durable in the journal): answered {}",
                answer.status()
            ));
        }
        true
    } else {
        false
    };
    let after = db::snapshot(&mut conn, &url).await;
    let changed = db::changes(&before, &after);
    assert!(
        wrong.is_empty() && changed.is_empty(),
        "with audit inserts failing:\n{}\nstate changed:\n{}",
        wrong.join("\n"),
        changed.join("\n")
    );

    db::accept_audit(&mut conn, &url).await;
    if journaled {
        setup.server.settle_audit().await;
        let leaves = db::audit_leaves_of(&mut conn, "wrap-while-the-table-refuses").await;
        assert!(
            leaves.len() == 1 && leaves[0].contains("\"outcome\":\"ok\""),
            "the answered wrap's entry in the table: {leaves:?}"
        );
    }
    let mut refused = Vec::new();
    for call in &calls {
        let answer = setup.send(call.who, &call.path, call.body.as_ref()).await;
        if !answer.ok() {
            refused.push(format!("{}: {} {}", call.name, answer.status, answer.json));
        }
    }
    assert!(
        refused.is_empty(),
        "once audit inserts work again, these still fail:\n{}",
        refused.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_state_changes_only_with_their_audit_entry() {
    nothing_changes_without_its_audit_entry(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_state_changes_only_with_their_audit_entry() {
    nothing_changes_without_its_audit_entry(Db::Postgres).await;
}
