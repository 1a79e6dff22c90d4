//! `Store` conformance cases for records beside the key lifecycle: server secrets,
//! token records, the audit log, tracked data keys, certificate chains and leases.

use std::sync::Arc;

use crate::event::Event;
use crate::ids::{KeyId, TenantId};
use crate::store::{Store, StoreError};
use crate::testing::fixtures::{self, T0};
use crate::time::HumanDuration;
use crate::token::{TokenId, TokenKind, TokenRecord};

use super::store::{new_key, new_tenant};

type S = Arc<dyn Store>;

/// Server secrets are written once and read back; a second write is refused.
pub async fn server_secrets_are_write_once(store: S) {
    assert_eq!(store.get_secret("token-root").await.unwrap(), None);
    store.put_secret("token-root", b"wrapped-1").await.unwrap();
    let err = store
        .put_secret("token-root", b"wrapped-2")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store.get_secret("token-root").await.unwrap().unwrap(),
        b"wrapped-1"
    );
}

/// Token records round-trip; revocation is recorded once.
pub async fn token_records_round_trip_and_revoke(store: S) {
    let t = new_tenant(&store, "acme").await;
    let admin = TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::Admin,
        description: "root".into(),
        created_at: T0,
        revoked_at: None,
        grant_tag: Some([7; 32]),
    };
    let tenant = TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::Tenant(t.id),
        description: String::new(),
        grant_tag: None,
        ..admin.clone()
    };
    store
        .insert_token(&admin, &fixtures::audit_record(None))
        .await
        .unwrap();
    store
        .insert_token(&tenant, &fixtures::audit_record(None))
        .await
        .unwrap();
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&admin) && listed.contains(&tenant));
    let later = T0.plus(HumanDuration::days(1).get());
    store
        .revoke_token(tenant.id, later, &[9; 32], &fixtures::audit_record(None))
        .await
        .unwrap();
    assert!(matches!(
        store
            .revoke_token(tenant.id, later, &[8; 32], &fixtures::audit_record(None))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let revoked = store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == tenant.id)
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(later));
    // The revocation's tag replaced the grant's, and the refused second one wrote none.
    assert_eq!(revoked.grant_tag, Some([9; 32]));
}

