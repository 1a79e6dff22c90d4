//! Batch wrap, unwrap and rewrap record their items' audit entries as one group (one
//! durable commit per batch), with one result per item; and a refused unwrap names
//! the version its ciphertext carries.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use coffer_core::audit::{AuditEntry, AuditSink, AuditUnavailable};
use coffer_core::kms::{Kms, KmsOptions, MintToken, RewrapItem, UnwrapItem, WrapItem};
use coffer_core::{Clock, ManualClock, NewKey, Store, Timestamp, VersionState};
use coffer_crypto::{EncryptionContext, KeySpec};
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;

use super::backends::temp_dir;

/// Keeps what arrives, and how: entries recorded one by one, and groups.
#[derive(Default)]
struct Recorder {
    singles: Mutex<Vec<AuditEntry>>,
    groups: Mutex<Vec<Vec<AuditEntry>>>,
}

#[async_trait]
impl AuditSink for Recorder {
    async fn record(&self, entry: AuditEntry) -> Result<(), AuditUnavailable> {
        self.singles.lock().unwrap().push(entry);
        Ok(())
    }

    async fn record_group(&self, entries: Vec<AuditEntry>) -> Result<(), AuditUnavailable> {
        self.groups.lock().unwrap().push(entries);
        Ok(())
    }
}

async fn kms(sink: Arc<Recorder>) -> (Kms, coffer_core::kms::Caller) {
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
        Arc::new(clock) as Arc<dyn Clock>,
        sink,
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
    (kms, caller)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_audit_group_with_one_result_per_item() {
    let sink = Arc::new(Recorder::default());
    let (kms, caller) = kms(sink.clone()).await;
    let key = kms
        .create_key(&caller, NewKey::of(KeySpec::Aes256))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    let context = EncryptionContext::default();
    let plaintexts: [&[u8]; 3] = [b"one", b"two", b"three"];
    let wraps: Vec<WrapItem<'_>> = plaintexts
        .iter()
        .map(|p| WrapItem {
            reference: &key,
            plaintext: p,
            context: &context,
            track_id: None,
        })
        .collect();
    let sealed: Vec<_> = kms
        .wrap_batch(&caller, &wraps)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    kms.rotate_key(&caller, &key).await.unwrap();
    let singles_before = sink.singles.lock().unwrap().len();

    // Caller-held ciphertexts moved to the new primary, a garbage item among them.
    let garbage = vec![1u8, 2, 3];
    let mut items: Vec<RewrapItem<'_>> = sealed
        .iter()
        .map(|s| RewrapItem {
            ciphertext: &s.ciphertext,
            context: &context,
            destination: None,
            destination_context: None,
        })
        .collect();
    let bad = RewrapItem {
        ciphertext: &garbage,
        ..items[0]
    };
    items.insert(1, bad);
    let results = kms.rewrap_batch(&caller, &items).await;
    assert_eq!(results.len(), 4);
    assert!(results[1].is_err(), "the bad item fails alone");
    let moved: Vec<_> = results
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, r)| r.unwrap())
        .collect();
    assert!(
        moved.iter().all(|s| s.version.get() == 2),
        "under the new primary"
    );

    let unwraps: Vec<UnwrapItem<'_>> = moved
        .iter()
        .map(|s| UnwrapItem {
            attestation: None,
            ciphertext: &s.ciphertext,
            context: &context,
        })
        .collect();
    let opened: Vec<Vec<u8>> = kms
        .unwrap_batch(&caller, &unwraps)
        .await
        .into_iter()
        .map(|o| o.unwrap().plaintext.expose_secret().to_vec())
        .collect();
    assert_eq!(opened, plaintexts.map(<[u8]>::to_vec));

    let groups = sink.groups.lock().unwrap();
    let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [3, 4, 3],
        "one group per batch: wrap, rewrap, unwrap"
    );
    let rewraps = &groups[1];
    let outcomes: Vec<&str> = rewraps.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["ok", "invalid_ciphertext", "ok", "ok"]);
    assert!(rewraps[0].detail.as_deref().unwrap().contains("version 1"));
    assert_eq!(
        sink.singles.lock().unwrap().len(),
        singles_before,
        "no batch item was recorded on its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_unwrap_of_a_retired_version_names_that_version() {
    let sink = Arc::new(Recorder::default());
    let (kms, caller) = kms(sink.clone()).await;
    let key = kms
        .create_key(&caller, NewKey::of(KeySpec::Aes256))
        .await
        .unwrap()
        .key
        .id;
    let context = EncryptionContext::default();
    let old = kms
        .wrap(&caller, &key.to_string(), b"secret", &context)
        .await
        .unwrap();
    kms.rotate_key(&caller, &key.to_string()).await.unwrap();
    let keys = kms.key_service();
    let tenant = caller.grants.tenant().unwrap();
    let v1 = coffer_core::VersionNumber::new(1).unwrap();
    let actor = caller.actor("test.retire");
    for state in [VersionState::Retiring, VersionState::Retired] {
        keys.set_version_state(tenant, key, v1, state, &actor)
            .await
            .unwrap();
    }
    kms.forget_key(tenant, key);
    let err = kms
        .unwrap(&caller, &old.ciphertext, &context)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "version_retired");
    let singles = sink.singles.lock().unwrap();
    let refused = singles.last().unwrap();
    assert_eq!(
        (refused.op.as_str(), refused.outcome.as_str()),
        ("unwrap", "version_retired")
    );
    assert_eq!(refused.key.as_deref(), Some(key.to_string().as_str()));
    assert_eq!(refused.version, Some(1), "the version the ciphertext named");
}
