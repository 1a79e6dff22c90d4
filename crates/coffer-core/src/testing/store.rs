//! The `Store` conformance cases. Each takes a fresh, empty store.

use std::sync::Arc;

use crate::event::Event;
use crate::ids::{Alias, KeyId, VersionNumber};
use crate::lifecycle::{KeyState, VersionState};
use crate::saga::{Status, Step};
use crate::store::{Change, RotationRecord, Store, StoreError};
use crate::tenant::TenantState;
use crate::testing::fixtures::{self, T0};
use crate::time::HumanDuration;

type S = Arc<dyn Store>;

fn v(n: u32) -> VersionNumber {
    VersionNumber::new(n).unwrap()
}

pub(crate) async fn new_tenant(store: &S, name: &str) -> crate::tenant::Tenant {
    let tenant = fixtures::tenant(name);
    let event = Event::tenant(tenant.id, "tenant.created", name, T0);
    store
        .create_tenant(
            &tenant,
            &fixtures::random_bytes(60),
            &fixtures::record(&event),
        )
        .await
        .unwrap();
    tenant
}

pub(crate) async fn new_key(
    store: &S,
    tenant: crate::ids::TenantId,
    aliases: &[&str],
) -> crate::key::Key {
    let key = fixtures::key(tenant, aliases);
    let first = fixtures::version(key.id, 1, VersionState::Active, true);
    store
        .create_key(
            &key,
            &first,
            &fixtures::record(&fixtures::event(tenant, key.id, "key.created")),
        )
        .await
        .unwrap();
    key
}

/// Tenants round-trip; names are unique.
pub async fn tenants_are_created_listed_and_unique(store: S) {
    store.ping().await.unwrap();
    let a = new_tenant(&store, "acme").await;
    let b = new_tenant(&store, "globex").await;
    assert_eq!(store.get_tenant(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.get_tenant_by_name("globex").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.list_tenants().await.unwrap().len(), 2);
    let dup = fixtures::tenant("acme");
    let event = Event::tenant(dup.id, "tenant.created", "acme", T0);
    let err = store
        .create_tenant(&dup, b"kek", &fixtures::record(&event))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.get_tenant(dup.id).await.unwrap(),
        None,
        "nothing written"
    );
    assert!(store.get_tenant_kek(a.id).await.unwrap().is_some());
}

/// Keys come back exactly as stored, aliases included.
pub async fn keys_round_trip_with_aliases(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &["alias/payments-kek", "orders"]).await;
    assert_eq!(
        store.get_key(t.id, key.id).await.unwrap(),
        Some(key.clone())
    );
    let alias: Alias = "alias/orders".parse().unwrap();
    assert_eq!(
        store.resolve_alias(t.id, &alias).await.unwrap(),
        Some(key.id)
    );
    assert_eq!(store.list_keys(t.id).await.unwrap(), vec![key.clone()]);
    let extra: Alias = "alias/extra".parse().unwrap();
    let event = fixtures::event(t.id, key.id, "alias.added");
    store
        .add_alias(t.id, key.id, &extra, &fixtures::record(&event))
        .await
        .unwrap();
    store
        .remove_alias(t.id, key.id, &alias, &fixtures::record(&event))
        .await
        .unwrap();
    let again = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert!(again.aliases.contains(&extra) && !again.aliases.contains(&alias));
    let err = store
        .remove_alias(t.id, key.id, &alias, &fixtures::record(&event))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
}

