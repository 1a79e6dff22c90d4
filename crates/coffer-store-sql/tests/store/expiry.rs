//! Seed 004 with an injected clock: months of validity, auto-rotation before expiry,
//! overlap, expiry errors and backup activation, in milliseconds.

use std::sync::Arc;
use std::time::Duration;

use coffer_core::kms::{Caller, Kms, KmsError, KmsOptions, MintToken, SignInput};
use coffer_core::{
    Clock, HumanDuration, KeyPurpose, ManualClock, NewKey, RotationPolicy, Store, Timestamp,
    VersionState,
};
use coffer_crypto::KeySpec;
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;

use super::backends::temp_dir;

const DAY: u64 = 86_400;

struct World {
    kms: Kms,
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
        store,
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
    kms.create_tenant(&admin, "releases").await.unwrap();
    let (token, _) = kms
        .mint_token(
            &admin,
            MintToken {
                tenant: Some("releases".into()),
                ..MintToken::default()
            },
        )
        .await
        .unwrap();
    let caller = kms.authenticate(&token).unwrap();
    World { kms, clock, caller }
}

fn signing_key(validity_days: u64, rotation: RotationPolicy) -> NewKey {
    let mut request = NewKey::of(KeySpec::Ed25519);
    request.purpose = KeyPurpose::Sign;
    request.validity = Some(HumanDuration::days(validity_days));
    request.rotation = rotation;
    request
}

async fn states(w: &World, key: &str) -> Vec<(u32, VersionState, bool)> {
    let details = w.kms.show_key(&w.caller, key).await.unwrap();
    details
        .versions
        .iter()
        .map(|v| (v.number.get(), v.state, v.primary))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_key_rotates_30_days_before_expiry_and_retires_after_14_days_of_overlap() {
    let w = world().await;
    let policy = RotationPolicy {
        before_expiry: Some(HumanDuration::days(30)),
        overlap: Some(HumanDuration::days(14)),
        period: None,
    };
    let key = w
        .kms
        .create_key(&w.caller, signing_key(365, policy))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    let old_signature = w
        .kms
        .sign(&w.caller, &key, SignInput::Message(b"release 1"))
        .await
        .unwrap();

    w.clock.advance(Duration::from_secs(334 * DAY));
    assert!(
        w.kms.rotate_due_keys().await.unwrap().is_empty(),
        "31 days before expiry: not yet"
    );
    w.clock.advance(Duration::from_secs(DAY));
    assert_eq!(
        w.kms.rotate_due_keys().await.unwrap().len(),
        1,
        "30 days before expiry: rotated"
    );
    assert_eq!(
        states(&w, &key).await,
        [
            (1, VersionState::Active, false),
            (2, VersionState::Active, true)
        ]
    );

    // During the overlap the old version still verifies what it signed.
    w.clock.advance(Duration::from_secs(13 * DAY));
    assert!(w.kms.retire_overlapped_versions().await.unwrap().is_empty());
    let check = w
        .kms
        .verify(
            &w.caller,
            &key,
            Some(1),
            SignInput::Message(b"release 1"),
            &old_signature.signature,
        )
        .await
        .unwrap();
    assert!(check.valid);
    w.clock.advance(Duration::from_secs(2 * DAY));
    assert_eq!(w.kms.retire_overlapped_versions().await.unwrap().len(), 1);
    assert_eq!(states(&w, &key).await[0].1, VersionState::Retired);
    let refused = w
        .kms
        .verify(
            &w.caller,
            &key,
            Some(1),
            SignInput::Message(b"release 1"),
            &old_signature.signature,
        )
        .await;
    assert!(matches!(refused, Err(KmsError::VersionRetired(1))));
    w.kms
        .sign(&w.caller, &key, SignInput::Message(b"release 2"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_refuses_to_sign_until_a_backup_is_activated() {
    let w = world().await;
    let key = w
        .kms
        .create_key(&w.caller, signing_key(30, RotationPolicy::default()))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    w.clock.advance(Duration::from_secs(20 * DAY));
    let spare = w.kms.add_spare(&w.caller, &key).await.unwrap();
    let spare_version = spare
        .versions
        .iter()
        .find(|v| v.state == VersionState::Inactive)
        .unwrap()
        .number
        .get();
    w.clock.advance(Duration::from_secs(11 * DAY));
    assert!(
        w.kms.rotate_due_keys().await.unwrap().is_empty(),
        "no auto-rotation policy"
    );
    let refused = w
        .kms
        .sign(&w.caller, &key, SignInput::Message(b"release"))
        .await;
    match refused {
        Err(error @ KmsError::KeyExpired(1)) => {
            assert!(error.to_string().contains("signing key has expired"))
        }
        other => panic!("expected the expiry error, got {other:?}"),
    }
    let report = w.kms.expiry_report().await.unwrap();
    assert!(
        report[0].3 < w.clock.now(),
        "the expiry report shows it expired"
    );
    w.kms
        .activate(&w.caller, &key, spare_version)
        .await
        .unwrap();
    let signed = w
        .kms
        .sign(&w.caller, &key, SignInput::Message(b"release"))
        .await
        .unwrap();
    assert_eq!(signed.version.get(), spare_version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spares_validity_counts_from_its_activation() {
    let w = world().await;
    let key = w
        .kms
        .create_key(&w.caller, signing_key(30, RotationPolicy::default()))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    let spare = w.kms.add_spare(&w.caller, &key).await.unwrap();
    let created = spare
        .versions
        .iter()
        .find(|v| v.state == VersionState::Inactive)
        .unwrap()
        .clone();
    // The spare waits 25 of its 30 days in reserve, then comes into service.
    w.clock.advance(Duration::from_secs(25 * DAY));
    let activated_at = w.clock.now();
    let details = w
        .kms
        .activate(&w.caller, &key, created.number.get())
        .await
        .unwrap();
    let active = details
        .versions
        .iter()
        .find(|v| v.number == created.number)
        .unwrap();
    assert_eq!(active.not_before, activated_at);
    assert_eq!(
        active.not_after,
        Some(activated_at.plus(Duration::from_secs(30 * DAY))),
        "a full validity from activation, not five days left"
    );
    // Ten days on it still signs (it would have expired 30 days after its creation).
    w.clock.advance(Duration::from_secs(10 * DAY));
    let signed = w
        .kms
        .sign(&w.caller, &key, SignInput::Message(b"release"))
        .await
        .unwrap();
    assert_eq!(signed.version, created.number);
    let history = w.kms.key_history(&w.caller, &key).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.detail.contains("validity counted from activation")),
        "{history:?}"
    );
}
