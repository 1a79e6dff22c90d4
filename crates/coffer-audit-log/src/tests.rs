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