/// An alias is unique in its tenant and free in every other.
pub async fn aliases_are_unique_per_tenant_only(store: S) {
    let a = new_tenant(&store, "acme").await;
    let b = new_tenant(&store, "globex").await;
    new_key(&store, a.id, &["alias/shared"]).await;
    let clash = fixtures::key(a.id, &["alias/shared"]);
    let first = fixtures::version(clash.id, 1, VersionState::Active, true);
    let err = store
        .create_key(
            &clash,
            &first,
            &fixtures::record(&fixtures::event(a.id, clash.id, "key.created")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.get_key(a.id, clash.id).await.unwrap(),
        None,
        "nothing written"
    );
    assert!(
        store
            .list_versions(a.id, clash.id)
            .await
            .unwrap()
            .is_empty()
    );
    new_key(&store, b.id, &["alias/shared"]).await;
}

/// Every read and write is scoped by tenant.
pub async fn another_tenants_key_is_absent(store: S) {
    let a = new_tenant(&store, "acme").await;
    let b = new_tenant(&store, "globex").await;
    let key = new_key(&store, a.id, &["alias/mine"]).await;
    assert_eq!(store.get_key(b.id, key.id).await.unwrap(), None);
    assert!(store.list_keys(b.id).await.unwrap().is_empty());
    assert!(store.list_versions(b.id, key.id).await.unwrap().is_empty());
    let alias: Alias = "alias/mine".parse().unwrap();
    assert_eq!(store.resolve_alias(b.id, &alias).await.unwrap(), None);
    let change = Change::KeyState {
        from: KeyState::Enabled,
        to: KeyState::Disabled,
        deletion_due: None,
    };
    let event = fixtures::event(b.id, key.id, "key.state");
    let err = store
        .apply(b.id, key.id, &[change], &fixtures::record(&event))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    let spare = fixtures::version(key.id, 2, VersionState::Inactive, false);
    assert!(
        store
            .add_version(b.id, &spare, &[], &fixtures::record(&event))
            .await
            .is_err()
    );
    assert!(
        store
            .add_alias(
                b.id,
                key.id,
                &"alias/theirs".parse().unwrap(),
                &fixtures::record(&event)
            )
            .await
            .is_err()
    );
    assert!(store.key_events(b.id, key.id).await.unwrap().is_empty());
    assert_eq!(
        store.get_key(a.id, key.id).await.unwrap().unwrap().state,
        KeyState::Enabled
    );
}

/// Versions list oldest first with their fields intact.
pub async fn versions_are_listed_in_order(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let v3 = fixtures::version(key.id, 3, VersionState::Inactive, false);
    let v2 = fixtures::version(key.id, 2, VersionState::Pending, false);
    let event = fixtures::event(t.id, key.id, "version.created");
    store
        .add_version(t.id, &v3, &[], &fixtures::record(&event))
        .await
        .unwrap();
    store
        .add_version(t.id, &v2, &[], &fixtures::record(&event))
        .await
        .unwrap();
    let listed = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|v| v.number.get()).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(listed[2], v3);
    let dup = fixtures::version(key.id, 2, VersionState::Pending, false);
    assert!(matches!(
        store
            .add_version(t.id, &dup, &[], &fixtures::record(&event))
            .await,
        Err(StoreError::Conflict(_))
    ));
}

/// A change whose expected state no longer holds is refused and writes nothing.
pub async fn lifecycle_changes_are_compare_and_set(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let events_before = store.key_events(t.id, key.id).await.unwrap().len();
    let stale = [
        Change::KeyState {
            from: KeyState::Enabled,
            to: KeyState::Disabled,
            deletion_due: None,
        },
        Change::VersionState {
            version: v(1),
            from: VersionState::Retiring,
            to: VersionState::Retired,
        },
    ];
    let event = fixtures::event(t.id, key.id, "mixed");
    let err = store
        .apply(t.id, key.id, &stale, &fixtures::record(&event))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // The first change of the list was rolled back with the second.
    assert_eq!(
        store.get_key(t.id, key.id).await.unwrap().unwrap().state,
        KeyState::Enabled
    );
    assert_eq!(
        store.key_events(t.id, key.id).await.unwrap().len(),
        events_before
    );
}

