use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Journal, continuation};
use crate::SqlStore;

/// A store on a new database file in `dir`, the file, and its journal.
async fn open_in(dir: &std::path::Path) -> (std::path::PathBuf, SqlStore, Arc<Journal>) {
    let database = dir.join("coffer.db");
    let store = SqlStore::open_sqlite(&database).await.unwrap();
    let journal = store.journal.clone().unwrap();
    (database, store, journal)
}

/// Rows in the store's audit table.
async fn stored(store: &SqlStore) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_entries")
        .fetch_one(&store.reader)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_alternate_between_the_two_files_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (database, store, journal) = open_in(dir.path()).await;
    let switch_at = 16 << 10;
    journal.switch_at.store(switch_at, Ordering::Relaxed);
    let entry = coffer_core::testing::fixtures::audit_record(None).audit;
    let (mut switches, mut current) = (0, journal.turn().current);
    for _ in 0..300 {
        store.append_batch(&vec![entry.clone(); 10]).await.unwrap();
        let turn = journal.turn();
        if turn.current != current {
            (switches, current) = (switches + 1, turn.current);
        }
        // A file's records pass the threshold only while the other still waits
        // for the database; with the drain keeping up, by one batch at most.
        assert!(turn.end < 4 * switch_at, "{} bytes of records", turn.end);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(switches >= 4, "{switches} switches");
    // Stopped without draining: the entries still waiting come back at the open.
    journal.drainer.abort();
    drop(journal);
    store.writer.close().await;
    store.reader.close().await;
    drop(store);
    let store = SqlStore::open_sqlite(&database).await.unwrap();
    assert_eq!(stored(&store).await, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_of_a_live_database_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (database, store, journal) = open_in(dir.path()).await;
    // The entries stay in the journal, as they do between two drains.
    journal.drainer.abort();
    let batch = vec![coffer_core::testing::fixtures::audit_record(None).audit; 10];
    store.append_batch(&batch).await.unwrap();
    let files = || super::journal::paths_beside(&database).map(|f| std::fs::read(f).unwrap());
    let journaled = files();

    match SqlStore::open_sqlite(&database).await {
        Err(coffer_core::StoreError::Unavailable(why)) => assert!(
            why.contains("in use by another Coffer process")
                && why.contains(&format!("pid {}", std::process::id())),
            "{why}"
        ),
        other => panic!("opened beside its owner: {:?}", other.err()),
    }
    assert!(files() == journaled, "the journal's files are as they were");
    assert_eq!(
        stored(&store).await,
        0,
        "nothing recovered behind the owner"
    );

    let appended = store.append_batch(&batch).await.unwrap();
    assert_eq!(appended.first, 10, "the owner goes on");
    store.close().await;
    let closed = store.append_batch(&batch).await;
    assert!(
        closed.is_err(),
        "a closed store writes no more to the journal"
    );
    let reopened = SqlStore::open_sqlite(&database).await.unwrap();
    assert_eq!(stored(&reopened).await, 20);
}

fn rows(indices: &[u64]) -> Vec<(u64, String)> {
    indices.iter().map(|i| (*i, format!("leaf {i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_refused_while_too_many_wait_for_a_database_that_refuses_them() {
    use coffer_core::store::AuditStore;
    use sqlx::Executor;

    let dir = tempfile::tempdir().unwrap();
    let (_, store, journal) = open_in(dir.path()).await;
    journal.max_pending.store(30, Ordering::Relaxed);
    let refuse = "CREATE TRIGGER refuse BEFORE INSERT ON audit_entries \
                  BEGIN SELECT RAISE(ABORT, 'refused'); END";
    store.writer.execute(refuse).await.unwrap();
    let batch = vec![coffer_core::testing::fixtures::audit_record(None).audit; 10];
    for _ in 0..3 {
        store.append_batch(&batch).await.unwrap();
    }
    tokio::time::sleep(super::DRAIN_INTERVAL * 3).await;
    assert_eq!(store.head.pending_len(), 30, "the database took none");
    let refused = store.append_batch(&batch).await;
    assert!(
        matches!(&refused, Err(coffer_core::StoreError::Unavailable(why)) if why.contains("journal is full")),
        "{refused:?}"
    );
    assert!(journal.is_broken(), "readiness says so");
    assert_eq!(store.head.pending_len(), 30, "the refused batch is nowhere");

    store.writer.execute("DROP TRIGGER refuse").await.unwrap();
    store.settle_audit().await.unwrap();
    let appended = store.append_batch(&batch).await.unwrap();
    assert_eq!(appended.first, 30, "the log goes on without a gap");
    assert!(!journal.is_broken());
}

#[test]
fn recovery_takes_what_follows_the_stored_log_and_stops_at_a_stale_tail() {
    assert_eq!(
        continuation(3, rows(&[1, 2, 3, 4, 5, 2])),
        Ok(rows(&[3, 4, 5]))
    );
    assert_eq!(continuation(6, rows(&[1, 2, 3, 4, 5])), Ok(vec![]));
    assert_eq!(continuation(0, rows(&[])), Ok(vec![]));
}

#[test]
fn recovery_refuses_a_journal_that_skips_entries() {
    assert!(continuation(3, rows(&[5, 6])).is_err());
    assert!(continuation(3, rows(&[1, 2, 4])).is_err());
}
