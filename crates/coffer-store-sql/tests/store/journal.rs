//! SQLite's audit journal: hot-path batches are durable in the journal before their
//! rows reach the table. Checked against a SIGKILL at any moment (every acknowledged
//! entry is in the table after the next open) and against state changes racing the
//! appends (the table never has a gap).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffer_audit::entry::{ExportedEntry, hex};
use coffer_audit::merkle::leaf_hash;
use coffer_core::store::{AuditStore, TenantStore};
use coffer_core::testing::fixtures;
use coffer_store_sql::SqlStore;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::backends::{acks_until_sigkill, temp_dir};

/// Entries per appended batch in these tests.
const BATCH: usize = 7;

/// A connection of the test's own to the database file, beside the store's.
async fn own_connection(database: &Path) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap()
}

/// Reads the table alone (not the journal).
async fn table_rows(database: &Path) -> Vec<(i64, String)> {
    let pool = own_connection(database).await;
    let rows = sqlx::query_as("SELECT idx, leaf FROM audit_entries ORDER BY idx")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

/// The problems of `rows` as a log from index 0: gaps, and links that do not hold.
fn chain_problems(rows: &[(i64, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut prev = [0u8; 32];
    for (position, (index, leaf)) in rows.iter().enumerate() {
        let entry: ExportedEntry = serde_json::from_str(leaf).unwrap();
        if *index != position as i64 || entry.index != position as u64 {
            problems.push(format!("entry {position} is at index {index}"));
            break;
        }
        if entry.prev != hex(&prev) {
            problems.push(format!("entry {position} does not link to the one before"));
        }
        prev = leaf_hash(leaf.as_bytes());
    }
    problems
}

/// Child side of the SIGKILL test: does nothing unless `COFFER_JOURNAL_CRASH_DB` is
/// set; then appends batches forever from four tasks, with a state change (a tenant
/// created) every tenth batch, printing `ACK <first> <count>` once a batch returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_crash_child() {
    let Ok(database) = std::env::var("COFFER_JOURNAL_CRASH_DB") else {
        return;
    };
    let store = Arc::new(SqlStore::open_sqlite(Path::new(&database)).await.unwrap());
    let mut tasks = Vec::new();
    for task in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let entry = fixtures::audit_record(None).audit;
            for round in 0u64.. {
                let batch = vec![entry.clone(); BATCH];
                let appended = store.append_audit(&batch).await.unwrap();
                {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {} {}", appended.first, appended.leaves.len()).unwrap();
                    out.flush().unwrap();
                }
                if round % 10 == 0 {
                    let tenant =
                        fixtures::tenant(&format!("t{}-{task}-{round}", std::process::id()));
                    let record = fixtures::audit_record(Some(tenant.id));
                    store
                        .create_tenant(&tenant, &[1; 32], &record)
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// One child run killed after `acks` acknowledged batches: the highest acknowledged
/// index, and how many acknowledged entries were in the journal alone at the kill.
async fn kill_after(database: &Path, acks: usize) -> (u64, usize) {
    let acked: Vec<u64> = acks_until_sigkill(
        "store::journal::journal_crash_child",
        &[("COFFER_JOURNAL_CRASH_DB", database.display().to_string())],
        acks,
    )
    .iter()
    .map(|ack| {
        let (first, count) = ack.split_once(' ').unwrap();
        first.parse::<u64>().unwrap() + count.parse::<u64>().unwrap() - 1
    })
    .collect();
    assert_eq!(acked.len(), acks, "the child acknowledged fewer batches");
    let last = *acked.iter().max().unwrap();
    let in_table = table_rows(database).await.len() as u64;
    (
        last,
        usize::try_from((last + 1).saturating_sub(in_table)).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_audit_entries_survive_sigkill_before_they_reach_the_table() {
    let database = temp_dir().join("coffer.db");
    let mut journal_only = Vec::new();
    let mut last = 0;
    for round in 0..3 {
        let (acked, only) = kill_after(&database, 200 * (round + 1)).await;
        last = last.max(acked);
        journal_only.push(only);
        // Reopening writes the journal's entries into the table.
        let store = SqlStore::open_sqlite(&database).await.unwrap();
        store.close().await;
        let rows = table_rows(&database).await;
        assert!(
            rows.len() as u64 > last,
            "round {round}: entry {last} was acknowledged; the table has {} entries",
            rows.len()
        );
        let problems = chain_problems(&rows);
        assert!(problems.is_empty(), "round {round}: {problems:?}");
    }
    eprintln!("acknowledged entries in the journal alone at each kill: {journal_only:?}");
    // Killed right after an acknowledgement, the newest entries are almost always in
    // the journal alone (the table takes them every 50 ms): otherwise this test did
    // not test recovery.
    assert!(
        journal_only.iter().any(|n| *n > 0),
        "no run was killed with entries in the journal alone: {journal_only:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_racing_journal_appends_never_leave_a_gap_in_the_table() {
    let dir: PathBuf = temp_dir();
    let database = dir.join("coffer.db");
    let store = Arc::new(SqlStore::open_sqlite(&database).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for task in 0..3 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let entry = fixtures::audit_record(None).audit;
            let mut round = 0;
            while !stop.load(Ordering::Acquire) {
                store
                    .append_audit(&vec![entry.clone(); BATCH])
                    .await
                    .unwrap();
                if task == 0 {
                    let tenant = fixtures::tenant(&format!("race-{round}"));
                    let record = fixtures::audit_record(Some(tenant.id));
                    store
                        .create_tenant(&tenant, &[1; 32], &record)
                        .await
                        .unwrap();
                }
                round += 1;
            }
        }));
    }
    let mut looks = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        let rows = table_rows(&database).await;
        let problems = chain_problems(&rows);
        assert!(
            problems.is_empty(),
            "the table read at {} rows: {problems:?}",
            rows.len()
        );
        // Readers of the store see the table and the journal as one log.
        let all = store.audit_entries(0, u64::MAX >> 1).await.unwrap();
        let all: Vec<(i64, String)> = all.into_iter().map(|(i, l)| (i as i64, l)).collect();
        assert!(all.len() >= rows.len());
        let problems = chain_problems(&all);
        assert!(
            problems.is_empty(),
            "the store read at {} rows: {problems:?}",
            all.len()
        );
        looks += 1;
        tokio::time::sleep(Duration::from_millis(7)).await;
    }
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.await.unwrap();
    }
    let total = store.audit_entries(0, u64::MAX >> 1).await.unwrap().len();
    store.close().await;
    assert_eq!(
        table_rows(&database).await.len(),
        total,
        "close writes the journal into the table"
    );
    assert!(
        looks >= 3 && total > 1_000,
        "{looks} looks at {total} entries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_does_not_continue_the_table_is_kept_aside_and_the_store_opens() {
    let dir = temp_dir();
    let database = dir.join("coffer.db");
    let entry = fixtures::audit_record(None).audit;
    let journal_files = ["0", "1"].map(|n| dir.join(format!("coffer.db-audit-journal.{n}")));
    // Entries 0..14, then 14..28 with a copy of the journal taken before the graceful
    // close empties it: put back, it is the journal of a crash, holding 14..28 alone.
    let store = SqlStore::open_sqlite(&database).await.unwrap();
    store.append_audit(&vec![entry.clone(); 14]).await.unwrap();
    store.close().await;
    let store = SqlStore::open_sqlite(&database).await.unwrap();
    store.append_audit(&vec![entry.clone(); 14]).await.unwrap();
    let copies: Vec<Vec<u8>> = journal_files
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    store.close().await;
    for (file, bytes) in journal_files.iter().zip(&copies) {
        std::fs::write(file, bytes).unwrap();
    }
    // The table loses entries 10.. while stopped: the journal no longer continues it.
    let pool = own_connection(database.as_path()).await;
    sqlx::query("DELETE FROM audit_entries WHERE idx >= 10")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = SqlStore::open_sqlite(&database).await.unwrap();
    assert_eq!(store.audit_entries(0, 100).await.unwrap().len(), 10);
    let appended = store
        .append_audit(std::slice::from_ref(&entry))
        .await
        .unwrap();
    assert_eq!(appended.first, 10, "the log goes on from the table");
    store.close().await;
    let aside: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.starts_with("coffer.db-audit-journal.") && name.contains(".unrecovered-")
        })
        .collect();
    assert_eq!(
        aside.len(),
        2,
        "the journal's files are kept as evidence: {aside:?}"
    );
    let kept: u64 = aside
        .iter()
        .map(|name| std::fs::metadata(dir.join(name)).unwrap().len())
        .sum();
    assert!(kept > 0, "{aside:?} are empty");
}