/// Binding grants tags only unbound records and stores the marker with them; a second
/// binding (another replica) is a `Conflict` that changes nothing.
pub async fn token_grants_bind_once(store: S) {
    let t = new_tenant(&store, "acme").await;
    let bound = TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::Admin,
        description: String::new(),
        created_at: T0,
        revoked_at: None,
        grant_tag: Some([1; 32]),
    };
    let legacy = TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::Tenant(t.id),
        grant_tag: None,
        ..bound.clone()
    };
    for record in [&bound, &legacy] {
        store
            .insert_token(record, &fixtures::audit_record(None))
            .await
            .unwrap();
    }
    let tags = [(bound.id, [2; 32]), (legacy.id, [3; 32])];
    store
        .bind_token_grants(&tags, ("marker", b"m"), &fixtures::audit_record(None))
        .await
        .unwrap();
    let tag_of =
        |records: &[TokenRecord], id| records.iter().find(|r| r.id == id).unwrap().grant_tag;
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(
        tag_of(&listed, bound.id),
        Some([1; 32]),
        "a bound record keeps its tag"
    );
    assert_eq!(tag_of(&listed, legacy.id), Some([3; 32]));
    assert_eq!(
        store.get_secret("marker").await.unwrap(),
        Some(b"m".to_vec())
    );
    let again = [(legacy.id, [4; 32])];
    assert!(matches!(
        store
            .bind_token_grants(&again, ("marker", b"n"), &fixtures::audit_record(None))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(tag_of(&listed, legacy.id), Some([3; 32]));
}

/// Audit entries get contiguous indices from the store, chained leaf to leaf; a change
/// writes its entry in its own transaction, and a refused change writes none.
pub async fn audit_entries_append_and_read_in_order(store: S) {
    use coffer_audit::entry::{ExportedEntry, hex};
    let entry = |op: &str| {
        fixtures::actor()
            .as_op(op)
            .entry(None, (None, None), T0, None)
    };
    let first = store
        .append_audit(&[entry("a"), entry("b"), entry("c")])
        .await
        .unwrap();
    assert_eq!((first.first, first.leaves.len()), (0, 3));
    let t = new_tenant(&store, "acme").await;
    let dup = crate::tenant::Tenant {
        id: TenantId::generate(),
        ..t.clone()
    };
    let event = Event::tenant(dup.id, "tenant.created", "dup", T0);
    assert!(
        store
            .create_tenant(&dup, b"kek", &fixtures::record(&event))
            .await
            .is_err()
    );
    let next = store.append_audit(&[entry("d")]).await.unwrap();
    assert_eq!(
        next.first, 4,
        "the tenant's entry took index 3; the refusal none"
    );
    let rows = store.audit_entries(0, 100).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    let mut prev = [0u8; 32];
    for (index, leaf) in &rows {
        let parsed: ExportedEntry = serde_json::from_str(leaf).unwrap();
        assert_eq!(
            (parsed.index, parsed.prev.as_str()),
            (*index, hex(&prev).as_str())
        );
        prev = coffer_audit::merkle::leaf_hash(leaf.as_bytes());
    }
    let created: ExportedEntry = serde_json::from_str(&rows[3].1).unwrap();
    assert_eq!(created.entry.tenant, t.id.to_string());
    assert_eq!(
        next.leaves[0], prev,
        "the returned leaf hash is the stored one"
    );
    assert_eq!(
        store.audit_entries(3, 1).await.unwrap(),
        rows[3..4].to_vec()
    );
    store.save_checkpoint(5, "note-5", T0).await.unwrap();
    store.save_checkpoint(5, "other", T0).await.unwrap();
    store.save_checkpoint(3, "note-3", T0).await.unwrap();
    assert_eq!(
        store.checkpoints().await.unwrap(),
        vec![(3, "note-3".to_owned()), (5, "note-5".to_owned())]
    );
}

/// Tracked data keys register once, list by version, and rewrap by compare-and-set.
pub async fn tracked_keys_rewrap_by_compare_and_set(store: S) {
    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let tracked = crate::store::TrackedKey {
        tenant: t.id,
        track_id: "blob-1".into(),
        key: key.id,
        version: 1,
        ciphertext: vec![1, 2, 3],
        context: "{}".into(),
    };
    let audit = fixtures::audit_record(Some(t.id));
    store.track_key(&tracked, &audit).await.unwrap();
    assert!(matches!(
        store.track_key(&tracked, &audit).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.tracked_under(t.id, key.id, 1, 10).await.unwrap(),
        vec![tracked.clone()]
    );
    let second = crate::store::TrackedKey {
        track_id: "blob-2".into(),
        ..tracked.clone()
    };
    store.track_key(&second, &audit).await.unwrap();
    let item = |id: &str, ciphertext: Vec<u8>| crate::store::Rewrapped {
        track_id: id.into(),
        ciphertext,
    };
    // A batch commits together; an item already moved (by a concurrent or crashed run)
    // is left alone and not counted.
    assert_eq!(
        store
            .rewrap_tracked(t.id, 1, 2, &[item("blob-1", vec![4, 5])])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .rewrap_tracked(
                t.id,
                1,
                2,
                &[item("blob-1", vec![6]), item("blob-2", vec![7])]
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.count_tracked(t.id, key.id).await.unwrap(),
        vec![(2, 2)]
    );
    let got = store.get_tracked(t.id, "blob-1").await.unwrap().unwrap();
    assert_eq!((got.version, got.ciphertext), (2, vec![4, 5]));
}

/// A version's certificate chain is set with its event, read back, replaced and
/// removed; another tenant's version is out of reach.
pub async fn certificate_chains_are_kept_per_version(store: S) {
    let t = new_tenant(&store, "acme").await;
    let other = new_tenant(&store, "other").await;
    let key = new_key(&store, t.id, &[]).await;
    let v1 = crate::ids::VersionNumber::new(1).expect("version 1");
    let event = || crate::testing::fixtures::event(t.id, key.id, "version.certificate");
    assert_eq!(store.get_cert_chain(t.id, key.id, v1).await.unwrap(), None);
    let events_before = store.key_events(t.id, key.id).await.unwrap().len();
    store
        .set_cert_chain(
            t.id,
            key.id,
            v1,
            Some("chain-1"),
            &fixtures::record(&event()),
        )
        .await
        .unwrap();
    store
        .set_cert_chain(
            t.id,
            key.id,
            v1,
            Some("chain-2"),
            &fixtures::record(&event()),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_cert_chain(t.id, key.id, v1)
            .await
            .unwrap()
            .as_deref(),
        Some("chain-2")
    );
    assert_eq!(
        store.key_events(t.id, key.id).await.unwrap().len(),
        events_before + 2
    );
    assert_eq!(
        store.get_cert_chain(other.id, key.id, v1).await.unwrap(),
        None
    );
    assert!(matches!(
        store
            .set_cert_chain(other.id, key.id, v1, Some("x"), &fixtures::record(&event()))
            .await,
        Err(StoreError::NotFound(_))
    ));
    let v9 = crate::ids::VersionNumber::new(9).expect("version 9");
    assert!(matches!(
        store
            .set_cert_chain(t.id, key.id, v9, Some("x"), &fixtures::record(&event()))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store
        .set_cert_chain(t.id, key.id, v1, None, &fixtures::record(&event()))
        .await
        .unwrap();
    assert_eq!(store.get_cert_chain(t.id, key.id, v1).await.unwrap(), None);
    // Listing versions is unaffected by the chain column.
    assert_eq!(store.list_versions(t.id, key.id).await.unwrap().len(), 1);
}

/// A lease has one holder until it expires; its holder renews it.
pub async fn leases_have_one_holder_until_they_expire(store: S) {
    let later = |minutes: u64| T0.plus(std::time::Duration::from_secs(minutes * 60));
    assert!(
        store
            .try_lease("scheduler", "replica-a", T0, later(1))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease("scheduler", "replica-b", T0, later(1))
            .await
            .unwrap()
    );
    assert!(
        store
            .try_lease("scheduler", "replica-a", later(0), later(2))
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        !store
            .try_lease("scheduler", "replica-b", later(1), later(3))
            .await
            .unwrap(),
        "not yet expired"
    );
    assert!(
        store
            .try_lease("scheduler", "replica-b", later(3), later(4))
            .await
            .unwrap(),
        "taken over after expiry"
    );
    assert!(
        store
            .try_lease("other", "replica-a", T0, later(1))
            .await
            .unwrap(),
        "leases are independent"
    );
}

/// A new key with its first version and the record of its creation.
fn creation(
    tenant: TenantId,
    aliases: &[&str],
) -> (crate::Key, crate::KeyVersion, crate::store::Record) {
    let key = fixtures::key(tenant, aliases);
    let first = fixtures::version(key.id, 1, crate::lifecycle::VersionState::Active, true);
    let record = fixtures::record(&fixtures::event(tenant, key.id, "key.created"));
    (key, first, record)
}

/// Creates one key per alias, each from its own task, all at once; each key's answer,
/// in the order of `aliases`.
async fn create_together(
    store: &S,
    tenant: TenantId,
    aliases: impl Iterator<Item = String>,
) -> Vec<(KeyId, Result<(), StoreError>)> {
    let tasks: Vec<_> = aliases
        .map(|alias| {
            let store = store.clone();
            tokio::spawn(async move {
                let (key, first, record) = creation(tenant, &[alias.as_str()]);
                (key.id, store.create_key(&key, &first, &record).await)
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Concurrent key creations each commit or fail on their own: one whose alias is taken
/// is refused and leaves nothing (no key, no audit entry), the others all commit, and
/// the audit log stays contiguous with exactly one entry per created key.
pub async fn concurrent_key_creations_commit_independently(store: S) {
    let t = new_tenant(&store, "acme").await;
    new_key(&store, t.id, &["alias/taken"]).await;
    let before = store.audit_entries(0, 10_000).await.unwrap().len();
    let aliases = (0..24).map(|i| match i {
        7 => "alias/taken".to_owned(),
        _ => format!("alias/k{i}"),
    });
    let mut created = 0;
    for (id, outcome) in create_together(&store, t.id, aliases).await {
        match outcome {
            Ok(()) => {
                created += 1;
                assert!(store.get_key(t.id, id).await.unwrap().is_some());
            }
            Err(StoreError::Conflict(_)) => {
                assert!(store.get_key(t.id, id).await.unwrap().is_none());
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(created, 23);
    let rows = store.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(rows.len(), before + 23);
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, (index, _))| *index == i as u64)
    );
}

/// Creations that arrive together and name the same new alias: exactly one commits,
/// the other is refused alone (`Conflict`) and leaves nothing, and every creation
/// beside them commits with its audit entry.
pub async fn a_group_with_one_alias_twice_commits_all_but_one(store: S) {
    let t = new_tenant(&store, "acme").await;
    let before = store.audit_entries(0, 10_000).await.unwrap().len();
    let aliases = (0..16).map(|i| match i % 8 {
        3 => "alias/twice".to_owned(),
        _ => format!("alias/k{i}"),
    });
    let mut created = 0;
    for (id, outcome) in create_together(&store, t.id, aliases).await {
        match outcome {
            Ok(()) => created += 1,
            Err(StoreError::Conflict(_)) => {
                assert!(store.get_key(t.id, id).await.unwrap().is_none());
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(created, 15);
    assert_eq!(store.list_keys(t.id).await.unwrap().len(), 15);
    let rows = store.audit_entries(0, 10_000).await.unwrap();
    assert_eq!(rows.len(), before + 15);
}

/// A tenant shredded is given no more keys, even by a service that still holds its
/// tenant key in memory: the creation is refused (`NotFound`) and writes nothing.
pub async fn a_shredded_tenant_gets_no_new_keys(store: S) {
    let t = new_tenant(&store, "acme").await;
    let event = Event::tenant(t.id, "tenant.shredded", "confirmed", T0);
    store
        .shred_tenant(t.id, &fixtures::record(&event))
        .await
        .unwrap();
    let before = store.audit_entries(0, 10_000).await.unwrap().len();
    let (key, first, record) = creation(t.id, &[]);
    let refused = store.create_key(&key, &first, &record).await.unwrap_err();
    assert!(matches!(refused, StoreError::NotFound(_)), "{refused}");
    assert!(store.get_key(t.id, key.id).await.unwrap().is_none());
    assert_eq!(store.audit_entries(0, 10_000).await.unwrap().len(), before);
}

/// The reference tracker's counts add up: counts sum, the earliest first use and the
/// latest last use stay, whatever order batches land in; reads are per key and tenant.
pub async fn version_use_adds_up_per_principal_and_kind(store: S) {
    use crate::ids::VersionNumber;
    use crate::usage::{UseCount, UseKind, UseOf, VersionUse};

    let t = new_tenant(&store, "acme").await;
    let key = new_key(&store, t.id, &[]).await;
    let other = new_key(&store, t.id, &[]).await;
    let at = |ms: i64| crate::time::Timestamp::from_millis(ms);
    let principal = TokenId::generate();
    let of = |key: KeyId, kind| UseOf {
        tenant: t.id,
        key,
        version: VersionNumber::new(1).unwrap(),
        principal,
        kind,
    };
    let row = |of, first, last, count| VersionUse {
        of,
        count: UseCount {
            first_seen: at(first),
            last_seen: at(last),
            count,
        },
    };
    store.add_use(&[]).await.unwrap();
    store
        .add_use(&[
            row(of(key.id, UseKind::Encrypt), 100, 200, 2),
            row(of(key.id, UseKind::Decrypt), 150, 150, 1),
            row(of(other.id, UseKind::Sign), 10, 10, 1),
        ])
        .await
        .unwrap();
    // A later batch carrying an earlier first use (another replica's, flushed late).
    store
        .add_use(&[row(of(key.id, UseKind::Encrypt), 50, 120, 3)])
        .await
        .unwrap();
    let mut stored = store.key_use(t.id, key.id).await.unwrap();
    stored.sort_by_key(|u| u.of.kind);
    assert_eq!(
        stored,
        [
            row(of(key.id, UseKind::Encrypt), 50, 200, 5),
            row(of(key.id, UseKind::Decrypt), 150, 150, 1),
        ]
    );
    // Scoped by tenant and key.
    let globex = new_tenant(&store, "globex").await;
    assert!(store.key_use(globex.id, key.id).await.unwrap().is_empty());
    assert_eq!(store.key_use(t.id, other.id).await.unwrap().len(), 1);
}
