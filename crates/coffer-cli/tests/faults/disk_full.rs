//! A full disk under a SQLite deployment: writes fail while it is full, `/readyz` says
//! so, the server recovers by itself once space is freed, and after a restart every
//! acknowledged key and ciphertext is there and the audit log verifies without a hole.
//!
//! The data directory is a small tmpfs mounted for the test (root only; CI runs as
//! root). A filler file takes every free byte while the server is under load.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coffer_server::startup::InitMethod;
use serde_json::json;
use tokio::task::JoinSet;

use super::http;
use super::replicas::Tally;
use crate::harness::{Db, TestServer, temp_dir};

/// A tmpfs mounted for one test, unmounted when dropped.
pub(super) struct Mount {
    pub(super) path: PathBuf,
}

impl Mount {
    /// `None` only when `COFFER_SKIP_MOUNT_TESTS=1` says to skip tests that mount.
    pub(super) fn tmpfs(size: &str) -> Option<Self> {
        let skip = std::env::var("COFFER_SKIP_MOUNT_TESTS").as_deref() == Ok("1");
        if skip {
            eprintln!("skipped: COFFER_SKIP_MOUNT_TESTS=1");
            return None;
        }
        let path = temp_dir();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} (this test needs root; set \
             COFFER_SKIP_MOUNT_TESTS=1 to skip it): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Self { path })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: the dropped server's connections may close a moment later.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Appends to `path` until the filesystem is full; the bytes written. Called again, it
/// takes whatever space was freed since (SQLite gives some back when a write fails).
pub(super) fn fill(path: &Path) -> u64 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Small writes take the last partial page.
    while file.write(&[0x5a]).is_ok_and(|n| n == 1) {
        written += 1;
    }
    let _ = file.sync_all();
    written
}

/// What the load saw acknowledged, and how its writes failed.
#[derive(Default)]
struct Ledger {
    keys: Vec<String>,
    /// (ciphertext, plaintext), both base64.
    ciphertexts: Vec<(String, String)>,
    failed: usize,
    /// Failures that were not `503` (or no answer at all).
    odd: Vec<String>,
}

enum Outcome {
    Created(String),
    Wrapped(String, String),
    Failed(u16, String),
}

/// One round of load: two key creations and two wraps, concurrently.
async fn round(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    wrap_key: &str,
    seq: &mut u64,
    ledger: &mut Ledger,
) {
    let mut set = JoinSet::new();
    for i in 0..4 {
        *seq += 1;
        let (http, api, token) = (http.clone(), api.to_owned(), token.to_owned());
        let plaintext = B64.encode(format!("disk-full-{seq}"));
        let wrap_key = wrap_key.to_owned();
        set.spawn(async move {
            let (path, body) = if i % 2 == 0 {
                ("/v1/kms/keys", json!({"spec": "aes-256"}))
            } else {
                (
                    "/v1/kms/wrap",
                    json!({"key_id": wrap_key, "plaintext": plaintext}),
                )
            };
            match http::post(&http, &api, path, &token, Some(&body)).await {
                Ok(a) if a.ok() && i % 2 == 0 => Outcome::Created(a.field("key_id")),
                Ok(a) if a.ok() => Outcome::Wrapped(a.field("ciphertext"), plaintext),
                Ok(a) => Outcome::Failed(a.status, a.json.to_string()),
                Err(e) => Outcome::Failed(0, e.to_string()),
            }
        });
    }
    while let Some(outcome) = set.join_next().await {
        match outcome.unwrap() {
            Outcome::Created(id) => ledger.keys.push(id),
            Outcome::Wrapped(ct, pt) => ledger.ciphertexts.push((ct, pt)),
            Outcome::Failed(status, body) => {
                ledger.failed += 1;
                if status != 503 {
                    ledger.odd.push(format!("{status}: {body}"));
                }
            }
        }
    }
}

