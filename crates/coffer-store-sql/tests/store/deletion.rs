//! Scheduled deletion with an injected clock: nothing happens before the due time; once
//! it has passed, the scheduler pass destroys the key and erases every version's
//! material from the store, records it in the audit log, and the key answers every
//! cryptographic operation as absent while management still shows it destroyed.

use std::sync::Arc;
use std::time::Duration;

use coffer_audit::entry::ExportedEntry;
use coffer_core::kms::{
    Caller, DELETION_PRINCIPAL, Kms, KmsError, KmsOptions, MintToken, SignInput,
};
use coffer_core::testing::fixtures::record;
use coffer_core::{Clock, KeyState, ManualClock, NewKey, Store, Timestamp, VersionState};
use coffer_crypto::{EncryptionContext, KeySpec};
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;

use super::backends::temp_dir;

const WEEK: Duration = Duration::from_secs(7 * 86_400);

struct World {
    kms: Kms,
    store: Arc<dyn Store>,
    clock: ManualClock,
    caller: Caller,
}

async fn world() -> World {
    let dir = temp_dir();
    let store: Arc<dyn Store> =
        Arc::new(SqlStore::open_sqlite(&dir.join("coffer.db")).await.unwrap());
    let custody =
        SealedCustody::init_key_file(dir.join("custody.json"), dir.join("unseal.key")).unwrap();
    custody.unseal_key_file(dir.join("unseal.key")).unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let kms = Kms::new(
        store.clone(),
        Arc::new(custody),
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        Arc::new(coffer_core::audit::NoAudit),
        Arc::new(coffer_core::offload::Inline),
        None,
        KmsOptions::default(),
    );
    let admin = kms
        .authenticate(&kms.initialize().await.unwrap().unwrap())
        .unwrap();
    kms.create_tenant(&admin, "acme").await.unwrap();
    let (token, _) = kms
        .mint_token(
            &admin,
            MintToken {
                tenant: Some("acme".into()),
                ..MintToken::default()
            },
        )
        .await
        .unwrap();
    let caller = kms.authenticate(&token).unwrap();
    World {
        kms,
        store,
        clock,
        caller,
    }
}

