//! `coffer-bench audit-writer` counts only what was committed: after a short run with
//! 1 and 8 appenders, the log it leaves holds exactly the records each run reported
//! acknowledged, one row each, and the writer's own histograms were read.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_audit::ExportedEntry;
use coffer_core::Store;
use coffer_store_sql::SqlStore;

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("coffer-audit-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the benchmark (one second each for 1 and 8 appenders) and returns its rows.
/// `top` goes before the subcommand (`--database-url`), `sub` after it.
fn bench(json: &Path, top: &[&str], sub: &[&str]) -> Vec<serde_json::Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_coffer-bench"))
        .args(["--seconds", "1", "--json"])
        .arg(json)
        .args(top)
        .args(["audit-writer", "--appenders", "1,8"])
        .args(sub)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "coffer-bench failed:\n{stderr}");
    let text = std::fs::read_to_string(json).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    report["results"].as_array().unwrap().clone()
}

/// Stored entries per run, read from the store itself; request ids are unique.
async fn stored_per_run(store: &dyn Store) -> BTreeMap<u32, u64> {
    let mut per_run = BTreeMap::new();
    let mut ids = HashSet::new();
    let mut from = 0;
    loop {
        let rows = store.audit_entries(from, 10_000).await.unwrap();
        let Some((last, _)) = rows.last() else {
            return per_run;
        };
        from = last + 1;
        for (_, leaf) in rows {
            let entry: ExportedEntry = serde_json::from_str(&leaf).unwrap();
            let id = entry.entry.request_id;
            assert_eq!(entry.entry.op, "wrap");
            // The first 8 of 32 hex digits name the run (the bench's ledger).
            let run = u32::from_str_radix(&id[..8], 16).unwrap();
            assert!(ids.insert(id), "a record stored twice");
            *per_run.entry(run).or_insert(0) += 1;
        }
    }
}

async fn assert_counts_match(rows: &[serde_json::Value], store: &dyn Store) {
    let stored = stored_per_run(store).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(stored.len(), 2, "{stored:?}");
    for ((run, row), appenders) in (0u32..).zip(rows).zip([1, 8]) {
        assert_eq!(row["appenders"], appenders, "{row}");
        let acknowledged = row["acknowledged"].as_u64().unwrap();
        assert!(acknowledged > 0, "{row}");
        assert_eq!(stored[&run], acknowledged, "run {run}: {row}");
        assert_eq!(row["stored"], acknowledged, "{row}");
        assert_eq!(row["missing"], 0, "{row}");
        assert_eq!(row["unacknowledged_stored"], 0, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        // The measured window is part of what was acknowledged (warm-up is the rest).
        let measured = row["entries_per_second"].as_f64().unwrap();
        assert!(measured > 0.0 && measured <= acknowledged as f64, "{row}");
        // The writer's histograms reached the recorder.
        assert!(row["commits_per_second"].as_f64().unwrap() > 0.0, "{row}");
        let per_commit = row["entries_per_commit"].as_f64().unwrap();
        assert!((1.0..=f64::from(appenders)).contains(&per_commit), "{row}");
    }
}

#[tokio::test]
async fn every_acknowledged_record_is_in_the_sqlite_log() {
    let dir = scratch("sqlite");
    let data = dir.join("data");
    let rows = bench(
        &dir.join("audit.json"),
        &[],
        &["--data-dir", data.to_str().unwrap()],
    );
    let store = SqlStore::open_sqlite(&data.join("coffer.db"))
        .await
        .unwrap();
    assert_counts_match(&rows, &store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_acknowledged_record_is_in_the_postgresql_log() {
    let Some(url) = coffer_store_sql::testing::postgres_url("bench_audit").await else {
        return;
    };
    let dir = scratch("postgres");
    let rows = bench(&dir.join("audit.json"), &["--database-url", &url], &[]);
    let store = SqlStore::connect(&url).await.unwrap();
    assert_counts_match(&rows, &store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
