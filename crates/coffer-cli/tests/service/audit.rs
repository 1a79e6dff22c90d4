//! The audit log end to end: every operation recorded, proofs, tamper detection on both
//! stores (offline verifier, CLI and the server's self-check), anchoring, fail closed.

use coffer_api::ErrorCode;
use coffer_audit::checkpoint::CheckpointVerifier;
use coffer_audit::entry::ExportedEntry;
use coffer_audit::merkle::{Hash, leaf_hash, root_of, verify_consistency, verify_inclusion};
use coffer_audit::verify::verify_log;
use coffer_server::startup::InitMethod;
use sqlx::{AnyConnection, Connection, Executor};

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::{Db, TestServer};

fn hash(value: &serde_json::Value) -> Hash {
    hex::decode(value.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// A server with a dozen-odd audited operations and a checkpoint over them.
async fn server_with_history(db: Db) -> Option<(TestServer, String, String, String)> {
    let server = TestServer::start_with(db, InitMethod::KeyFile, &[]).await?;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "k").await;
    for i in 0..10u8 {
        let sealed = acme.wrap(&wrap_request(&key, &[i; 8], &[])).await.unwrap();
        if i % 3 == 0 {
            acme.unwrap(&unwrap_request(&sealed.ciphertext, &[]))
                .await
                .unwrap();
        }
    }
    let admin = server.admin();
    let note = admin.audit_new_checkpoint().await.unwrap();
    let log = admin.audit_entries(0, 1000).await.unwrap();
    let key = admin.audit_key().await.unwrap();
    Some((server, log, note, key))
}

/// What the server's own integrity check finds wrong in the stored log.
async fn self_check_failures(server: &TestServer) -> usize {
    let audit = server.state.audit.as_ref().unwrap();
    audit.verify_stored().await.failures.len()
}

async fn db(server: &TestServer) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&server.database_url).await.unwrap();
    if server.database_url.starts_with("sqlite:") {
        conn.execute("PRAGMA busy_timeout=10000").await.unwrap();
    }
    conn
}

async fn rows(conn: &mut AnyConnection) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT idx, leaf FROM audit_entries ORDER BY idx")
        .fetch_all(conn)
        .await
        .unwrap()
}

