//! `Store` conformance case of issue 19: attestation policies are versioned, changed by
//! compare-and-set on the current version with their event, and scoped by tenant.

use std::sync::Arc;

use crate::attestation::{AttestationPolicy, AttestedOp};
use crate::ids::VersionNumber;
use crate::lifecycle::VersionState;
use crate::store::{Change, Store, StoreError};
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

/// A key change carrying an attestation policy (a rotation's switch with its
/// allow-list) commits both or neither: a policy version that lost its compare-and-set
/// leaves the primary where it was, and a switch that lost its own leaves the policy.
pub async fn a_switch_and_its_allow_list_commit_together(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let m1 = "11".repeat(48);
    let m2 = "22".repeat(48);
    let record = fixtures::record(&fixtures::event(t.id, key.id, "key.attestation_policy"));
    let v1 = policy(t.id, key.id, 1, &[&m1]);
    store.put_attestation_policy(&v1, &record).await.unwrap();
    store
        .add_version(
            t.id,
            &fixtures::version(key.id, 2, VersionState::Pending, false),
            &[],
            &record,
        )
        .await
        .unwrap();
    let number = |n| VersionNumber::new(n).unwrap();
    let switch = |policy_version: u32, from: u32| {
        [
            Change::AttestationPolicy(policy(t.id, key.id, policy_version, &[&m2])),
            Change::VersionState {
                version: number(2),
                from: VersionState::Pending,
                to: VersionState::Active,
            },
            Change::Primary {
                from: number(from),
                to: number(2),
            },
        ]
    };
    let primary = |versions: &[crate::key::KeyVersion]| {
        versions.iter().find(|v| v.primary).map(|v| v.number.get())
    };

    // The policy moved meanwhile (version 3 expected, 1 in force): nothing changes.
    let err = store
        .apply(t.id, key.id, &switch(3, 1), &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(primary(&versions), Some(1));
    assert_eq!(versions[1].state, VersionState::Pending);
    assert_eq!(
        store.attestation_policy(t.id, key.id).await.unwrap(),
        Some(v1.clone())
    );

    // The primary moved meanwhile (the switch names 7): the policy is not stored.
    let err = store
        .apply(t.id, key.id, &switch(2, 7), &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.attestation_policy(t.id, key.id).await.unwrap(),
        Some(v1.clone())
    );

    // Both in order: both change.
    store
        .apply(t.id, key.id, &switch(2, 1), &record)
        .await
        .unwrap();
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(primary(&versions), Some(2));
    let in_force = store.attestation_policy(t.id, key.id).await.unwrap();
    assert_eq!(in_force, Some(policy(t.id, key.id, 2, &[&m2])));

    // A policy naming another key is refused inside the change.
    let other = new_key(&store, t.id, &[]).await;
    let foreign = [Change::AttestationPolicy(policy(t.id, other.id, 1, &[]))];
    let err = store
        .apply(t.id, key.id, &foreign, &record)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.attestation_policy(t.id, other.id).await.unwrap(),
        None
    );
}
