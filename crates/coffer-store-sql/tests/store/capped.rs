//! A rotation capped by the count of rotations by callers (AWS's 10 on-demand
//! rotations per key): the scheduler's rotations do not count, the cap refuses with
//! `LimitReached` and changes nothing, and concurrent capped rotations never pass it.

use std::sync::Arc;

use coffer_core::audit::Actor;
use coffer_core::testing::fixtures::actor;
use coffer_core::{Clock, CoreError, KeyService, ManualClock, NewKey, Store, Timestamp};
use coffer_crypto::KeySpec;
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;

use super::backends::temp_dir;

async fn service() -> (KeyService, Arc<dyn Store>) {
    let dir = temp_dir();
    let store: Arc<dyn Store> =
        Arc::new(SqlStore::open_sqlite(&dir.join("coffer.db")).await.unwrap());
    let custody =
        SealedCustody::init_key_file(dir.join("custody.json"), dir.join("unseal.key")).unwrap();
    custody.unseal_key_file(dir.join("unseal.key")).unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let keys = KeyService::new(
        store.clone(),
        Arc::new(custody),
        Arc::new(clock) as Arc<dyn Clock>,
        None,
        coffer_core::testing::fixtures::state_seal(),
    );
    (keys, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_rotation_counts_only_callers_and_never_passes_the_cap() {
    let (keys, store) = service().await;
    let tenant = keys
        .create_tenant("acme".parse().unwrap(), &actor())
        .await
        .unwrap();
    let (key, _) = keys
        .create_key(tenant.id, NewKey::of(KeySpec::Aes256), &actor())
        .await
        .unwrap();
    let scheduler = Actor::new(coffer_core::keys::SCHEDULER, "r", "keys.rotate");
    for _ in 0..2 {
        keys.rotate_capped(tenant.id, key.id, &actor(), Some(2))
            .await
            .unwrap();
    }
    let versions = store.list_versions(tenant.id, key.id).await.unwrap().len();
    let err = keys
        .rotate_capped(tenant.id, key.id, &actor(), Some(2))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::LimitReached(_)), "{err}");
    assert_eq!(
        store.list_versions(tenant.id, key.id).await.unwrap().len(),
        versions,
        "a refused rotation added a version"
    );
    // The scheduler's rotations are not the callers': not counted, and not capped.
    keys.rotate(tenant.id, key.id, &scheduler).await.unwrap();
    let err = keys
        .rotate_capped(tenant.id, key.id, &actor(), Some(2))
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::LimitReached(_)), "{err}");
    keys.rotate_capped(tenant.id, key.id, &actor(), Some(3))
        .await
        .unwrap();

    // Concurrent capped rotations with room for one: never more than one commits.
    let caller = actor();
    for cap in 4..8 {
        let (a, b, c) = tokio::join!(
            keys.rotate_capped(tenant.id, key.id, &caller, Some(cap)),
            keys.rotate_capped(tenant.id, key.id, &caller, Some(cap)),
            keys.rotate_capped(tenant.id, key.id, &caller, Some(cap)),
        );
        let committed = [a, b, c].into_iter().filter(Result::is_ok).count();
        assert!(
            committed <= 1,
            "{committed} rotations passed a cap with room for one"
        );
        if committed == 0 {
            keys.rotate_capped(tenant.id, key.id, &actor(), Some(cap))
                .await
                .unwrap();
        }
        let by_callers = store
            .key_events(tenant.id, key.id)
            .await
            .unwrap()
            .iter()
            .filter(|e| {
                e.kind == "key.rotated" && e.actor.as_deref() != Some(coffer_core::keys::SCHEDULER)
            })
            .count();
        assert_eq!(by_callers, cap);
    }
}
