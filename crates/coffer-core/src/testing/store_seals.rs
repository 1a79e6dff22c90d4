//! Conformance: key and version state tags (`crate::state_seal`) are stored as given
//! and replaced only by compare-and-set, in the change's own transaction.

use std::sync::Arc;

use crate::ids::VersionNumber;
use crate::lifecycle::VersionState;
use crate::state_seal::SealedRow;
use crate::store::{Change, Store, StoreError};
use crate::testing::fixtures;
use crate::testing::store::new_tenant;

/// Tags round-trip; a `Seal` whose expected tag is stale fails the whole change (the
/// state change before it included), one with the current tag (or none, for an
/// untagged row) replaces it; binding sets only untagged rows, once.
pub async fn state_tags_change_by_compare_and_set(store: Arc<dyn Store>) {
    let t = new_tenant(&store, "acme").await;
    let mut key = fixtures::key(t.id, &[]);
    key.state_tag = Some([1; 32]);
    let mut first = fixtures::version(key.id, 1, VersionState::Active, true);
    first.state_tag = Some([2; 32]);
    let event = fixtures::event(t.id, key.id, "key.created");
    store
        .create_key(&key, &first, &fixtures::record(&event))
        .await
        .unwrap();
    let spare = fixtures::version(key.id, 2, VersionState::Inactive, false);
    store
        .add_version(t.id, &spare, &[], &fixtures::record(&event))
        .await
        .unwrap();
    let got = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert_eq!(got.state_tag, Some([1; 32]));
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions[0].state_tag, Some([2; 32]));
    assert_eq!(versions[1].state_tag, None);

    let two = VersionNumber::new(2).unwrap();
    let retire = Change::VersionState {
        version: two,
        from: VersionState::Inactive,
        to: VersionState::Destroyed,
    };
    let stale = Change::Seal {
        row: SealedRow::Version(two),
        from: Some([9; 32]),
        to: [3; 32],
    };
    let err = store
        .apply(
            t.id,
            key.id,
            &[retire.clone(), stale],
            &fixtures::record(&event),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions[1].state, VersionState::Inactive, "nothing changed");
    assert_eq!(versions[1].state_tag, None);

    let sealed = Change::Seal {
        row: SealedRow::Version(two),
        from: None,
        to: [3; 32],
    };
    let key_sealed = Change::Seal {
        row: SealedRow::Key,
        from: Some([1; 32]),
        to: [4; 32],
    };
    store
        .apply(
            t.id,
            key.id,
            &[retire, sealed, key_sealed],
            &fixtures::record(&event),
        )
        .await
        .unwrap();
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions[1].state, VersionState::Destroyed);
    assert_eq!(versions[1].state_tag, Some([3; 32]));
    let got = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert_eq!(got.state_tag, Some([4; 32]));

    // Binding: untagged rows only, with the marker; a second binding is refused.
    let spare = fixtures::version(key.id, 3, VersionState::Inactive, false);
    store
        .add_version(t.id, &spare, &[], &fixtures::record(&event))
        .await
        .unwrap();
    let three = VersionNumber::new(3).unwrap();
    let tags = [
        (key.id, SealedRow::Key, [5; 32]),
        (key.id, SealedRow::Version(three), [6; 32]),
    ];
    let record = fixtures::audit_record(None);
    store
        .bind_key_states(&tags, ("states-bound-test", b"marker"), &record)
        .await
        .unwrap();
    let got = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert_eq!(got.state_tag, Some([4; 32]), "a tagged row keeps its tag");
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions[2].state_tag, Some([6; 32]));
    let again = store
        .bind_key_states(&tags, ("states-bound-test", b"marker"), &record)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
}
