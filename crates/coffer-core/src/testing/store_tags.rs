//! `Store` conformance case of key tags (the AWS front's resource tags).

use std::sync::Arc;

use crate::store::{Store, StoreError, Tags};
use crate::testing::fixtures;

use super::store::{new_key, new_tenant};

type S = Arc<dyn Store>;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Tags are set, replaced and removed per key with their event, in one transaction;
/// a change that would pass the limit is refused and changes nothing; another
/// tenant's key is not found and shows no tags.
pub async fn key_tags_change_within_their_limit(store: S) {
    let t = new_tenant(&store, "acme").await;
    let other = new_tenant(&store, "globex").await;
    let key = new_key(&store, t.id, &[]).await;
    let record = fixtures::record(&fixtures::event(t.id, key.id, "key.tags"));

    let first = tags(&[("team", "payments"), ("env", "prod")]);
    store
        .change_tags(t.id, key.id, &first, &[], 3, &record)
        .await
        .unwrap();
    assert_eq!(store.key_tags(t.id, key.id).await.unwrap(), first);
    // Replacing a value and removing a tag, together.
    store
        .change_tags(
            t.id,
            key.id,
            &tags(&[("team", "risk")]),
            &["env".to_owned()],
            3,
            &record,
        )
        .await
        .unwrap();
    assert_eq!(
        store.key_tags(t.id, key.id).await.unwrap(),
        tags(&[("team", "risk")])
    );
    let events = store.key_events(t.id, key.id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "key.tags").count(), 2);

    // Past the limit: refused, nothing of it kept.
    let err = store
        .change_tags(
            t.id,
            key.id,
            &tags(&[("a", "1"), ("b", "2"), ("c", "3")]),
            &[],
            3,
            &record,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.key_tags(t.id, key.id).await.unwrap(),
        tags(&[("team", "risk")])
    );
    let events = store.key_events(t.id, key.id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "key.tags").count(), 2);

    // Another tenant's key: absent.
    let err = store
        .change_tags(other.id, key.id, &first, &[], 3, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(store.key_tags(other.id, key.id).await.unwrap().is_empty());
}