async fn restore(conn: &mut AnyConnection, original: &[(i64, String)]) {
    conn.execute("DELETE FROM audit_entries").await.unwrap();
    for (idx, leaf) in original {
        sqlx::query("INSERT INTO audit_entries (idx, leaf) VALUES ($1, $2)")
            .bind(*idx)
            .bind(leaf)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}

async fn tamper_detection(db_kind: Db) {
    let Some((server, log, note, key)) = server_with_history(db_kind).await else {
        return;
    };
    let verifier = CheckpointVerifier::parse(&key).unwrap();
    let verified = verify_log(&log, &note, &verifier).unwrap();
    assert!(
        verified.checkpoint.size >= 12,
        "{}",
        verified.checkpoint.size
    );
    assert_eq!(self_check_failures(&server).await, 0);

    // The whole log in the table (SQLite keeps the newest entries in its journal a
    // moment first), before it is edited behind the server's back.
    server.settle_audit().await;
    let mut conn = db(&server).await;
    let original = rows(&mut conn).await;
    let leaf = |i: usize| original[i].1.clone();
    let cases: Vec<(&str, Vec<String>, u64)> = vec![
        (
            "edit a field",
            vec![format!(
                "UPDATE audit_entries SET leaf = '{}' WHERE idx = 5",
                leaf(5)
                    .replace("\"outcome\":\"ok\"", "\"outcome\":\"forbidden\"")
                    .replace('\'', "''")
            )],
            5,
        ),
        (
            "delete an entry",
            vec!["DELETE FROM audit_entries WHERE idx = 6".into()],
            6,
        ),
        (
            "swap two entries",
            vec![
                format!(
                    "UPDATE audit_entries SET leaf = '{}' WHERE idx = 2",
                    leaf(4).replace('\'', "''")
                ),
                format!(
                    "UPDATE audit_entries SET leaf = '{}' WHERE idx = 4",
                    leaf(2).replace('\'', "''")
                ),
            ],
            2,
        ),
        (
            "cut the tail",
            vec!["DELETE FROM audit_entries WHERE idx >= 9".into()],
            9,
        ),
        (
            "insert an entry",
            vec![
                "UPDATE audit_entries SET idx = idx + 1000000 WHERE idx >= 3".into(),
                "UPDATE audit_entries SET idx = idx - 999999 WHERE idx >= 1000000".into(),
                format!(
                    "INSERT INTO audit_entries (idx, leaf) VALUES (3, '{}')",
                    leaf(3)
                        .replace("\"op\":\"wrap\"", "\"op\":\"sign\"")
                        .replace("\"op\":\"unwrap\"", "\"op\":\"sign\"")
                        .replace('\'', "''")
                ),
            ],
            3,
        ),
    ];
    assert_eq!(self_check_failures(&server).await, 0);
    for (what, statements, first_bad) in cases {
        for statement in &statements {
            conn.execute(statement.as_str()).await.unwrap();
        }
        let tampered = server.admin().audit_entries(0, 1000).await.unwrap();
        let failure = verify_log(&tampered, &note, &verifier).unwrap_err();
        assert_eq!(
            failure.first_bad_index,
            Some(first_bad),
            "{what}: {}",
            failure.reason
        );
        assert!(
            self_check_failures(&server).await > 0,
            "{what}: the server's self-check must notice"
        );
        restore(&mut conn, &original).await;
    }
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    assert!(
        metrics.contains("kms_audit_integrity_failed_total"),
        "{metrics}"
    );
    assert_eq!(self_check_failures(&server).await, 0, "restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_on_sqlite() {
    tamper_detection(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_is_detected_on_postgres() {
    tamper_detection(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_recorded_without_secrets() {
    let Some((server, log, _, _)) = server_with_history(Db::Sqlite).await else {
        return;
    };
    let entries: Vec<ExportedEntry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = entries.iter().map(|e| e.entry.op.as_str()).collect();
    assert!(
        ops.contains(&"tenant.create")
            && ops.contains(&"token.mint")
            && ops.contains(&"keys.create")
    );
    assert_eq!(ops.iter().filter(|op| **op == "wrap").count(), 10);
    assert_eq!(ops.iter().filter(|op| **op == "unwrap").count(), 4);
    let wrap = entries.iter().find(|e| e.entry.op == "wrap").unwrap();
    assert_eq!(
        (wrap.entry.outcome.as_str(), wrap.entry.version),
        ("ok", Some(1))
    );
    assert!(!wrap.entry.request_id.is_empty() && wrap.entry.principal.len() == 32);
    // A refused operation is recorded with its code.
    let acme = server.tenant("globex").await;
    let _ = acme.wrap(&wrap_request("alias/k", b"x", &[])).await;
    let log = server.admin().audit_entries(0, 1000).await.unwrap();
    let last: ExportedEntry = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last.entry.op.as_str(), last.entry.outcome.as_str()),
        ("wrap", "not_found")
    );
    // Never plaintext: the wrapped bytes (runs of 0x00..0x09) do not appear base64'd.
    for i in 0..10u8 {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [i; 8]);
        assert!(!log.contains(&b64));
    }
}

/// Proofs served by the API check out against a second, independent computation: the
/// root recomputed from the exported entries and RFC 9162 verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusion_and_consistency_proofs_verify() {
    let Some((server, log, note, key)) = server_with_history(Db::Sqlite).await else {
        return;
    };
    let verifier = CheckpointVerifier::parse(&key).unwrap();
    let first = verifier.verify(&note).unwrap();
    let leaves: Vec<Hash> = log.lines().map(|l| leaf_hash(l.as_bytes())).collect();
    assert_eq!(root_of(&leaves[..first.size as usize]), first.root);
    let admin = server.admin();
    for index in [0, first.size / 2, first.size - 1] {
        let proof = admin.audit_inclusion(index, first.size).await.unwrap();
        assert_eq!(hash(&proof["leaf_hash"]), leaves[index as usize]);
        let path: Vec<Hash> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(hash)
            .collect();
        verify_inclusion(
            index,
            first.size,
            &leaves[index as usize],
            &path,
            &first.root,
        )
        .unwrap();
    }
    let acme = server.tenant("later").await;
    let _ = acme.list_keys(&Default::default()).await;
    let second = verifier
        .verify(&admin.audit_new_checkpoint().await.unwrap())
        .unwrap();
    assert!(second.size > first.size);
    let proof = admin
        .audit_consistency(first.size, second.size)
        .await
        .unwrap();
    let path: Vec<Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    verify_consistency(first.size, second.size, &first.root, &second.root, &path).unwrap();
    assert!(verify_consistency(first.size, second.size, &[0; 32], &second.root, &path).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_anchored_outside_the_store() {
    let anchor = super::harness::temp_dir().join("anchor");
    let anchor_text = anchor.display().to_string();
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_AUDIT_ANCHOR_DIR", &anchor_text)],
    )
    .await
    .unwrap();
    let note = server.admin().audit_new_checkpoint().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(anchor.join("latest")).unwrap(),
        note
    );
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        std::fs::read_to_string(anchor.join(format!("checkpoint-{size}.txt"))).unwrap(),
        note
    );
}

/// Checkpoints also go to an HTTP anchor: a second server, outside Coffer, receives each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_posted_to_an_http_anchor() {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/anchor",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "stored"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/anchor", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_AUDIT_ANCHOR_URL", &url)],
    )
    .await
    .unwrap();
    let note = server.admin().audit_new_checkpoint().await.unwrap();
    assert_eq!(received.lock().unwrap().last(), Some(&note));
}

