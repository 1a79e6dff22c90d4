//! `Store` conformance case of issue 19: attestation policies are versioned, changed by
//! compare-and-set on the current version with their event, and scoped by tenant.

use std::sync::Arc;

use crate::attestation::{AttestationPolicy, AttestedOp};
use crate::store::{Store, StoreError};
use crate::testing::fixtures::{self, T0};

use super::store::{new_key, new_tenant};

type S = Arc<dyn Store>;

fn policy(
    tenant: crate::ids::TenantId,
    key: crate::ids::KeyId,
    version: u32,
    measurements: &[&str],
) -> AttestationPolicy {
    AttestationPolicy {
        tenant,
        key,
        version,
        operations: [AttestedOp::Unwrap, AttestedOp::Sign].into(),
        measurements: measurements.iter().map(|m| m.parse().unwrap()).collect(),
        created_at: T0,
    }
}

/// Versions go 1, 2, … by compare-and-set (a writer that read an older version loses
/// and writes nothing); the newest is in force, the history keeps every version; the
/// change leaves its event; another tenant's key is absent.
pub async fn attestation_policies_are_versioned_by_compare_and_set(store: S) {
    let t = new_tenant(&store, "acme").await;
    let other = new_tenant(&store, "globex").await;
    let key = new_key(&store, t.id, &[]).await;
    let m1 = "11".repeat(48);
    let m2 = "22".repeat(48);
    let record = fixtures::record(&fixtures::event(t.id, key.id, "key.attestation_policy"));
    assert_eq!(store.attestation_policy(t.id, key.id).await.unwrap(), None);

    let v1 = policy(t.id, key.id, 1, &[&m1]);
    store.put_attestation_policy(&v1, &record).await.unwrap();
    let v2 = policy(t.id, key.id, 2, &[&m1, &m2]);
    store.put_attestation_policy(&v2, &record).await.unwrap();
    assert_eq!(
        store.attestation_policy(t.id, key.id).await.unwrap(),
        Some(v2.clone())
    );

    // A second writer that read version 1 loses; nothing changes.
    let stale = policy(t.id, key.id, 2, &[]);
    let err = store
        .put_attestation_policy(&stale, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // Skipping a version is refused too.
    let skip = policy(t.id, key.id, 4, &[]);
    let err = store
        .put_attestation_policy(&skip, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.attestation_policies(t.id, key.id).await.unwrap(),
        vec![v1, v2]
    );
    let events = store.key_events(t.id, key.id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "key.attestation_policy")
            .count(),
        2,
        "{events:?}"
    );

    // Scoped by tenant: absent for another tenant, and not writable through it.
    assert_eq!(
        store.attestation_policy(other.id, key.id).await.unwrap(),
        None
    );
    assert!(
        store
            .attestation_policies(other.id, key.id)
            .await
            .unwrap()
            .is_empty()
    );
    let foreign = policy(other.id, key.id, 1, &[]);
    let err = store
        .put_attestation_policy(&foreign, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}