/// Promoting a version and moving the primary pointer happen together or not at all.
pub async fn primary_switch_is_atomic(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let event = fixtures::event(t.id, key.id, "key.rotated");
    store
        .add_version(
            t.id,
            &fixtures::version(key.id, 2, VersionState::Pending, false),
            &[],
            &fixtures::record(&event),
        )
        .await
        .unwrap();
    let switch = [
        Change::VersionState {
            version: v(2),
            from: VersionState::Pending,
            to: VersionState::Active,
        },
        Change::Primary {
            from: v(1),
            to: v(2),
        },
    ];
    store
        .apply(t.id, key.id, &switch, &fixtures::record(&event))
        .await
        .unwrap();
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert!(!versions[0].primary && versions[1].primary);
    assert_eq!(versions[1].state, VersionState::Active);
    // Replaying the same switch finds v1 no longer primary: refused, unchanged.
    assert!(matches!(
        store
            .apply(t.id, key.id, &switch, &fixtures::record(&event))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let after = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(after, versions);
}

/// The schema itself keeps at most one primary per key, and only an active one.
pub async fn schema_keeps_one_active_primary(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let event = fixtures::event(t.id, key.id, "x");
    store
        .add_version(
            t.id,
            &fixtures::version(key.id, 2, VersionState::Inactive, false),
            &[],
            &fixtures::record(&event),
        )
        .await
        .unwrap();
    // Pointer to an inactive version: refused.
    let err = store
        .apply(
            t.id,
            key.id,
            &[Change::Primary {
                from: v(1),
                to: v(2),
            }],
            &fixtures::record(&event),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // The primary cannot leave `active` (the schema's CHECK refuses it).
    let demote = Change::VersionState {
        version: v(1),
        from: VersionState::Active,
        to: VersionState::Retiring,
    };
    assert!(
        store
            .apply(t.id, key.id, &[demote], &fixtures::record(&event))
            .await
            .is_err()
    );
    // A version inserted as primary next to an existing primary: refused.
    let second_primary = fixtures::version(key.id, 3, VersionState::Active, true);
    assert!(
        store
            .add_version(t.id, &second_primary, &[], &fixtures::record(&event))
            .await
            .is_err()
    );
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions.iter().filter(|v| v.primary).count(), 1);
    assert!(versions[0].primary && versions[0].state == VersionState::Active);
}

/// Scheduling deletion stores its due time; cancelling clears it.
pub async fn key_state_changes_record_deletion_due(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let due = T0.plus(HumanDuration::days(7).get());
    let event = fixtures::event(t.id, key.id, "key.state");
    let schedule = Change::KeyState {
        from: KeyState::Enabled,
        to: KeyState::PendingDeletion,
        deletion_due: Some(due),
    };
    store
        .apply(t.id, key.id, &[schedule], &fixtures::record(&event))
        .await
        .unwrap();
    let got = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert_eq!(
        (got.state, got.deletion_due),
        (KeyState::PendingDeletion, Some(due))
    );
    let cancel = Change::KeyState {
        from: KeyState::PendingDeletion,
        to: KeyState::Disabled,
        deletion_due: None,
    };
    store
        .apply(t.id, key.id, &[cancel], &fixtures::record(&event))
        .await
        .unwrap();
    let got = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert_eq!((got.state, got.deletion_due), (KeyState::Disabled, None));
    // pending-deletion without a due time breaks a schema rule.
    let bad = Change::KeyState {
        from: KeyState::Disabled,
        to: KeyState::PendingDeletion,
        deletion_due: None,
    };
    assert!(
        store
            .apply(t.id, key.id, &[bad], &fixtures::record(&event))
            .await
            .is_err()
    );
}

/// A destroyed version keeps no material.
pub async fn destroying_a_version_destroys_its_material(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let event = fixtures::event(t.id, key.id, "version.state");
    store
        .add_version(
            t.id,
            &fixtures::version(key.id, 2, VersionState::Inactive, false),
            &[],
            &fixtures::record(&event),
        )
        .await
        .unwrap();
    let destroy = Change::VersionState {
        version: v(2),
        from: VersionState::Inactive,
        to: VersionState::Destroyed,
    };
    store
        .apply(t.id, key.id, &[destroy], &fixtures::record(&event))
        .await
        .unwrap();
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions[1].state, VersionState::Destroyed);
    assert!(versions[1].wrapped_material.is_empty());
    assert!(!versions[0].wrapped_material.is_empty());
}

/// Each successful change adds exactly its event, in order.
pub async fn every_change_records_one_event(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let disable = Change::KeyState {
        from: KeyState::Enabled,
        to: KeyState::Disabled,
        deletion_due: None,
    };
    let enable = Change::KeyState {
        from: KeyState::Disabled,
        to: KeyState::Enabled,
        deletion_due: None,
    };
    store
        .apply(
            t.id,
            key.id,
            &[disable],
            &fixtures::record(&fixtures::event(t.id, key.id, "key.disabled")),
        )
        .await
        .unwrap();
    store
        .apply(
            t.id,
            key.id,
            &[enable],
            &fixtures::record(&fixtures::event(t.id, key.id, "key.enabled")),
        )
        .await
        .unwrap();
    let kinds: Vec<String> = store
        .key_events(t.id, key.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["key.created", "key.disabled", "key.enabled"]);
}

/// At most one running rotation per key.
pub async fn one_running_rotation_per_key(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let other = new_key(&store, t.id, &[]).await;
    let record = |id: &str, key: KeyId| RotationRecord {
        id: id.into(),
        tenant: t.id,
        key,
        step: Step::CreateVersion,
        status: Status::Running,
        started_at: T0,
        from_version: 1,
        to_version: None,
        failures: 0,
        error: None,
        paused_after: None,
        started_by: "-".into(),
        allow_list: None,
        updated_at: T0,
    };
    let audit = fixtures::audit_record(Some(t.id));
    store
        .start_rotation(&record("r1", key.id), &audit)
        .await
        .unwrap();
    let err = store
        .start_rotation(&record("r2", key.id), &audit)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    store
        .start_rotation(&record("r3", other.id), &audit)
        .await
        .unwrap();
    let done = RotationRecord {
        step: Step::Anchor,
        status: Status::Completed,
        ..record("r1", key.id)
    };
    store
        .save_rotation(&record("r1", key.id), &done, &audit)
        .await
        .unwrap();
    store
        .start_rotation(&record("r4", key.id), &audit)
        .await
        .unwrap();
    let got = store.get_rotation(t.id, "r1").await.unwrap().unwrap();
    assert_eq!((got.step, got.status), (Step::Anchor, Status::Completed));
}

/// Shredding deletes the tenant key and marks the tenant.
pub async fn shredding_a_tenant_removes_its_key(store: S) {
    let t = new_tenant(&store, "acme").await;
    let event = Event::tenant(t.id, "tenant.shredded", "confirmed", T0);
    store
        .shred_tenant(t.id, &fixtures::record(&event))
        .await
        .unwrap();
    assert_eq!(store.get_tenant_kek(t.id).await.unwrap(), None);
    assert_eq!(
        store.get_tenant(t.id).await.unwrap().unwrap().state,
        TenantState::Shredded
    );
    assert!(matches!(
        store.shred_tenant(t.id, &fixtures::record(&event)).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Root-key rotation replaces a tenant key only if nobody replaced it first.
pub async fn tenant_key_replacement_is_compare_and_set(store: S) {
    let t = new_tenant(&store, "acme").await;
    let old = store.get_tenant_kek(t.id).await.unwrap().unwrap();
    store
        .replace_tenant_kek(t.id, &old, b"new-wrapped")
        .await
        .unwrap();
    let err = store
        .replace_tenant_kek(t.id, &old, b"other")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert_eq!(
        store.get_tenant_kek(t.id).await.unwrap().unwrap(),
        b"new-wrapped"
    );
}

/// Two writers racing on the same compare-and-set: exactly one wins.
pub async fn racing_writers_cannot_both_win(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let mut handles = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let change = Change::KeyState {
                from: KeyState::Enabled,
                to: KeyState::Disabled,
                deletion_due: None,
            };
            let event = fixtures::event(t.id, key.id, &format!("race.{i}"));
            store
                .apply(t.id, key.id, &[change], &fixtures::record(&event))
                .await
        }));
    }
    let mut wins = 0;
    for handle in handles {
        match handle.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.key_events(t.id, key.id).await.unwrap().len(), 2);
}

pub use super::store_access::*;
pub use super::store_aliases::*;
pub use super::store_attestation::*;
pub use super::store_deletion::*;
pub use super::store_hsm::*;
pub use super::store_pq::*;
pub use super::store_records::*;
pub use super::store_rotations::*;
pub use super::store_seals::*;
pub use super::store_tags::*;
