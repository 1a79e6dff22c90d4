//! Rewriting the audit log while the server is down is found at the next start, and
//! the anchors outside the database are never overwritten.
//!
//! A server anchors its checkpoints in a directory; it is stopped, and the database is
//! rewritten the way someone holding it would to hide entries: (a) the tail cut, the
//! head row moved back so appends continue, the stored checkpoints deleted; (b) an
//! entry in the middle edited and every later link re-chained, so the stored chain is
//! consistent in itself, the stored checkpoints deleted. At the restart the log no
//! longer extends the anchored checkpoint: the integrity alarm is raised, signing a
//! checkpoint is refused even once the log has grown past the anchored size, and the
//! anchor directory is byte for byte as it was. (c) A clean restart raises nothing and
//! keeps signing and anchoring.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coffer_audit::entry::{ExportedEntry, hex};
use coffer_audit::merkle::leaf_hash;
use coffer_server::startup::InitMethod;
use serde_json::json;
use sqlx::{AnyConnection, Executor};

use super::db;
use super::http;
use crate::harness::{Db, Stopped, TestServer, temp_dir};

const ALARM: &str = "kms_audit_integrity_failed_total";

#[derive(Debug, Clone, Copy)]
enum Rewrite {
    CutTail,
    Rechain,
    Nothing,
}

/// Every file of the anchor directory and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect()
}

fn size_of(note: &str) -> u64 {
    note.lines().nth(1).unwrap().parse().unwrap()
}

/// A server anchoring to its own directory, with audited history and a checkpoint.
async fn anchored_history(db_kind: Db) -> Option<(TestServer, PathBuf, String, u64)> {
    let anchor = temp_dir().join("anchor");
    let anchor_text = anchor.display().to_string();
    let server = TestServer::start_with(
        db_kind,
        InitMethod::KeyFile,
        &[("COFFER_AUDIT_ANCHOR_DIR", &anchor_text)],
    )
    .await?;
    let token = server.tenant_token("acme").await;
    wraps(&server, &token, 12).await;
    let note = server.admin().audit_new_checkpoint().await.unwrap();
    let size = size_of(&note);
    assert_eq!(
        std::fs::read_to_string(anchor.join("latest")).unwrap(),
        note
    );
    Some((server, anchor, token, size))
}

/// `n` audited requests: a key, then wraps under it.
async fn wraps(server: &TestServer, token: &str, n: usize) {
    let client = http::client();
    let key = http::post(
        &client,
        &server.api,
        "/v1/kms/keys",
        token,
        Some(&json!({"spec": "aes-256"})),
    )
    .await
    .unwrap()
    .field("key_id");
    for i in 0..n {
        let body = json!({"key_id": key, "plaintext": "aGVsbG8=", "context": {"n": i.to_string()}});
        let answer = http::post(&client, &server.api, "/v1/kms/wrap", token, Some(&body))
            .await
            .unwrap();
        assert!(answer.ok(), "{answer:?}");
    }
}

async fn rows(conn: &mut AnyConnection) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT idx, leaf FROM audit_entries ORDER BY idx")
        .fetch_all(conn)
        .await
        .unwrap()
}

