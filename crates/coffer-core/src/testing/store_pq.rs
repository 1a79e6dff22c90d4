//! `Store` conformance case of tenants' PQ policy overrides.

use std::sync::Arc;

use coffer_crypto::PqVerifyMode;

use crate::pq::{Change, HybridSigning, PqChange, PqOverrides, RolloutPercent};
use crate::store::Store;
use crate::testing::fixtures;

use super::store::new_tenant;

type S = Arc<dyn Store>;

fn change(
    verify_mode: Change<PqVerifyMode>,
    signing: Change<HybridSigning>,
    rollout: Change<RolloutPercent>,
) -> PqChange {
    PqChange {
        verify_mode,
        signing,
        rollout,
    }
}

/// Each override is kept, cleared or set on its own; the answer and the listing are
/// the overrides after the change; a tenant left with none is not listed; concurrent
/// changes of different settings of one tenant both hold.
pub async fn tenant_pq_overrides_change_one_setting_at_a_time(store: S) {
    let acme = new_tenant(&store, "acme").await;
    let globex = new_tenant(&store, "globex").await;
    let record = || fixtures::audit_record(Some(acme.id));
    let quarter = RolloutPercent::new(25).unwrap();
    assert!(store.tenant_pq_policies().await.unwrap().is_empty());

    let after = store
        .change_tenant_pq_policy(
            acme.id,
            &change(Change::Set(PqVerifyMode::Or), Change::Keep, Change::Keep),
            &record(),
        )
        .await
        .unwrap();
    let only_mode = PqOverrides {
        verify_mode: Some(PqVerifyMode::Or),
        ..PqOverrides::default()
    };
    assert_eq!(after, only_mode);
    let after = store
        .change_tenant_pq_policy(
            acme.id,
            &change(
                Change::Keep,
                Change::Set(HybridSigning::ClassicalHalf),
                Change::Set(quarter),
            ),
            &record(),
        )
        .await
        .unwrap();
    let all_three = PqOverrides {
        verify_mode: Some(PqVerifyMode::Or),
        signing: Some(HybridSigning::ClassicalHalf),
        rollout: Some(quarter),
    };
    assert_eq!(after, all_three);
    assert_eq!(
        store.tenant_pq_policies().await.unwrap(),
        vec![(acme.id, all_three)]
    );

    // Cleared one at a time; none left, no row.
    let after = store
        .change_tenant_pq_policy(
            acme.id,
            &change(Change::Clear, Change::Keep, Change::Clear),
            &record(),
        )
        .await
        .unwrap();
    assert_eq!(
        after,
        PqOverrides {
            signing: Some(HybridSigning::ClassicalHalf),
            ..PqOverrides::default()
        }
    );
    let after = store
        .change_tenant_pq_policy(
            acme.id,
            &change(Change::Keep, Change::Clear, Change::Keep),
            &record(),
        )
        .await
        .unwrap();
    assert!(after.is_empty());
    assert!(store.tenant_pq_policies().await.unwrap().is_empty());

    // Two changes of different settings at once: both hold.
    let mode_change = change(
        Change::Set(PqVerifyMode::PqOnly),
        Change::Keep,
        Change::Keep,
    );
    let rollout_change = change(Change::Keep, Change::Keep, Change::Set(quarter));
    let (record_a, record_b) = (
        fixtures::audit_record(Some(globex.id)),
        fixtures::audit_record(Some(globex.id)),
    );
    let (a, b) = tokio::join!(
        store.change_tenant_pq_policy(globex.id, &mode_change, &record_a),
        store.change_tenant_pq_policy(globex.id, &rollout_change, &record_b),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(
        store.tenant_pq_policies().await.unwrap(),
        vec![(
            globex.id,
            PqOverrides {
                verify_mode: Some(PqVerifyMode::PqOnly),
                signing: None,
                rollout: Some(quarter),
            }
        )]
    );
}
