//! `Store` conformance cases for rotation records: the saga's persisted state, the
//! start from the primary only, and listing.

use std::sync::Arc;

use crate::ids::{KeyId, TenantId};
use crate::saga::{Status, Step};
use crate::store::{AllowListChange, RotationFilter, RotationRecord, Store, StoreError};
use crate::testing::fixtures::{self, T0};

use super::store::{new_key, new_tenant};

type S = Arc<dyn Store>;

/// Rotation records keep the saga's fields; running ones are listed for the worker;
/// the compare-and-set covers the pause, so a driver cannot undo a resume's `until`.
pub async fn rotation_records_save_the_saga_state(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let mut record = RotationRecord {
        id: "r1".into(),
        tenant: t.id,
        key: key.id,
        step: Step::CreateVersion,
        status: Status::Running,
        started_at: T0,
        from_version: 1,
        to_version: None,
        failures: 0,
        error: None,
        paused_after: Some(Step::Stage),
        started_by: "tok-1".into(),
        allow_list: Some(AllowListChange {
            from_policy: 3,
            measurements: ["11".repeat(48).parse().unwrap()].into(),
        }),
        updated_at: T0,
    };
    store
        .start_rotation(&record, &fixtures::audit_record(Some(t.id)))
        .await
        .unwrap();
    assert_eq!(
        store.get_rotation(t.id, "r1").await.unwrap(),
        Some(record.clone())
    );
    let before = record.clone();
    record.step = Step::DrainInflight;
    record.to_version = Some(2);
    record.failures = 1;
    record.error = Some("drain timed out".into());
    record.paused_after = None;
    let audit = fixtures::audit_record(Some(t.id));
    store.save_rotation(&before, &record, &audit).await.unwrap();
    // A second driver still holding the old record loses the compare-and-set.
    assert!(matches!(
        store.save_rotation(&before, &record, &audit).await,
        Err(StoreError::Conflict(_))
    ));
    // So does one that saw the same step and status but another pause.
    let stale = RotationRecord {
        paused_after: Some(Step::RetireOld),
        ..record.clone()
    };
    assert!(matches!(
        store.save_rotation(&stale, &record, &audit).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_rotation(t.id, "r1").await.unwrap(),
        Some(record.clone())
    );
    assert!(record.switched());
    assert_eq!(store.running_rotations().await.unwrap(), vec![record]);
}

/// A rotation starts only from the key's primary version: a start recorded with
/// another `from_version` (the primary moved after the caller read it) is refused
/// whole, and leaves the key free for a start from the real primary.
pub async fn a_rotation_starts_only_from_the_primary(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let record = |id: &str, from_version: u32| RotationRecord {
        id: id.into(),
        tenant: t.id,
        key: key.id,
        step: Step::CreateVersion,
        status: Status::Running,
        started_at: T0,
        from_version,
        to_version: None,
        failures: 0,
        error: None,
        paused_after: None,
        started_by: "-".into(),
        allow_list: None,
        updated_at: T0,
    };
    let audit = fixtures::audit_record(Some(t.id));
    let audited = || async { store.audit_entries(0, 100_000).await.unwrap().len() };
    let entries = audited().await;
    let err = store
        .start_rotation(&record("stale", 2), &audit)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.get_rotation(t.id, "stale").await.unwrap(), None);
    assert_eq!(audited().await, entries, "no audit entry");
    store
        .start_rotation(&record("fresh", 1), &audit)
        .await
        .unwrap();
    assert!(store.get_rotation(t.id, "fresh").await.unwrap().is_some());
}

/// Listing is per tenant, newest first, filtered by key and status.
pub async fn rotations_list_by_tenant_key_and_status(store: S) {
    let t = new_tenant(&store, "acme").await;
    let other_tenant = new_tenant(&store, "globex").await;
    let key = new_key(&store, t.id, &[]).await;
    let second = new_key(&store, t.id, &[]).await;
    let theirs = new_key(&store, other_tenant.id, &[]).await;
    let record = |id: &str, tenant: TenantId, key: KeyId, at: i64| RotationRecord {
        id: id.into(),
        tenant,
        key,
        step: Step::CreateVersion,
        status: Status::Running,
        started_at: crate::Timestamp::from_millis(at),
        from_version: 1,
        to_version: None,
        failures: 0,
        error: None,
        paused_after: None,
        started_by: "-".into(),
        allow_list: None,
        updated_at: crate::Timestamp::from_millis(at),
    };
    let audit = fixtures::audit_record(Some(t.id));
    let first = record("a", t.id, key.id, 1_000);
    store.start_rotation(&first, &audit).await.unwrap();
    let done = RotationRecord {
        step: Step::Anchor,
        status: Status::Completed,
        ..first.clone()
    };
    store.save_rotation(&first, &done, &audit).await.unwrap();
    let running = record("b", t.id, key.id, 2_000);
    store.start_rotation(&running, &audit).await.unwrap();
    let elsewhere = record("c", t.id, second.id, 3_000);
    store.start_rotation(&elsewhere, &audit).await.unwrap();
    store
        .start_rotation(
            &record("d", other_tenant.id, theirs.id, 4_000),
            &fixtures::audit_record(Some(other_tenant.id)),
        )
        .await
        .unwrap();
    let ids = |rows: Vec<RotationRecord>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let list = |filter| store.list_rotations(t.id, filter);
    assert_eq!(
        ids(list(RotationFilter::default()).await.unwrap()),
        ["c", "b", "a"]
    );
    let by_key = RotationFilter {
        key: Some(key.id),
        ..Default::default()
    };
    assert_eq!(ids(list(by_key).await.unwrap()), ["b", "a"]);
    let completed = RotationFilter {
        key: Some(key.id),
        status: Some(Status::Completed),
    };
    assert_eq!(list(completed).await.unwrap(), vec![done]);
    let running_only = RotationFilter {
        status: Some(Status::Running),
        ..Default::default()
    };
    assert_eq!(ids(list(running_only).await.unwrap()), ["c", "b"]);
}
