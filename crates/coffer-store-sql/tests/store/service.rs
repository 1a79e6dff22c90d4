//! The key service over real backends: hierarchy, shredding, root rotation, lifecycle.

use std::sync::Arc;
use std::time::Duration;

use coffer_core::testing::fixtures::{actor, audit_record};
use coffer_core::{
    Clock, CoreError, Custody, KeyService, KeyState, ManualClock, NewKey, Store, Timestamp,
    VersionState, keyring,
};
use coffer_crypto::KeySpec;
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;

use super::backends::temp_dir;

struct Fixture {
    keys: KeyService,
    store: Arc<dyn Store>,
    custody: Arc<SealedCustody>,
    clock: ManualClock,
}

/// A `Kms` over the fixture's store, custody and clock (audit off: these tests check
/// scheduling, not the log).
fn kms_over(f: &Fixture) -> coffer_core::kms::Kms {
    let kms = coffer_core::kms::Kms::new(
        f.store.clone(),
        f.custody.clone(),
        Arc::new(f.clock.clone()) as Arc<dyn Clock>,
        Arc::new(coffer_core::audit::NoAudit),
        Arc::new(coffer_core::offload::Inline),
        None,
        coffer_core::kms::KmsOptions::default(),
    );
    // The fixture's rows are sealed under the fixture root; so are this service's.
    coffer_core::testing::fixtures::key_state_seal(kms.key_service().seal());
    kms
}

