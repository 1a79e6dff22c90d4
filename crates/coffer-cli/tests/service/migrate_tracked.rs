//! `coffer migrate sidecars --track`: each legacy data key registered as a tracked data
//! key under its sidecar's id, so the rotation saga rewraps it server side; a run that
//! registered keys but was killed before its journal recorded them is finished by the
//! next run, each sidecar counted once and each key registered once (SQLite and
//! PostgreSQL).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_api::rotation::StartRotationRequest;
use coffer_client::Client;
use coffer_crypto::{SecretBytes, legacy};
use coffer_server::startup::InitMethod;
use serde_json::{Value, json};

use super::api::unwrap_request;
use super::harness::{Db, TestServer, temp_dir};
use super::migrate::{coffer, encryption_key, journal_rows, legacy_key, output};
use super::rotation::settle;

/// `count` legacy AES-GCM sidecars in `dir`; their data keys by id.
fn legacy_sidecars(dir: &Path, count: usize) -> HashMap<String, Vec<u8>> {
    let mut keys = HashMap::new();
    for i in 0..count {
        let id = format!("blob-{i:04}");
        let dek = SecretBytes::random(32).unwrap();
        let wrapped = legacy::seal_aes_gcm(&legacy_key(), dek.expose_secret(), b"").unwrap();
        let sidecar = json!({"key_id": "env:BLOB_KEY", "wrapped_dek": STANDARD.encode(wrapped), "owner": "app"});
        std::fs::write(dir.join(format!("{id}.json")), sidecar.to_string()).unwrap();
        keys.insert(id, dek.expose_secret().to_vec());
    }
    keys
}

fn read(dir: &Path, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{id}.json"))).unwrap()).unwrap()
}

/// Every sidecar names its track id and holds the tracked copy. (Nothing is unwrapped
/// here: an unwrap is untracked use, which the rotation below must not see.)
async fn all_tracked(dir: &Path, client: &Client, keys: &HashMap<String, Vec<u8>>) {
    for id in keys.keys() {
        let sidecar = read(dir, id);
        assert_eq!(sidecar["track_id"], id.as_str(), "{sidecar}");
        assert_eq!(sidecar["owner"], "app", "other fields are kept");
        let tracked = client.tracked(id).await.unwrap();
        assert_eq!(
            sidecar["wrapped_dek"],
            STANDARD.encode(&tracked.ciphertext.0),
            "{id}"
        );
        assert_eq!(sidecar["dek_version"], tracked.key_version, "{id}");
    }
}

async fn tracked_count(client: &Client, key: &str) -> u64 {
    let refs = client.references(key).await.unwrap();
    refs.versions.iter().map(|v| v.tracked).sum()
}

async fn migrate_with_track(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let client = server.client(&token);
    let key_id = encryption_key(&client, "blobs").await;
    let root = temp_dir();
    let dir = root.join("sidecars");
    let originals = root.join("originals");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&originals).unwrap();
    let count = 40;
    let keys = legacy_sidecars(&dir, count);
    for id in keys.keys() {
        let name = format!("{id}.json");
        std::fs::copy(dir.join(&name), originals.join(&name)).unwrap();
    }
    let journal = root.join("journal.db");
    let (dir_arg, journal_arg) = (dir.display().to_string(), journal.display().to_string());
    let args = [
        "migrate",
        "sidecars",
        "--from",
        &dir_arg,
        "--legacy-key-env",
        "BLOB_KEY",
        "--key",
        "alias/blobs",
        "--context-id",
        "blob",
        "--journal",
        &journal_arg,
        "--batch-size",
        "8",
        "--no-fsync",
        "--track",
    ];

    let (code, stdout, stderr) = output(coffer(&server, &token, &args));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("journal: {count} migrated, 0 skipped, 0 failed")),
        "{stdout}"
    );
    all_tracked(&dir, &client, &keys).await;
    assert_eq!(tracked_count(&client, &key_id).await, count as u64);
    let first: HashMap<String, Value> =
        keys.keys().map(|id| (id.clone(), read(&dir, id))).collect();

    // A run killed after Coffer registered ten keys and before its journal recorded
    // them: their rows are gone and their files are the legacy ones again.
    let lost: Vec<&String> = keys.keys().take(10).collect();
    let url = format!("sqlite://{}", journal.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    for id in &lost {
        sqlx::query("DELETE FROM items WHERE id = ?")
            .bind(id.as_str())
            .execute(&pool)
            .await
            .unwrap();
        let name = format!("{id}.json");
        std::fs::copy(originals.join(&name), dir.join(&name)).unwrap();
    }
    pool.close().await;
    let (code, stdout, stderr) = output(coffer(&server, &token, &args));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("this run: 10 migrated, 0 skipped, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("journal: {count} migrated, 0 skipped, 0 failed")),
        "{stdout}"
    );
    let rows = journal_rows(&journal).await;
    assert_eq!(rows.len(), count);
    assert!(
        rows.iter()
            .all(|(_, state, attempts)| state == "done" && *attempts == 1),
        "{rows:?}"
    );
    // Registered once: the same rows, the same envelopes in the sidecars.
    assert_eq!(tracked_count(&client, &key_id).await, count as u64);
    for id in &lost {
        assert_eq!(
            read(&dir, id),
            first[*id],
            "{id} got the stored envelope back"
        );
    }

    // The journal is bound to tracking: a resume without --track is refused.
    let untracked: Vec<&str> = args.iter().copied().filter(|a| *a != "--track").collect();
    let (code, _, stderr) = output(coffer(&server, &token, &untracked));
    assert_eq!(code, 1);
    assert!(stderr.contains("tracking"), "{stderr}");

    // Tracked use only: the rotation starts without `retire_untracked`, and its saga
    // rewraps every migrated key to version 2, where each opens to its legacy key.
    let refs = client.references(&key_id).await.unwrap();
    let kinds: Vec<&str> = refs.versions[0]
        .principals
        .iter()
        .map(|p| p.kind.as_str())
        .collect();
    assert_eq!(kinds, ["tracked-datakey"], "{refs:?}");
    let view = client
        .start_rotation(&StartRotationRequest {
            key_id: "alias/blobs".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let done = settle(&client, view).await;
    assert_eq!(
        (done.status.as_str(), done.tracked_remaining),
        ("completed", 0),
        "{done:?}"
    );
    for (id, dek) in &keys {
        let tracked = client.tracked(id).await.unwrap();
        assert_eq!(tracked.key_version, 2);
        let opened = client
            .unwrap(&unwrap_request(&tracked.ciphertext, &[("blob", id)]))
            .await
            .unwrap();
        assert_eq!(opened.plaintext.expose_secret(), dek.as_slice(), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sidecars_track_registers_each_key_once_sqlite() {
    migrate_with_track(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_sidecars_track_registers_each_key_once_postgres() {
    migrate_with_track(Db::Postgres).await;
}
