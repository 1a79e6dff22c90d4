//! `Store` conformance cases of seed 004: moving an alias between keys, and restarting
//! a spare version's validity at its activation.

use std::sync::Arc;

use crate::ids::Alias;
use crate::store::{Store, StoreError};
use crate::testing::fixtures;

use super::store::{new_key, new_tenant};

type S = Arc<dyn Store>;

/// An alias moves by compare-and-set on the key it names, with its event, in one
/// transaction: a move from a key it no longer names is refused and changes nothing;
/// an absent alias, or a target in another tenant, is not found.
pub async fn an_alias_moves_by_compare_and_set(store: S) {
    let t = new_tenant(&store, "acme").await;
    let other = new_tenant(&store, "globex").await;
    let old = new_key(&store, t.id, &["alias/signer"]).await;
    let new = new_key(&store, t.id, &[]).await;
    let foreign = new_key(&store, other.id, &[]).await;
    let alias: Alias = "alias/signer".parse().unwrap();
    let record = fixtures::record(&fixtures::event(t.id, new.id, "alias.moved"));

    store
        .move_alias(t.id, &alias, old.id, new.id, &record)
        .await
        .unwrap();
    assert_eq!(
        store.resolve_alias(t.id, &alias).await.unwrap(),
        Some(new.id)
    );
    let old_now = store.get_key(t.id, old.id).await.unwrap().unwrap();
    let new_now = store.get_key(t.id, new.id).await.unwrap().unwrap();
    assert!(!old_now.aliases.contains(&alias) && new_now.aliases.contains(&alias));
    let events = store.key_events(t.id, new.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "alias.moved"), "{events:?}");

    // A second mover that read the old target loses.
    let err = store
        .move_alias(t.id, &alias, old.id, new.id, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.resolve_alias(t.id, &alias).await.unwrap(),
        Some(new.id)
    );

    let absent: Alias = "alias/absent".parse().unwrap();
    let err = store
        .move_alias(t.id, &absent, old.id, new.id, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let err = store
        .move_alias(t.id, &alias, new.id, foreign.id, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(
        store.resolve_alias(t.id, &alias).await.unwrap(),
        Some(new.id)
    );
}

/// A version's validity window moves by compare-and-set on its `not_before` (a spare's
/// validity restarts at its activation), in the same transaction as the other changes.
pub async fn a_versions_validity_moves_by_compare_and_set(store: S) {
    use crate::lifecycle::VersionState;
    use crate::store::Change;
    use crate::testing::fixtures::T0;
    use std::time::Duration;

    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let spare = fixtures::version(key.id, 2, VersionState::Inactive, false);
    let record = fixtures::record(&fixtures::event(t.id, key.id, "version.activated"));
    store.add_version(t.id, &spare, &[], &record).await.unwrap();
    let later = T0.plus(Duration::from_secs(86_400 * 100));
    let restart = Change::Validity {
        version: spare.number,
        from: T0,
        not_before: later,
        not_after: Some(later.plus(Duration::from_secs(86_400 * 365))),
    };
    store
        .apply(t.id, key.id, std::slice::from_ref(&restart), &record)
        .await
        .unwrap();
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    let moved = versions.iter().find(|v| v.number == spare.number).unwrap();
    assert_eq!(moved.not_before, later);
    assert_eq!(
        moved.not_after,
        Some(later.plus(Duration::from_secs(86_400 * 365)))
    );
    // A second restart that read the old window loses.
    let err = store
        .apply(t.id, key.id, &[restart], &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}