async fn fixture() -> Fixture {
    let dir = temp_dir();
    let store: Arc<dyn Store> =
        Arc::new(SqlStore::open_sqlite(&dir.join("coffer.db")).await.unwrap());
    let custody =
        SealedCustody::init_key_file(dir.join("custody.json"), dir.join("unseal.key")).unwrap();
    custody.unseal_key_file(dir.join("unseal.key")).unwrap();
    let custody = Arc::new(custody);
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let keys = KeyService::new(
        store.clone(),
        custody.clone(),
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        None,
        coffer_core::testing::fixtures::state_seal(),
    );
    Fixture {
        keys,
        store,
        custody,
        clock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_key_moved_to_another_tenant_does_not_open() {
    let f = fixture().await;
    let a = f
        .keys
        .create_tenant("acme".parse().unwrap(), &actor())
        .await
        .unwrap();
    let b = f
        .keys
        .create_tenant("globex".parse().unwrap(), &actor())
        .await
        .unwrap();
    let a_kek = f.store.get_tenant_kek(a.id).await.unwrap().unwrap();
    let b_kek = f.store.get_tenant_kek(b.id).await.unwrap().unwrap();
    f.store
        .replace_tenant_kek(b.id, &b_kek, &a_kek)
        .await
        .unwrap();
    let err = f.keys.tenant_kek(b.id).await.err().unwrap();
    assert!(matches!(err, CoreError::Custody(_)), "{err}");
    assert!(f.keys.tenant_kek(a.id).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shredding_a_tenant_makes_all_its_material_unrecoverable() {
    let f = fixture().await;
    let doomed = f
        .keys
        .create_tenant("doomed".parse().unwrap(), &actor())
        .await
        .unwrap();
    let other = f
        .keys
        .create_tenant("other".parse().unwrap(), &actor())
        .await
        .unwrap();
    let (key, v1) = f
        .keys
        .create_key(doomed.id, NewKey::of(KeySpec::Aes256), &actor())
        .await
        .unwrap();
    let (other_key, other_v1) = f
        .keys
        .create_key(other.id, NewKey::of(KeySpec::Aes256), &actor())
        .await
        .unwrap();
    // Unconfirmed: refused, nothing changed.
    let err = f
        .keys
        .shred_tenant(doomed.id, &"other".parse().unwrap(), &actor())
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::NotConfirmed(_)));
    assert!(f.keys.load_material(&key, &v1).await.is_ok());
    f.keys
        .shred_tenant(doomed.id, &"doomed".parse().unwrap(), &actor())
        .await
        .unwrap();
    assert!(matches!(
        f.keys.load_material(&key, &v1).await,
        Err(CoreError::NotFound(_))
    ));
    assert!(f.keys.load_material(&other_key, &other_v1).await.is_ok());
    assert!(
        f.keys
            .create_key(doomed.id, NewKey::of(KeySpec::Aes256), &actor())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotation_rewraps_tenant_keys_without_downtime() {
    let f = fixture().await;
    let t = f
        .keys
        .create_tenant("acme".parse().unwrap(), &actor())
        .await
        .unwrap();
    let (key, v1) = f
        .keys
        .create_key(t.id, NewKey::of(KeySpec::Ed25519), &actor())
        .await
        .unwrap();
    let before = f.keys.load_material(&key, &v1).await.unwrap().public_key();
    f.custody.rotate_root().unwrap();
    // Readers keep working before the rewrap: custody still holds the old root.
    assert_eq!(
        f.keys.load_material(&key, &v1).await.unwrap().public_key(),
        before
    );
    assert_eq!(f.keys.rewrap_tenant_keys().await.unwrap(), 1);
    assert_eq!(f.keys.rewrap_tenant_keys().await.unwrap(), 0, "idempotent");
    f.custody.retire_old_roots().unwrap();
    assert_eq!(
        f.keys.load_material(&key, &v1).await.unwrap().public_key(),
        before
    );
    let wrapped = f.store.get_tenant_kek(t.id).await.unwrap().unwrap();
    assert!(keyring::open_tenant_kek(f.custody.as_ref(), t.id, &wrapped).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_activation_and_refused_transitions() {
    let f = fixture().await;
    let t = f
        .keys
        .create_tenant("acme".parse().unwrap(), &actor())
        .await
        .unwrap();
    let mut request = NewKey::of(KeySpec::Ed25519);
    request.aliases = vec!["alias/release-signing".parse().unwrap()];
    let (key, _) = f.keys.create_key(t.id, request, &actor()).await.unwrap();
    assert_eq!(
        f.keys
            .resolve(t.id, "alias/release-signing")
            .await
            .unwrap()
            .id,
        key.id
    );

    let v2 = f.keys.rotate(t.id, key.id, &actor()).await.unwrap();
    let spare = f.keys.add_spare(t.id, key.id, &actor()).await.unwrap();
    let versions = f.keys.versions(t.id, key.id).await.unwrap();
    let states: Vec<_> = versions
        .iter()
        .map(|v| (v.number.get(), v.state, v.primary))
        .collect();
    assert_eq!(
        states,
        [
            (1, VersionState::Active, false),
            (2, VersionState::Active, true),
            (3, VersionState::Inactive, false)
        ]
    );
    // The backup becomes primary in one step.
    f.keys
        .activate(t.id, key.id, spare.number, &actor())
        .await
        .unwrap();
    let primary = f
        .keys
        .versions(t.id, key.id)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.primary)
        .unwrap();
    assert_eq!(primary.number, spare.number);

    // The primary cannot be retired; an active non-primary can, and not twice.
    let err = f
        .keys
        .set_version_state(t.id, key.id, spare.number, VersionState::Retiring, &actor())
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Conflict(_)), "{err}");
    f.keys
        .set_version_state(t.id, key.id, v2.number, VersionState::Retiring, &actor())
        .await
        .unwrap();
    let err = f
        .keys
        .set_version_state(t.id, key.id, v2.number, VersionState::Active, &actor())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "illegal key version transition: retiring -> active"
    );

    // Deletion: waiting period bounds, then cancel, then a refused transition.
    let too_short = f
        .keys
        .set_key_state(
            t.id,
            key.id,
            KeyState::PendingDeletion,
            Some(Duration::from_secs(86_400)),
            &actor(),
        )
        .await;
    assert!(matches!(too_short, Err(CoreError::Invalid(_))));
    let scheduled = f
        .keys
        .set_key_state(
            t.id,
            key.id,
            KeyState::PendingDeletion,
            Some(Duration::from_secs(7 * 86_400)),
            &actor(),
        )
        .await
        .unwrap();
    assert_eq!(
        scheduled.deletion_due,
        Some(f.clock.now().plus(Duration::from_secs(7 * 86_400)))
    );
    assert!(matches!(
        f.keys
            .set_key_state(t.id, key.id, KeyState::Destroyed, None, &actor())
            .await,
        Err(CoreError::Conflict(_))
    ));
    assert!(matches!(
        f.keys.rotate(t.id, key.id, &actor()).await,
        Err(CoreError::Conflict(_))
    ));
    f.keys
        .set_key_state(t.id, key.id, KeyState::Disabled, None, &actor())
        .await
        .unwrap();
    let err = f
        .keys
        .set_key_state(t.id, key.id, KeyState::Destroyed, None, &actor())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "illegal key transition: disabled -> destroyed"
    );
    let history: Vec<String> = f
        .store
        .key_events(t.id, key.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        history,
        [
            "key.created",
            "version.created",
            "key.rotated",
            "version.created",
            "version.activated",
            "version.state",
            "key.state",
            "key.state"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_custody_refuses_to_create_keys_and_changes_nothing() {
    let f = fixture().await;
    let t = f
        .keys
        .create_tenant("acme".parse().unwrap(), &actor())
        .await
        .unwrap();
    f.custody.seal();
    let err = f
        .keys
        .create_key(t.id, NewKey::of(KeySpec::Aes256), &actor())
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::Custody(_)), "{err}");
    assert!(f.store.list_keys(t.id).await.unwrap().is_empty());
}

/// Scheduled rotation with an injected clock: a key with a 90-day period rotates once
/// the period has passed (not before, not twice), and keeps decrypting the old version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_when_their_period_passes() {
    use coffer_core::{HumanDuration, RotationPolicy};
    let f = fixture().await;
    let kms = kms_over(&f);
    let t = f
        .keys
        .create_tenant("acme".parse().unwrap(), &actor())
        .await
        .unwrap();
    let mut request = NewKey::of(KeySpec::Aes256);
    request.rotation = RotationPolicy {
        period: Some(HumanDuration::days(90)),
        ..RotationPolicy::default()
    };
    let (key, _) = f.keys.create_key(t.id, request, &actor()).await.unwrap();
    let (other, _) = f
        .keys
        .create_key(t.id, NewKey::of(KeySpec::Aes256), &actor())
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(89 * 86_400));
    assert!(kms.rotate_due_keys().await.unwrap().is_empty());
    f.clock.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(kms.rotate_due_keys().await.unwrap(), vec![key.id]);
    assert!(
        kms.rotate_due_keys().await.unwrap().is_empty(),
        "not twice in one period"
    );
    let versions = f.keys.versions(t.id, key.id).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions[1].primary && versions[0].state == VersionState::Active);
    assert_eq!(
        f.keys.versions(t.id, other.id).await.unwrap().len(),
        1,
        "keys without a period stay"
    );
    f.clock.advance(Duration::from_secs(91 * 86_400));
    assert_eq!(kms.rotate_due_keys().await.unwrap(), vec![key.id]);
}

