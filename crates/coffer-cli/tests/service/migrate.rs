//! `coffer migrate` (seed 003 §3, §9): legacy and Coffer-wrapped sidecars migrated
//! through a SIGKILL and a resume, the journal, dual read, cutover and sampled verify.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_api::crypto::{Batch, ItemResult, UnwrapRequest, WrapRequest};
use coffer_api::keys::CreateKeyRequest;
use coffer_api::{B64, B64Secret};
use coffer_client::Client;
use coffer_crypto::{SecretBytes, legacy};
use serde_json::{Value, json};

use super::harness::{TestServer, temp_dir};

pub(super) const LEGACY_KEY_HEX: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub(super) fn legacy_key() -> SecretBytes {
    SecretBytes::new(hex::decode(LEGACY_KEY_HEX).unwrap())
}

/// A `coffer migrate …` command against `server`, with `BLOB_KEY` set.
pub(super) fn coffer(server: &TestServer, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    command
        .env_clear()
        .env("COFFER_ADDR", &server.api)
        .env("COFFER_TOKEN", token)
        .env("BLOB_KEY", LEGACY_KEY_HEX)
        .args(args);
    command
}

pub(super) fn output(mut command: Command) -> (i32, String, String) {
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub(super) async fn encryption_key(client: &Client, alias: &str) -> String {
    client
        .create_key(&CreateKeyRequest {
            spec: "aes-256".into(),
            alias: Some(alias.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .key_id
}

/// Writes `count` sidecars (a third legacy AES-GCM, a third legacy AES-KW, a third
/// wrapped by Coffer under `coffer_key` version 1), each with a 32-byte data key;
/// answers the data keys by id.
async fn write_sidecars(
    dir: &Path,
    count: usize,
    client: &Client,
    coffer_key: &str,
) -> HashMap<String, Vec<u8>> {
    let mut keys = HashMap::new();
    let mut coffer_items = Vec::new();
    for i in 0..count {
        let id = format!("blob-{i:06}");
        let dek = SecretBytes::random(32).unwrap();
        keys.insert(id.clone(), dek.expose_secret().to_vec());
        match i % 3 {
            0 => {
                let wrapped =
                    legacy::seal_aes_gcm(&legacy_key(), dek.expose_secret(), b"").unwrap();
                let sidecar = json!({"key_id": "env:BLOB_KEY", "wrapped_dek": STANDARD.encode(wrapped), "dek_version": 0, "owner": "app"});
                std::fs::write(dir.join(format!("{id}.json")), sidecar.to_string()).unwrap();
            }
            1 => {
                let wrapped = legacy::wrap_aes_kw(&legacy_key(), &dek).unwrap();
                let sidecar = json!({"key_id": "file", "wrapped_dek": STANDARD.encode(wrapped), "legacy_alg": "aes-kw"});
                std::fs::write(dir.join(format!("{id}.json")), sidecar.to_string()).unwrap();
            }
            _ => coffer_items.push((id, dek)),
        }
    }
    for chunk in coffer_items.chunks(256) {
        let items = chunk
            .iter()
            .map(|(_, dek)| WrapRequest {
                key_id: coffer_key.into(),
                plaintext: B64Secret::new(dek.expose_secret().to_vec()),
                context: Default::default(),
                track_id: None,
            })
            .collect();
        let answers = client.wrap_batch(&Batch { items }).await.unwrap();
        for ((id, _), answer) in chunk.iter().zip(answers) {
            let ItemResult::Ok(answer) = answer else {
                panic!("wrap failed")
            };
            let sidecar = json!({"key_id": answer.key_id, "wrapped_dek": STANDARD.encode(&answer.ciphertext.0), "dek_version": answer.key_version});
            std::fs::write(dir.join(format!("{id}.json")), sidecar.to_string()).unwrap();
        }
    }
    keys
}

/// Every sidecar names `key_id` at `version` and unwraps (at Coffer) to its data key.
async fn assert_all_open(
    dir: &Path,
    client: &Client,
    key_id: &str,
    version: u32,
    keys: &HashMap<String, Vec<u8>>,
) {
    let mut sidecars = Vec::new();
    for (id, dek) in keys {
        let sidecar: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).unwrap())
                .unwrap();
        assert_eq!(sidecar["key_id"], key_id, "{id}: {sidecar}");
        assert_eq!(sidecar["dek_version"], version, "{id}");
        assert!(sidecar.get("legacy_alg").is_none(), "{id}");
        let wrapped = STANDARD
            .decode(sidecar["wrapped_dek"].as_str().unwrap())
            .unwrap();
        sidecars.push((id.clone(), wrapped, dek.clone()));
    }
    for chunk in sidecars.chunks(256) {
        let items = chunk
            .iter()
            .map(|(_, wrapped, _)| UnwrapRequest {
                attestation: None,
                ciphertext: B64(wrapped.clone()),
                context: Default::default(),
            })
            .collect();
        let answers = client.unwrap_batch(&Batch { items }).await.unwrap();
        for ((id, _, dek), answer) in chunk.iter().zip(answers) {
            let ItemResult::Ok(answer) = answer else {
                panic!("{id} does not unwrap: {answer:?}")
            };
            assert_eq!(answer.plaintext.expose_secret(), dek.as_slice(), "{id}");
        }
    }
}

/// The journal's rows: (id, state, attempts).
pub(super) async fn journal_rows(path: &Path) -> Vec<(String, String, i64)> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = sqlx::query_as("SELECT id, state, attempts FROM items ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

async fn done_count(path: &Path) -> i64 {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
        return 0;
    };
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM items WHERE state = 'done'")
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    pool.close().await;
    count
}

/// Migrates `count` sidecars, SIGKILLs the run once a quarter is done, resumes it, and
/// checks that every data key still opens and the journal holds each sidecar once.
async fn migrate_through_a_kill(count: usize) {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let client = server.client(&token);
    let key_id = encryption_key(&client, "blobs").await;
    let dir = temp_dir().join("sidecars");
    std::fs::create_dir_all(&dir).unwrap();
    let keys = write_sidecars(&dir, count, &client, &key_id).await;
    let rotated = client.rotate_key(&key_id).await.unwrap();
    assert_eq!(rotated.version, 2);
    let journal = dir.with_file_name("journal.db");
    let dir_arg = dir.display().to_string();
    let journal_arg = journal.display().to_string();
    let args = [
        "migrate",
        "sidecars",
        "--from",
        &dir_arg,
        "--legacy-key-env",
        "BLOB_KEY",
        "--key",
        "alias/blobs",
        "--journal",
        &journal_arg,
        "--concurrency",
        "2",
        "--no-fsync",
    ];

    let started = Instant::now();
    let mut child = coffer(&server, &token, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let quarter = i64::try_from(count / 4).unwrap();
    while done_count(&journal).await < quarter {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = done_count(&journal).await;
    assert!(
        killed_at < i64::try_from(count).unwrap(),
        "killed after the end"
    );
    let before_kill = started.elapsed();

    let resumed = Instant::now();
    let (code, stdout, stderr) = output(coffer(&server, &token, &args));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("already final"), "{stderr}");
    eprintln!(
        "migrate {count}: killed after {:.1}s at {killed_at} done, resumed run {:.1}s: {}",
        before_kill.as_secs_f64(),
        resumed.elapsed().as_secs_f64(),
        stdout.trim()
    );
    assert!(
        stdout.contains(&format!("journal: {count} migrated, 0 skipped, 0 failed")),
        "{stdout}"
    );

    let rows = journal_rows(&journal).await;
    assert_eq!(rows.len(), count, "one journal row per sidecar");
    for (id, state, attempts) in &rows {
        assert_eq!(
            (state.as_str(), *attempts),
            ("done", 1),
            "{id}: migrated exactly once"
        );
    }
    assert_all_open(&dir, &client, &key_id, 2, &keys).await;

    // A third run finds nothing to do and rewrites nothing.
    let (code, stdout, _) = output(coffer(&server, &token, &args));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("this run: 0 migrated, 0 skipped, 0 failed"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_migrate_through_a_sigkill_and_resume() {
    let count = std::env::var("COFFER_MIGRATE_TEST_COUNT").map_or(6_000, |n| n.parse().unwrap());
    migrate_through_a_kill(count).await;
}

/// The figure: 100,000 sidecars. Run with `--ignored` (minutes on two cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "100k sidecars take minutes; CI runs the same test with 6,000"]
async fn a_hundred_thousand_sidecars_migrate_through_a_sigkill_and_resume() {
    migrate_through_a_kill(100_000).await;
}
