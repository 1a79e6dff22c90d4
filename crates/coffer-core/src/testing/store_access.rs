//! `Store` conformance case of key policies and grants (the AWS front's access
//! controls).

use std::sync::Arc;

use crate::store::{Grant, Store, StoreError, StoredPolicy};
use crate::testing::fixtures;
use crate::time::Timestamp;

use super::store::{new_key, new_tenant};

type S = Arc<dyn Store>;

/// A policy is set and replaced per key; grants are stored, listed per key and per
/// tenant, and deleted once; each change records its event; another tenant's key is
/// not found and shows nothing.
pub async fn key_policies_and_grants_are_kept_per_key(store: S) {
    let t = new_tenant(&store, "acme").await;
    let other = new_tenant(&store, "globex").await;
    let key = new_key(&store, t.id, &[]).await;
    let second = new_key(&store, t.id, &[]).await;
    let record = fixtures::record(&fixtures::event(t.id, key.id, "key.policy"));

    assert_eq!(store.key_policy(t.id, key.id).await.unwrap(), None);
    let policy = |n: &str| StoredPolicy {
        document: format!("{{\"doc\": \"{n}\"}}"),
        rules: format!("{{\"rules\": \"{n}\"}}"),
    };
    store
        .put_key_policy(t.id, key.id, &policy("one"), &record)
        .await
        .unwrap();
    store
        .put_key_policy(t.id, key.id, &policy("two"), &record)
        .await
        .unwrap();
    assert_eq!(
        store.key_policy(t.id, key.id).await.unwrap(),
        Some(policy("two"))
    );
    assert_eq!(store.key_policy(t.id, second.id).await.unwrap(), None);
    let err = store
        .put_key_policy(other.id, key.id, &policy("theirs"), &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.key_policy(other.id, key.id).await.unwrap(), None);

    let grant = |id: &str, on: crate::ids::KeyId| Grant {
        id: id.to_owned(),
        tenant: t.id,
        key: on,
        grantee: "grantee-token".into(),
        retiring: Some("retiring-token".into()),
        operations: vec!["Encrypt".into(), "Decrypt".into()],
        name: Some("n".into()),
        created_at: Timestamp::from_millis(5),
    };
    store
        .create_grant(&grant("g1", key.id), &record)
        .await
        .unwrap();
    store
        .create_grant(&grant("g2", second.id), &record)
        .await
        .unwrap();
    assert_eq!(
        store.grants(t.id, Some(key.id)).await.unwrap(),
        vec![grant("g1", key.id)]
    );
    assert_eq!(store.grants(t.id, None).await.unwrap().len(), 2);
    assert!(store.grants(other.id, None).await.unwrap().is_empty());
    let mut foreign = grant("g3", key.id);
    foreign.tenant = other.id;
    let err = store.create_grant(&foreign, &record).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");

    // A grant is deleted from its own key only, and once.
    let err = store
        .delete_grant(t.id, second.id, "g1", &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    store
        .delete_grant(t.id, key.id, "g1", &record)
        .await
        .unwrap();
    let err = store
        .delete_grant(t.id, key.id, "g1", &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(store.grants(t.id, Some(key.id)).await.unwrap().is_empty());
    // Two policies, two grants and one deletion (the fixture's event names this key);
    // the refused changes recorded nothing.
    let events = store.key_events(t.id, key.id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == "key.policy").count(), 5);
}
