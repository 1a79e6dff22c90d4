//! Conformance: HSM-resident keys' protection and versions' locations round-trip.

use std::sync::Arc;

use crate::hsm::{HsmKeyRef, Protection};
use crate::lifecycle::VersionState;
use crate::store::Store;
use crate::testing::fixtures;
use crate::testing::store::new_tenant;

/// A key's protection and each version's HSM location come back as stored; software
/// keys and versions have none.
pub async fn hsm_protection_and_locations_round_trip(store: Arc<dyn Store>) {
    let t = new_tenant(&store, "acme").await;
    let mut key = fixtures::key(t.id, &[]);
    key.protection = Protection::Hsm;
    let mut first = fixtures::version(key.id, 1, VersionState::Active, true);
    let location = HsmKeyRef {
        slot: 1_234_567_890_123,
        token: "coffer \"hsm\"".into(),
        label: "coffer:key:v1".into(),
        id: vec![0x00, 0xff, 0x10, 0xab],
    };
    first.hsm = Some(location.clone());
    let event = fixtures::event(t.id, key.id, "key.created");
    store
        .create_key(&key, &first, &fixtures::record(&event))
        .await
        .unwrap();
    let got = store.get_key(t.id, key.id).await.unwrap().unwrap();
    assert_eq!(got.protection, Protection::Hsm);
    let versions = store.list_versions(t.id, key.id).await.unwrap();
    assert_eq!(versions[0].hsm, Some(location));

    let software = super::store::new_key(&store, t.id, &[]).await;
    let got = store.get_key(t.id, software.id).await.unwrap().unwrap();
    assert_eq!(got.protection, Protection::Software);
    let versions = store.list_versions(t.id, software.id).await.unwrap();
    assert_eq!(versions[0].hsm, None);
}