/// Polls `/readyz` until it answers `want`, for at most `limit`.
async fn readyz_becomes(http: &reqwest::Client, ops: &str, want: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if http::readyz(http, ops).await == want {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_fails_writes_then_recovers_and_loses_nothing() {
    let Some(mount) = Mount::tmpfs("16m") else {
        return;
    };
    let server = TestServer::start_in(
        mount.path.join("data"),
        Db::Sqlite,
        InitMethod::KeyFile,
        &[],
    )
    .await
    .unwrap();
    let http = http::client();
    let token = server.tenant_token("acme").await;
    let wrap_key = http::post(
        &http,
        &server.api,
        "/v1/kms/keys",
        &token,
        Some(&json!({"spec": "aes-256"})),
    )
    .await
    .unwrap()
    .field("key_id");
    let mut ledger = Ledger::default();
    let mut seq = 0;
    let mut wrong = Vec::new();

    // Healthy: every write succeeds.
    for _ in 0..10 {
        round(&http, &server.api, &token, &wrap_key, &mut seq, &mut ledger).await;
    }
    assert_eq!(ledger.failed, 0, "writes failed before the disk was full");

    // Full: the load goes on, the filler taking back any space freed, until writes
    // fail (at most 100 rounds).
    let filler = mount.path.join("filler");
    // SQLite reuses space already in its files, so some writes still commit: readyz is
    // polled after each round, and must have said 503 after a failed one.
    let (mut rounds, mut not_ready) = (0, 0);
    while ledger.failed < 8 && rounds < 100 {
        fill(&filler);
        let failed = ledger.failed;
        round(&http, &server.api, &token, &wrap_key, &mut seq, &mut ledger).await;
        if ledger.failed > failed && http::readyz(&http, &server.ops).await == 503 {
            not_ready += 1;
        }
        rounds += 1;
    }
    assert!(
        ledger.failed > 0,
        "the test is broken: no write failed with the filesystem full ({rounds} rounds)"
    );
    wrong.extend(
        ledger
            .odd
            .iter()
            .map(|o| format!("a write failed with {o}, not 503 unavailable")),
    );
    if not_ready == 0 && !readyz_becomes(&http, &server.ops, 503, Duration::from_secs(5)).await {
        wrong.push(format!(
            "/readyz kept answering {} while writes failed (disk full): it must answer 503",
            http::readyz(&http, &server.ops).await
        ));
    }

    // Space again: the server recovers by itself, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        let before = ledger.keys.len();
        round(&http, &server.api, &token, &wrap_key, &mut seq, &mut ledger).await;
        if ledger.keys.len() == before + 2 && http::readyz(&http, &server.ops).await == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !recovered {
        wrong.push(format!(
            "no recovery within 50 rounds after space was freed (readyz {})",
            http::readyz(&http, &server.ops).await
        ));
    }

    // After a restart, everything acknowledged is there and the log verifies.
    let server = server.restart().await;
    assert!(
        readyz_becomes(&http, &server.ops, 200, Duration::from_secs(10)).await,
        "the restarted server is not ready"
    );
    let mut lost = Tally::default();
    for key in &ledger.keys {
        let shown = http::get(&http, &server.api, &format!("/v1/kms/keys/{key}"), &token)
            .await
            .unwrap();
        if !shown.ok() {
            lost.add(format!("key {key}: {} {}", shown.status, shown.json));
        }
    }
    for (ciphertext, plaintext) in &ledger.ciphertexts {
        let body = json!({"ciphertext": ciphertext});
        match http::post(&http, &server.api, "/v1/kms/unwrap", &token, Some(&body)).await {
            Ok(a) if a.ok() && a.field("plaintext") == *plaintext => {}
            other => lost.add(format!("ciphertext {ciphertext}: {other:?}")),
        }
    }
    wrong.extend(lost.report("acknowledged keys and ciphertexts lost after the restart"));
    wrong.extend(verify_audit(&server).await);
    eprintln!(
        "acknowledged {} keys and {} ciphertexts; {} writes failed in {rounds} rounds \
         with the disk full",
        ledger.keys.len(),
        ledger.ciphertexts.len(),
        ledger.failed
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    drop(server);
    drop(mount);
}

/// The server's self-check and `coffer audit verify --online` against a checkpoint
/// signed now (so that it covers every entry); the problems found.
async fn verify_audit(server: &TestServer) -> Vec<String> {
    let mut wrong = Vec::new();
    let integrity = server.state.audit.as_ref().unwrap().verify_stored().await;
    wrong.extend(
        integrity
            .failures
            .iter()
            .map(|f| format!("self-check: {f}")),
    );
    let signed = http::post(
        &http::client(),
        &server.api,
        "/v1/audit/checkpoint",
        &server.admin_token,
        None,
    )
    .await
    .unwrap();
    if !signed.ok() {
        wrong.push(format!("signing a checkpoint: {signed:?}"));
    }
    let (code, out, err) = server.cli(&server.admin_token, &["audit", "verify", "--online"]);
    if code != 0 {
        wrong.push(format!("coffer audit verify --online: {code}: {out}{err}"));
    }
    wrong
}