/// With the audit store unwritable, operations fail and return no ciphertext or
/// signature; once it is writable again they succeed. On PostgreSQL, where operations'
/// entries go to the table: on SQLite they go to the audit journal first, which
/// `faults::batch_commit::sqlite_*` and `faults::disk_full` make fail (a full disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_fail_closed_when_the_log_cannot_be_written() {
    let Some(server) = TestServer::start_with(Db::Postgres, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "k").await;
    let signing = create(&acme, "ed25519", "s").await;
    let size_before = server.state.audit.as_ref().unwrap().size();
    let mut conn = db(&server).await;
    conn.execute("CREATE FUNCTION audit_read_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store read-only'; END $$").await.unwrap();
    conn.execute("CREATE TRIGGER audit_read_only BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_read_only()").await.unwrap();
    assert_eq!(
        code_of(acme.wrap(&wrap_request(&key, b"secret", &[])).await),
        ErrorCode::Unavailable
    );
    let sign = coffer_api::crypto::SignRequest {
        attestation: None,
        key_id: signing.clone(),
        message: Some(coffer_api::B64(b"m".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
    };
    assert_eq!(code_of(acme.sign(&sign).await), ErrorCode::Unavailable);
    let (status, body) = server
        .post_raw(
            "/v1/kms/wrap",
            &server.admin_token,
            format!("{{\"key_id\":\"{key}\",\"plaintext\":\"aGk=\"}}"),
        )
        .await;
    assert!(
        status >= 400 && body.get("ciphertext").is_none(),
        "{status} {body}"
    );
    assert_eq!(
        server.state.audit.as_ref().unwrap().size(),
        size_before,
        "nothing half-recorded"
    );
    conn.execute("DROP TRIGGER audit_read_only ON audit_entries")
        .await
        .unwrap();
    acme.wrap(&wrap_request(&key, b"secret", &[]))
        .await
        .unwrap();
    acme.sign(&sign).await.unwrap();
}

/// The CLI verifies an exported log offline and names the first bad entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verifies_offline_and_names_the_first_bad_entry() {
    let Some((server, log, note, key)) = server_with_history(Db::Sqlite).await else {
        return;
    };
    let dir = super::harness::temp_dir();
    std::fs::write(dir.join("log.jsonl"), &log).unwrap();
    std::fs::write(dir.join("checkpoint.txt"), &note).unwrap();
    let run = |log_file: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args([
                "audit",
                "verify",
                "--log",
                log_file,
                "--checkpoint",
                "checkpoint.txt",
                "--key",
                &key,
            ])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let ok = run("log.jsonl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let mut lines: Vec<&str> = log.lines().collect();
    lines.remove(4);
    std::fs::write(dir.join("cut.jsonl"), lines.join("\n") + "\n").unwrap();
    let bad = run("cut.jsonl");
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.contains("first bad entry 4"), "{out}");
    // Online: the live log against the server's newest checkpoint and an older one.
    let online = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "audit",
            "verify",
            "--online",
            "--checkpoint",
            "checkpoint.txt",
        ])
        .env("COFFER_ADDR", &server.api)
        .env("COFFER_TOKEN", &server.admin_token)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        online.status.success(),
        "{}{}",
        String::from_utf8_lossy(&online.stdout),
        String::from_utf8_lossy(&online.stderr)
    );
}