/// Every version's `(state, has material, primary)`, straight from the store.
async fn stored_versions(w: &World, key: &str) -> Vec<(VersionState, bool, bool)> {
    let details = w.kms.show_key(&w.caller, key).await.unwrap();
    w.store
        .list_versions(details.key.tenant, details.key.id)
        .await
        .unwrap()
        .iter()
        .map(|v| (v.state, !v.wrapped_material.is_empty(), v.primary))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_destroyed_once_its_waiting_period_has_passed() {
    let w = world().await;
    let aes = w
        .kms
        .create_key(&w.caller, NewKey::of(KeySpec::Aes256))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    let signing = w
        .kms
        .create_key(&w.caller, NewKey::of(KeySpec::Ed25519))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    // Two versions, so that more than the primary loses its material.
    w.kms.rotate_key(&w.caller, &aes).await.unwrap();
    let context = EncryptionContext::new();
    let sealed = w
        .kms
        .wrap(&w.caller, &aes, b"secret", &context)
        .await
        .unwrap();
    for key in [&aes, &signing] {
        w.kms
            .set_key_state(&w.caller, key, KeyState::PendingDeletion, Some(WEEK))
            .await
            .unwrap();
    }
    // A third key, scheduled a day later, stays pending a day longer.
    let later = w
        .kms
        .create_key(&w.caller, NewKey::of(KeySpec::Aes256))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    w.clock.advance(Duration::from_secs(86_400));
    w.kms
        .set_key_state(&w.caller, &later, KeyState::PendingDeletion, Some(WEEK))
        .await
        .unwrap();

    // A millisecond before the due time of the first two: nothing happens.
    w.clock
        .advance(WEEK - Duration::from_secs(86_400) - Duration::from_millis(1));
    assert!(w.kms.scheduled_pass("replica-a").await.unwrap());
    assert_eq!(
        stored_versions(&w, &aes).await,
        [
            (VersionState::Active, true, false),
            (VersionState::Active, true, true)
        ]
    );
    let shown = w.kms.show_key(&w.caller, &aes).await.unwrap();
    assert_eq!(shown.key.state, KeyState::PendingDeletion);
    // Still cancellable, and scheduled again (the cancel is not what this test is about).
    w.kms.cancel_deletion(&w.caller, &signing).await.unwrap();
    w.kms
        .set_key_state(&w.caller, &signing, KeyState::PendingDeletion, Some(WEEK))
        .await
        .unwrap();

    // Due: the pass destroys the AES key; the signing key was rescheduled a week on.
    w.clock.advance(Duration::from_millis(1));
    assert!(w.kms.scheduled_pass("replica-a").await.unwrap());
    assert_eq!(
        stored_versions(&w, &aes).await,
        [(VersionState::Destroyed, false, false); 2],
        "every version destroyed, no material left, no primary"
    );
    let shown = w.kms.show_key(&w.caller, &aes).await.unwrap();
    assert_eq!(
        (shown.key.state, shown.key.deletion_due),
        (KeyState::Destroyed, None)
    );
    for key in [&signing, &later] {
        let shown = w.kms.show_key(&w.caller, key).await.unwrap();
        assert_eq!(shown.key.state, KeyState::PendingDeletion, "{key}");
        assert!(stored_versions(&w, key).await.iter().all(|v| v.1));
    }

    // The destruction is in the audit log, as the deletion worker's.
    let log = w.store.audit_entries(0, 10_000).await.unwrap();
    let destroyed: Vec<ExportedEntry> = log
        .iter()
        .map(|(_, leaf)| serde_json::from_str::<ExportedEntry>(leaf).unwrap())
        .filter(|e| e.entry.op == "keys.destroy.scheduled")
        .collect();
    assert_eq!(destroyed.len(), 1, "{destroyed:?}");
    let entry = &destroyed[0].entry;
    assert_eq!(
        (
            entry.principal.as_str(),
            entry.key.as_deref(),
            entry.outcome.as_str()
        ),
        (DELETION_PRINCIPAL, Some(aes.as_str()), "ok")
    );

    // Gone for every cryptographic operation; the deletion can no longer be cancelled.
    let wrap = w.kms.wrap(&w.caller, &aes, b"more", &context).await;
    assert!(matches!(wrap, Err(KmsError::KeyDestroyed)), "{wrap:?}");
    let unwrap = w.kms.unwrap(&w.caller, &sealed.ciphertext, &context).await;
    assert!(matches!(unwrap, Err(KmsError::KeyDestroyed)), "{unwrap:?}");
    assert_eq!(KmsError::KeyDestroyed.code(), "not_found");
    let cancel = w.kms.cancel_deletion(&w.caller, &aes).await;
    assert!(matches!(cancel, Err(KmsError::Conflict(_))), "{cancel:?}");
    let enable = w
        .kms
        .set_key_state(&w.caller, &aes, KeyState::Enabled, None)
        .await;
    assert!(matches!(enable, Err(KmsError::Conflict(_))), "{enable:?}");

    // A week after its rescheduling, the signing key goes the same way.
    w.clock.advance(WEEK);
    assert!(w.kms.scheduled_pass("replica-a").await.unwrap());
    let sign = w
        .kms
        .sign(&w.caller, &signing, SignInput::Message(b"m"))
        .await;
    assert!(matches!(sign, Err(KmsError::KeyDestroyed)), "{sign:?}");
    assert_eq!(
        stored_versions(&w, &signing).await,
        [(VersionState::Destroyed, false, false)]
    );
    // A second pass finds nothing more to do, and another replica none at all.
    assert!(w.kms.destroy_due_keys().await.unwrap().is_empty());
    assert!(!w.kms.scheduled_pass("replica-b").await.unwrap());
}

/// A deletion that is due but cancelled in the window between the worker reading the
/// key and destroying it is not carried out: the store re-checks inside the transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescheduled_deletion_is_not_carried_out_early() {
    let w = world().await;
    let details = w
        .kms
        .create_key(&w.caller, NewKey::of(KeySpec::Aes256))
        .await
        .unwrap();
    let (tenant, id) = (details.key.tenant, details.key.id);
    let key = id.to_string();
    let keys = w.kms.key_service();
    let actor = coffer_core::testing::fixtures::actor();
    w.kms
        .set_key_state(&w.caller, &key, KeyState::PendingDeletion, Some(WEEK))
        .await
        .unwrap();
    // Before the due time the service refuses outright.
    let early = keys.destroy_due_key(tenant, id, &actor).await;
    assert!(
        matches!(early, Err(coffer_core::CoreError::Conflict(_))),
        "{early:?}"
    );
    // Due at `now`, the deletion is cancelled and scheduled anew behind the worker's
    // back (straight in the store, as another replica would): the destruction, checked
    // against `now` in the transaction, is refused and nothing is erased.
    w.clock.advance(WEEK);
    let rescheduled = w.clock.now().plus(WEEK);
    let changes = [
        coffer_core::store::Change::KeyState {
            from: KeyState::PendingDeletion,
            to: KeyState::Disabled,
            deletion_due: None,
        },
        coffer_core::store::Change::KeyState {
            from: KeyState::Disabled,
            to: KeyState::PendingDeletion,
            deletion_due: Some(rescheduled),
        },
    ];
    // Sealed as that replica would seal them.
    let stored = w.store.get_key(tenant, id).await.unwrap().unwrap();
    let changes = keys.seal().seal_changes(&stored, &[], &changes).unwrap();
    w.store
        .apply(
            tenant,
            id,
            &changes,
            &record(&coffer_core::Event::key(
                tenant,
                id,
                None,
                "key.state",
                "rescheduled",
                w.clock.now(),
            )),
        )
        .await
        .unwrap();
    let raced = w
        .store
        .apply(
            tenant,
            id,
            &[coffer_core::store::Change::DestroyKey {
                due_by: w.clock.now(),
            }],
            &record(&coffer_core::Event::key(
                tenant,
                id,
                None,
                "key.destroyed",
                "raced",
                w.clock.now(),
            )),
        )
        .await;
    assert!(
        matches!(raced, Err(coffer_core::StoreError::Conflict(_))),
        "{raced:?}"
    );
    assert!(w.kms.destroy_due_keys().await.unwrap().is_empty());
    assert!(stored_versions(&w, &key).await.iter().all(|v| v.1));
}
