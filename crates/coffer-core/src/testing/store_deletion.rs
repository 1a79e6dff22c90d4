//! `Store` conformance cases for the end of a key: [`Change::DestroyKey`].

use std::sync::Arc;

use crate::lifecycle::{KeyState, VersionState};
use crate::store::{Change, Store, StoreError};
use crate::testing::fixtures::{self, T0};
use crate::time::HumanDuration;

use super::store::{new_key, new_tenant};

type S = Arc<dyn Store>;

/// Destroying a key is a compare-and-set on "pending deletion and due": refused before
/// the due time and for a key not pending deletion; once it succeeds, every version is
/// destroyed with its material erased, none is primary, and the key's event and audit
/// entry were written with it.
pub async fn destroying_a_key_erases_every_version(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let event = fixtures::event(t.id, key.id, "key.destroyed");
    for (n, state) in [(2, VersionState::Inactive), (3, VersionState::Pending)] {
        store
            .add_version(
                t.id,
                &fixtures::version(key.id, n, state, false),
                &[],
                &fixtures::record(&event),
            )
            .await
            .unwrap();
    }
    let due = T0.plus(HumanDuration::days(7).get());
    let destroy = |due_by| Change::DestroyKey { due_by };
    // Enabled: not pending deletion.
    let refused = store
        .apply(t.id, key.id, &[destroy(due)], &fixtures::record(&event))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    let schedule = Change::KeyState {
        from: KeyState::Enabled,
        to: KeyState::PendingDeletion,
        deletion_due: Some(due),
    };
    store
        .apply(t.id, key.id, &[schedule], &fixtures::record(&event))
        .await
        .unwrap();
    // A millisecond early.
    let early = store
        .apply(
            t.id,
            key.id,
            &[destroy(due.minus(std::time::Duration::from_millis(1)))],
            &fixtures::record(&event),
        )
        .await;
    assert!(matches!(early, Err(StoreError::Conflict(_))), "{early:?}");
    let audited = store.audit_entries(0, 1000).await.unwrap().len();
    assert!(
        store
            .list_versions(t.id, key.id)
            .await
            .unwrap()
            .iter()
            .all(|v| !v.wrapped_material.is_empty()),
        "a refused destruction erases nothing"
    );

    store
        .apply(t.id, key.id, &[destroy(due)], &fixtures::record(&event))
        .await
        .unwrap();
    let got = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert_eq!((got.state, got.deletion_due), (KeyState::Destroyed, None));
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions.len(), 3);
    for version in &versions {
        assert_eq!(version.state, VersionState::Destroyed, "{version:?}");
        assert!(version.wrapped_material.is_empty() && !version.primary);
    }
    assert_eq!(
        store.audit_entries(0, 1000).await.unwrap().len(),
        audited + 1
    );
    // Terminal: a second destruction finds nothing to do.
    let again = store
        .apply(t.id, key.id, &[destroy(due)], &fixtures::record(&event))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}