/// Entries name what was acted on and by whom: the tenant created, the token minted and
/// revoked, a rewrap's source key; and reads that reveal history are recorded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_name_the_caller_and_what_was_acted_on() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let acme = server.tenant("acme").await;
    let minted = admin
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .revoke_token(&coffer_api::admin::RevokeTokenRequest {
            token_id: minted.token_id.clone(),
        })
        .await
        .unwrap();
    let from = create(&acme, "aes-256", "from").await;
    let to = create(&acme, "aes-256", "to").await;
    let sealed = acme.wrap(&wrap_request(&from, b"x", &[])).await.unwrap();
    acme.rewrap(&coffer_api::crypto::RewrapRequest {
        ciphertext: sealed.ciphertext.clone(),
        context: Default::default(),
        key_id: Some(to.clone()),
        destination_context: None,
    })
    .await
    .unwrap();
    acme.key_history(&from).await.unwrap();

    let log = admin.audit_entries(0, 1000).await.unwrap();
    let entries: Vec<ExportedEntry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |op: &str| {
        entries
            .iter()
            .filter(|e| e.entry.op == op)
            .map(|e| e.entry.clone())
            .collect::<Vec<_>>()
    };
    let created = find("tenant.create");
    assert!(
        created
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.contains("acme"))),
        "{created:?}"
    );
    let mints = find("token.mint");
    assert!(
        mints.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains(&minted.token_id))),
        "{mints:?}"
    );
    let revokes = find("token.revoke");
    assert!(
        revokes.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains(&minted.token_id))),
        "{revokes:?}"
    );
    let rewraps = find("rewrap");
    let source = format!("from key {from}");
    assert!(
        rewraps
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.starts_with(&source))),
        "{rewraps:?}"
    );
    assert_eq!(find("keys.history").len(), 1);
    // Every change names a token as its principal, never a service name.
    for change in ["tenant.create", "token.mint", "token.revoke", "keys.create"] {
        for entry in find(change) {
            assert!(
                entry.principal.len() == 32 || entry.principal == "-",
                "{change}: {entry:?}"
            );
        }
    }
}

/// Rotation views (status, list, verify, references) reveal who uses which version and
/// are recorded; a refused rotation call is recorded with its refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_views_and_refused_rotation_calls_are_recorded() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "viewed").await;
    let started = acme
        .start_rotation(&coffer_api::rotation::StartRotationRequest {
            key_id: key.clone(),
            until: Some("stage".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = started.rotation_id.clone();
    acme.rotation(&id).await.unwrap();
    acme.list_rotations(&Default::default()).await.unwrap();
    acme.verify_rotation(&id).await.unwrap();
    acme.references(&key).await.unwrap();
    // A token that may only wrap cannot start a rotation.
    let narrow = server
        .admin()
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            operations: vec!["wrap".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let refused = server
        .client(&narrow.token)
        .start_rotation(&coffer_api::rotation::StartRotationRequest {
            key_id: key.clone(),
            until: None,
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(refused), ErrorCode::Forbidden);

    let log = server.admin().audit_entries(0, 1000).await.unwrap();
    let entries: Vec<ExportedEntry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes = |op: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e.entry.op == op)
            .map(|e| e.entry.outcome.clone())
            .collect()
    };
    for op in [
        "rotation.status",
        "rotation.list",
        "rotation.verify",
        "keys.references",
    ] {
        assert_eq!(outcomes(op), vec!["ok".to_owned()], "{op}");
    }
    assert!(
        outcomes("rotation.start").contains(&"forbidden".to_owned()),
        "{:?}",
        outcomes("rotation.start")
    );
}