/// Overlap policy: a replaced version keeps decrypting for `overlap`, then its tracked
/// data keys move to the primary and it is retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_versions_retire_after_their_overlap() {
    use coffer_core::{HumanDuration, RotationPolicy};
    let f = fixture().await;
    let kms = kms_over(&f);
    let t = f
        .keys
        .create_tenant("acme".parse().unwrap(), &actor())
        .await
        .unwrap();
    let mut request = NewKey::of(KeySpec::Aes256);
    request.rotation = RotationPolicy {
        overlap: Some(HumanDuration::days(14)),
        ..RotationPolicy::default()
    };
    let (key, v1) = f.keys.create_key(t.id, request, &actor()).await.unwrap();
    let tracked = coffer_core::TrackedKey {
        tenant: t.id,
        track_id: "row-1".into(),
        key: key.id,
        version: 1,
        ciphertext: {
            let material = f.keys.load_material(&key, &v1).await.unwrap();
            let coffer_crypto::KeyMaterial::Aes256(aes) = material else {
                unreachable!()
            };
            let context = coffer_crypto::EncryptionContext::new();
            let binding = coffer_crypto::envelope::Binding {
                tenant_id: t.id.as_bytes(),
                context: &context,
            };
            let header = coffer_crypto::envelope::EnvelopeHeader {
                key_id: *key.id.as_bytes(),
                key_version: 1,
            };
            coffer_crypto::envelope::seal(&aes, header, binding, b"data key").unwrap()
        },
        context: "{}".into(),
    };
    f.store
        .track_key(&tracked, &audit_record(Some(t.id)))
        .await
        .unwrap();
    f.keys.rotate(t.id, key.id, &actor()).await.unwrap();
    f.clock.advance(Duration::from_secs(13 * 86_400));
    assert!(kms.retire_overlapped_versions().await.unwrap().is_empty());
    f.clock.advance(Duration::from_secs(2 * 86_400));
    assert_eq!(
        kms.retire_overlapped_versions().await.unwrap(),
        vec![(key.id, 1)]
    );
    let versions = f.keys.versions(t.id, key.id).await.unwrap();
    assert_eq!(versions[0].state, VersionState::Retired);
    let moved = f.store.get_tracked(t.id, "row-1").await.unwrap().unwrap();
    assert_eq!(
        moved.version, 2,
        "the tracked data key moved to the primary before retirement"
    );
}