/// Points the head row at the end of what is stored, as a forger must for appends to
/// continue without a gap.
async fn fix_head(conn: &mut AnyConnection) {
    let rows = rows(conn).await;
    let (last, leaf) = rows.last().unwrap();
    sqlx::query("UPDATE audit_head SET next_idx = $1, prev = $2 WHERE id = 1")
        .bind(last + 1)
        .bind(hex(&leaf_hash(leaf.as_bytes())))
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// Rewrites the stopped deployment's log as `how` says. `size`: the anchored size.
async fn rewrite(stopped: &Stopped, how: Rewrite, size: u64) {
    let url = &stopped.database_url;
    let mut conn = db::connect(url).await;
    match how {
        Rewrite::Nothing => return,
        Rewrite::CutTail => {
            let cut = i64::try_from(size).unwrap() - 3;
            sqlx::query("DELETE FROM audit_entries WHERE idx >= $1")
                .bind(cut)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        Rewrite::Rechain => {
            let original = rows(&mut conn).await;
            let middle = usize::try_from(size / 2).unwrap();
            let mut prev = leaf_hash(original[middle - 1].1.as_bytes());
            for (idx, leaf) in &original[middle..] {
                let mut entry: ExportedEntry = serde_json::from_str(leaf).unwrap();
                if entry.index == middle as u64 {
                    entry.entry.outcome = "forbidden".into();
                }
                entry.prev = hex(&prev);
                let bytes = entry.leaf_bytes();
                prev = leaf_hash(&bytes);
                sqlx::query("UPDATE audit_entries SET leaf = $1 WHERE idx = $2")
                    .bind(String::from_utf8(bytes).unwrap())
                    .bind(*idx)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
    fix_head(&mut conn).await;
    conn.execute("DELETE FROM audit_checkpoints").await.unwrap();
}

async fn rewritten_log_is_found_at_restart(db_kind: Db, how: Rewrite) {
    let Some((server, anchor, token, size)) = anchored_history(db_kind).await else {
        return;
    };
    let stopped = server.stop().await;
    let anchored = files(&anchor);
    rewrite(&stopped, how, size).await;
    let server = stopped.start().await;
    let log = server.state.audit.clone().unwrap();
    let http = http::client();

    let checkpoint = |server: &TestServer| {
        let (http, api, admin) = (http.clone(), server.api.clone(), server.admin_token.clone());
        async move {
            http::post(&http, &api, "/v1/audit/checkpoint", &admin, None)
                .await
                .unwrap()
        }
    };
    match how {
        Rewrite::Nothing => {
            assert_eq!(
                log.integrity_failures(),
                0,
                "a clean restart raises nothing"
            );
            assert!(log.verify_stored().await.failures.is_empty());
            wraps(&server, &token, 3).await;
            let answer = checkpoint(&server).await;
            assert!(answer.ok(), "{answer:?}");
            let note = answer.json.as_str().unwrap().to_owned();
            let after = files(&anchor);
            assert_eq!(after["latest"], note.as_bytes(), "anchored as the latest");
            let new_size = size_of(&note);
            assert!(new_size > size);
            assert_eq!(
                after[&format!("checkpoint-{new_size}.txt")],
                note.as_bytes()
            );
            for (name, bytes) in anchored.iter().filter(|(name, _)| *name != "latest") {
                assert_eq!(&after[name], bytes, "{name} unchanged");
            }
        }
        Rewrite::CutTail | Rewrite::Rechain => {
            assert!(
                log.integrity_failures() > 0,
                "{how:?}: the restart must raise the alarm"
            );
            assert!(http::metric(&http, &server.ops, ALARM).await > 0.0);
            // Refused now, and still once the log has grown past the anchored size
            // (where a cut log could otherwise pass for a longer honest one).
            let answer = checkpoint(&server).await;
            assert!(
                !answer.ok(),
                "{how:?}: signed over a rewritten log: {answer:?}"
            );
            wraps(&server, &token, 6).await;
            assert!(log.size() > size, "{} <= {size}", log.size());
            let answer = checkpoint(&server).await;
            assert!(
                !answer.ok(),
                "{how:?}: signed over a rewritten log: {answer:?}"
            );
            assert_eq!(files(&anchor), anchored, "{how:?}: the anchors changed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_cut_tail_is_found_at_restart() {
    rewritten_log_is_found_at_restart(Db::Sqlite, Rewrite::CutTail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_rechained_history_is_found_at_restart() {
    rewritten_log_is_found_at_restart(Db::Sqlite, Rewrite::Rechain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_clean_restart_keeps_signing_and_anchoring() {
    rewritten_log_is_found_at_restart(Db::Sqlite, Rewrite::Nothing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cut_tail_is_found_at_restart() {
    rewritten_log_is_found_at_restart(Db::Postgres, Rewrite::CutTail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_rechained_history_is_found_at_restart() {
    rewritten_log_is_found_at_restart(Db::Postgres, Rewrite::Rechain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_clean_restart_keeps_signing_and_anchoring() {
    rewritten_log_is_found_at_restart(Db::Postgres, Rewrite::Nothing).await;
}
