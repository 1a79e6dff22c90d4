//! Snapshots and restores at the store: the backed-up tables are the whole schema, a
//! snapshot restores into an empty store of either backend and reads back equal, a
//! store that holds anything refuses it and is left as it was, and a snapshot taken
//! while keys are being created is one instant (every key with its audit entry, every
//! entry with its key, indices without gaps).

use std::collections::BTreeSet;
use std::sync::Arc;

use coffer_audit::entry::{ExportedEntry, hex};
use coffer_audit::merkle::leaf_hash;
use coffer_core::backup::{BackupStore, Cell, NOT_EMPTY, Snapshot};
use coffer_core::kms::{Caller, Kms, KmsOptions, MintToken};
use coffer_core::store::AuditStore;
use coffer_core::{NewKey, Store, StoreError, SystemClock};
use coffer_crypto::{EncryptionContext, KeySpec};
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;
use coffer_store_sql::backup::{NOT_BACKED_UP, TABLES};
use sqlx::Row;

use super::backends::{postgres_url, temp_dir};

async fn sqlite_url() -> String {
    format!(
        "sqlite://{}?mode=rwc",
        temp_dir().join("coffer.db").display()
    )
}

/// The database's own list of tables and their columns.
async fn catalog(url: &str) -> BTreeSet<(String, String)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows = if url.starts_with("sqlite:") {
        sqlx::query(
            "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    } else {
        sqlx::query(
            "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    pool.close().await;
    rows.iter()
        .map(|r| (r.get::<String, _>("t"), r.get::<String, _>("c")))
        .collect()
}

async fn schema_is_backed_up(url: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    store.close().await;
    let found = catalog(url).await;
    let listed: BTreeSet<(String, String)> = TABLES
        .iter()
        .flat_map(|(t, cols)| cols.iter().map(|(c, _)| ((*t).to_owned(), (*c).to_owned())))
        .collect();
    let found_backed_up: BTreeSet<(String, String)> = found
        .iter()
        .filter(|(t, _)| !NOT_BACKED_UP.contains(&t.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        found_backed_up, listed,
        "coffer_store_sql::backup::TABLES must name every table and column of the schema"
    );
}

#[tokio::test]
async fn the_backed_up_tables_are_the_whole_schema_sqlite() {
    schema_is_backed_up(&sqlite_url().await).await;
}

#[tokio::test]
async fn the_backed_up_tables_are_the_whole_schema_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    schema_is_backed_up(&url).await;
}

/// A deployment with a tenant, keys of three specs, a rotation, an alias, a token and
/// ciphertexts: every table but the telemetry has rows.
async fn populated(url: &str) -> (Arc<dyn Store>, Arc<Kms>, Caller) {
    let dir = temp_dir();
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(url).await.unwrap());
    let custody =
        SealedCustody::init_key_file(dir.join("custody.json"), dir.join("unseal.key")).unwrap();
    custody.unseal_key_file(dir.join("unseal.key")).unwrap();
    let kms = Arc::new(Kms::new(
        store.clone(),
        Arc::new(custody),
        Arc::new(SystemClock),
        Arc::new(coffer_core::audit::NoAudit),
        Arc::new(coffer_core::offload::Inline),
        None,
        KmsOptions::default(),
    ));
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
    let mut aes = NewKey::of(KeySpec::Aes256);
    aes.aliases = vec!["alias/payments".parse().unwrap()];
    let aes = kms
        .create_key(&caller, aes)
        .await
        .unwrap()
        .key
        .id
        .to_string();
    kms.rotate_key(&caller, &aes).await.unwrap();
    kms.create_key(&caller, NewKey::of(KeySpec::Ed25519))
        .await
        .unwrap();
    kms.create_key(&caller, NewKey::of(KeySpec::HmacSha256))
        .await
        .unwrap();
    kms.wrap(&caller, &aes, b"secret", &EncryptionContext::new())
        .await
        .unwrap();
    // The AWS front's tags, key policy and grant on the AES key.
    let tags = [("team".to_owned(), "payments".to_owned())].into();
    kms.set_tags(&caller, &aes, tags, &[]).await.unwrap();
    let account = coffer_core::kms::KeyPolicy {
        statements: vec![coffer_core::kms::Statement {
            allow: true,
            tokens: None,
            actions: vec!["kms:*".into()],
        }],
    };
    kms.put_key_policy(&caller, &aes, "{}", &account, false)
        .await
        .unwrap();
    let grant = coffer_core::store::Grant {
        id: "00".repeat(32),
        tenant: coffer_core::TenantId::generate(),
        key: coffer_core::KeyId::generate(),
        grantee: caller.token_id.to_string(),
        retiring: None,
        operations: vec!["Encrypt".into()],
        name: None,
        created_at: coffer_core::Timestamp::from_millis(0),
    };
    kms.create_grant(&caller, &aes, grant).await.unwrap();
    kms.flush_references().await.unwrap();
    (store, kms, caller)
}

async fn restores_across(from: &str, to: &str) {
    let (source, _kms, _) = populated(from).await;
    let snapshot = source.snapshot().await.unwrap();
    for table in [
        "tenants",
        "keys",
        "key_versions",
        "aliases",
        "tokens",
        "audit_entries",
        "key_tags",
        "key_policies",
        "key_grants",
    ] {
        assert!(
            !snapshot.table(table).unwrap().rows.is_empty(),
            "{table} has rows"
        );
    }
    let target = SqlStore::connect(to).await.unwrap();
    target.restore(&snapshot).await.unwrap();
    assert_eq!(target.snapshot().await.unwrap(), snapshot);
    // The audit head follows the restored log: the next append lands right after it.
    let size = snapshot.audit_size();
    let appended = target
        .append_audit(&[coffer_core::testing::fixtures::actor().entry(
            None,
            (None, None),
            coffer_core::Timestamp::from_millis(1),
            None,
        )])
        .await
        .unwrap();
    assert_eq!(appended.first, size);
    // A second restore is refused and changes nothing.
    let before = target.snapshot().await.unwrap();
    let refused = target.restore(&snapshot).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict(_)), "{refused}");
    assert_eq!(refused.to_string(), NOT_EMPTY.to_string());
    assert_eq!(target.snapshot().await.unwrap(), before);
    // A populated store refuses it too.
    let refused = source.restore(&snapshot).await.unwrap_err();
    assert!(matches!(refused, StoreError::Conflict(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_restores_into_an_empty_sqlite_store_and_reads_back_equal() {
    restores_across(&sqlite_url().await, &sqlite_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_snapshot_restores_into_postgres_and_back() {
    let Some(pg) = postgres_url().await else {
        return;
    };
    restores_across(&sqlite_url().await, &pg).await;
    let Some(pg) = postgres_url().await else {
        return;
    };
    restores_across(&pg, &sqlite_url().await).await;
}

#[tokio::test]
async fn a_snapshot_from_a_newer_schema_is_refused_by_name() {
    let url = sqlite_url().await;
    let target = SqlStore::connect(&url).await.unwrap();
    let mut snapshot = target.snapshot().await.unwrap();
    snapshot.schema.push(9999);
    let error = target.restore(&snapshot).await.unwrap_err().to_string();
    assert!(error.contains("migration 9999"), "{error}");
    let mut snapshot = target.snapshot().await.unwrap();
    snapshot.tables[0].columns[0] = "no_such_column".into();
    snapshot.tables[0].rows = vec![vec![Cell::Null; snapshot.tables[0].columns.len()]];
    let error = target.restore(&snapshot).await.unwrap_err().to_string();
    assert!(error.contains("no_such_column"), "{error}");
    assert_eq!(
        target
            .snapshot()
            .await
            .unwrap()
            .counts()
            .iter()
            .map(|c| c.1)
            .sum::<u64>(),
        0
    );
}

/// Every key in the snapshot has its `keys.create` entry in the snapshot's log and
/// every such entry's key is there; the log's indices are 0..n.
fn consistent(snapshot: &Snapshot) -> usize {
    let keys: BTreeSet<String> = snapshot
        .table("keys")
        .unwrap()
        .rows
        .iter()
        .map(|row| match &row[0] {
            Cell::Text(id) => id.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let log = snapshot.table("audit_entries").unwrap();
    let mut created = BTreeSet::new();
    let mut prev = [0u8; 32];
    for (i, row) in log.rows.iter().enumerate() {
        let (Cell::Int(idx), Cell::Text(leaf)) = (&row[0], &row[1]) else {
            panic!("{row:?}")
        };
        assert_eq!(*idx, i as i64, "indices without gaps");
        let exported: ExportedEntry = serde_json::from_str(leaf).unwrap();
        assert_eq!(exported.prev, hex(&prev), "the chain is unbroken at {i}");
        prev = leaf_hash(leaf.as_bytes());
        let entry = exported.entry;
        if entry.op == "keys.create" && entry.outcome == "ok" {
            created.insert(entry.key.unwrap());
        }
    }
    assert_eq!(
        keys, created,
        "every key with its entry, every entry with its key"
    );
    keys.len()
}

async fn consistent_under_writes(url: &str) {
    let (store, kms, caller) = populated(url).await;
    let writer = {
        let (kms, caller) = (kms.clone(), caller.clone());
        tokio::spawn(async move {
            for _ in 0..60 {
                kms.create_key(&caller, NewKey::of(KeySpec::Aes256))
                    .await
                    .unwrap();
            }
        })
    };
    let mut sizes = Vec::new();
    while !writer.is_finished() {
        let snapshot = store.snapshot().await.unwrap();
        sizes.push(consistent(&snapshot));
    }
    writer.await.unwrap();
    let last = consistent(&store.snapshot().await.unwrap());
    assert_eq!(last, 63);
    // Snapshots were taken while keys were being created, not only before or after.
    assert!(sizes.iter().any(|n| *n > 3 && *n < 63), "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_while_keys_are_created_is_one_instant_sqlite() {
    consistent_under_writes(&sqlite_url().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_while_keys_are_created_is_one_instant_postgres() {
    let Some(url) = postgres_url().await else {
        return;
    };
    consistent_under_writes(&url).await;
}
