//! Destroying HSM-resident versions destroys their token objects: a version destroyed
//! on its own (a rotation's compensation) and a key destroyed when its deletion falls
//! due. Driven through the key service on a SQLite store and a SoftHSM2 token, with a
//! manual clock for the deletion's waiting period.

use std::sync::Arc;
use std::time::Duration;

use coffer_core::hsm::{HsmError, HsmInput, KeyHsm, Protection};
use coffer_core::{
    Actor, Clock, KeyService, KeyState, ManualClock, NewKey, Store, TenantName, Timestamp,
    VersionState,
};
use coffer_crypto::{KeySpec, SignatureAlgorithm};
use coffer_custody_pkcs11::Pkcs11Custody;
use coffer_store_sql::SqlStore;

use super::harness::temp_dir;
use super::hsm::softhsm;

fn sign_with(custody: &Pkcs11Custody, at: &coffer_core::HsmKeyRef) -> Result<Vec<u8>, HsmError> {
    custody.sign(
        at,
        KeySpec::EcdsaP256,
        SignatureAlgorithm::EcdsaP256Sha256,
        HsmInput::Digest(&[9; 32]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroyed_hsm_versions_leave_the_token() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let custody = Pkcs11Custody::init(hsm.config(&hsm.new_token())).expect("init");
    let dir = temp_dir();
    let store: Arc<dyn Store> =
        Arc::new(SqlStore::open_sqlite(&dir.join("coffer.db")).await.unwrap());
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let keys = KeyService::new(
        store,
        custody.clone(),
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        Some(custody.clone() as Arc<dyn KeyHsm>),
        Arc::new(
            coffer_core::state_seal::StateSeal::keyed(&coffer_crypto::MacKey::generate().unwrap())
                .unwrap(),
        ),
    );
    let actor = Actor::new("test", "test", "test");
    let tenant = keys
        .create_tenant("acme".parse::<TenantName>().unwrap(), &actor)
        .await
        .unwrap();
    let request = NewKey {
        protection: Protection::Hsm,
        ..NewKey::of(KeySpec::EcdsaP256)
    };
    let (key, first) = keys.create_key(tenant.id, request, &actor).await.unwrap();
    let first_at = first.hsm.clone().expect("in the HSM");
    sign_with(&custody, &first_at).expect("version 1 signs");

    // A pending version destroyed (as a failed rotation compensates).
    let pending = keys
        .add_version_to(tenant.id, key.id, VersionState::Pending, &actor)
        .await
        .unwrap();
    let pending_at = pending.hsm.clone().expect("in the HSM");
    sign_with(&custody, &pending_at).expect("the pending version exists");
    keys.set_version_state(
        tenant.id,
        key.id,
        pending.number,
        VersionState::Destroyed,
        &actor,
    )
    .await
    .unwrap();
    assert!(matches!(
        sign_with(&custody, &pending_at),
        Err(HsmError::Missing)
    ));
    sign_with(&custody, &first_at).expect("version 1 is untouched");

    // The whole key, once its deletion is due.
    keys.set_key_state(
        tenant.id,
        key.id,
        KeyState::PendingDeletion,
        Some(Duration::from_secs(7 * 86_400)),
        &actor,
    )
    .await
    .unwrap();
    clock.advance(Duration::from_secs(8 * 86_400));
    keys.destroy_due_key(tenant.id, key.id, &actor)
        .await
        .unwrap();
    assert!(matches!(
        sign_with(&custody, &first_at),
        Err(HsmError::Missing)
    ));
}
