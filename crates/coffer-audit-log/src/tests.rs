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
    let store: Arc<dyn Store> = Arc::new(
        coffer_store_sql::SqlStore::open_sqlite(&dir.path().join("coffer.db"))
            .await
            .unwrap(),
    );
    let (log, _) = AuditLog::open(store.clone(), "test", Anchor::default())
        .await
        .unwrap();
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
