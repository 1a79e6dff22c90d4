use super::*;

fn entry(n: usize) -> AuditEntry {
    AuditEntry {
        at: 0,
        tenant: "-".into(),
        principal: "test".into(),
        op: "wrap".into(),
        key: None,
        version: None,
        outcome: "ok".into(),
        request_id: format!("r{n}"),
        detail: None,
    }
}

fn pending(size: usize) -> Pending {
    let (done, _) = oneshot::channel();
    Pending {
        entries: (0..size).map(entry).collect(),
        done,
    }
}

#[tokio::test]
async fn a_group_goes_whole_into_one_commit() {
    let (tx, mut rx) = mpsc::channel(16);
    for size in [1, 256, 3] {
        tx.send(pending(size)).await.unwrap();
    }
    let (entries, waiters) = gather(rx.recv().await.unwrap(), &mut rx);
    assert_eq!((entries.len(), waiters.len()), (260, 3));

    // Past BATCH entries the commit closes, but never inside a group.
    for size in [1000, 256, 256, 1] {
        tx.send(pending(size)).await.unwrap();
    }
    let (first, _) = gather(rx.recv().await.unwrap(), &mut rx);
    assert_eq!(
        first.len(),
        1256,
        "the group that crosses BATCH is not split"
    );
    let (rest, _) = gather(rx.recv().await.unwrap(), &mut rx);
    assert_eq!(rest.len(), 257);
}

/// A log over a real SQLite store at `dir`/coffer.db, and the store.
async fn sqlite_log(dir: &std::path::Path) -> (Arc<dyn Store>, Arc<AuditLog>) {
    let store: Arc<dyn Store> = Arc::new(
        coffer_store_sql::SqlStore::open_sqlite(&dir.join("coffer.db"))
            .await
            .unwrap(),
    );
    let (log, _) = AuditLog::open(store.clone(), "test", Anchor::default())
        .await
        .unwrap();
    (store, log)
}

fn marked(request_id: &str) -> AuditEntry {
    AuditEntry {
        request_id: request_id.into(),
        op: "rotation.anchor_request".into(),
        ..entry(0)
    }
}

/// `last_index_of` reads the log from its end a chunk at a time: it finds an entry many
/// chunks back, the newest of two matches, and one stored past the followed tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_matching_entry_is_found_from_the_end_of_a_log_of_several_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = sqlite_log(dir.path()).await;
    let chunk = follow::READ_CHUNK as usize;
    log.record_group(vec![entry(0), marked("rotation:a")])
        .await
        .unwrap();
    for batch in 0..(2 * chunk + chunk / 2) / 1000 {
        let entries = (0..1000).map(|n| entry(batch * 1000 + n)).collect();
        log.record_group(entries).await.unwrap();
    }
    assert!(log.size() > 2 * follow::READ_CHUNK);
    assert_eq!(
        log.last_index_of("rotation:a", "rotation.anchor_request")
            .await,
        Some(1)
    );
    assert_eq!(log.last_index_of("rotation:a", "wrap").await, None);
    assert_eq!(
        log.last_index_of("rotation:b", "rotation.anchor_request")
            .await,
        None
    );

    log.record(marked("rotation:a")).await.unwrap();
    let newer = log.size() - 1;
    assert_eq!(
        log.last_index_of("rotation:a", "rotation.anchor_request")
            .await,
        Some(newer)
    );

    // Written by another writer, not yet followed by this log.
    let appended = store.append_audit(&[marked("rotation:b")]).await.unwrap();
    assert_eq!(log.size(), appended.first, "not followed yet");
    assert_eq!(
        log.last_index_of("rotation:b", "rotation.anchor_request")
            .await,
        Some(appended.first)
    );
}

/// The self-check reads the log a chunk at a time: a log of several chunks checks clean,
/// and a row changed or removed in a later chunk is found, with the rows after a gap
/// still counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_check_reads_a_log_of_several_chunks_and_finds_a_change_in_a_later_one() {
    use sqlx::Executor;

    let dir = tempfile::tempdir().unwrap();
    let (store, log) = sqlite_log(dir.path()).await;
    let path = dir.path().join("coffer.db");
    let chunk = follow::READ_CHUNK as usize;
    for batch in 0..(2 * chunk + chunk / 2) / 1000 {
        let entries = (0..1000).map(|n| entry(batch * 1000 + n)).collect();
        log.record_group(entries).await.unwrap();
    }
    let size = log.size();
    let clean = log.verify_stored().await;
    assert_eq!((clean.entries, clean.failures.clone()), (size, vec![]));

    // Every row in the table, then changed behind the log's back.
    store.settle_audit().await.unwrap();
    let url = format!("sqlite://{}", path.display());
    let db = sqlx::SqlitePool::connect(&url).await.unwrap();
    let changed = follow::READ_CHUNK + 5_000;
    db.execute(format!("UPDATE audit_entries SET leaf = 'x' WHERE idx = {changed}").as_str())
        .await
        .unwrap();
    let found = log.verify_stored().await;
    assert!(
        found
            .failures
            .contains(&format!("audit entry {changed} does not parse")),
        "{:?}",
        found.failures
    );
    assert!(
        found.failures.contains(&format!(
            "stored audit entry {changed} differs from the one read before"
        )),
        "{:?}",
        found.failures
    );

    let removed = 2 * follow::READ_CHUNK + 7;
    db.execute(format!("DELETE FROM audit_entries WHERE idx = {removed}").as_str())
        .await
        .unwrap();
    let found = log.verify_stored().await;
    assert_eq!(found.entries, size - 1, "the rows past the gap are counted");
    assert!(
        found.failures.contains(&format!(
            "audit entry {removed} is missing or out of order (found {})",
            removed + 1
        )),
        "{:?}",
        found.failures
    );
    assert!(
        found.failures.contains(&format!(
            "the stored log has {removed} entries; {size} were read from it before"
        )),
        "{:?}",
        found.failures
    );
}

/// The writer does not run on the request workers: an entry commits, and its request
/// is answered, while the only worker is busy. (On the workers, the commit waited for
/// the busy task to end.)
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_entry_commits_while_every_request_worker_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (_, log) = sqlite_log(dir.path()).await;
    log.record(entry(0)).await.unwrap();

    // The test's own body runs outside the workers; this task takes the one worker.
    let (busy_tx, busy_rx) = std::sync::mpsc::channel();
    let busy = tokio::spawn(async move {
        busy_tx.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(3));
    });
    busy_rx.recv().unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(2), log.record(entry(1)))
        .await
        .expect("committed while the worker was busy")
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(log.size(), 2);
    busy.await.unwrap();
}
