//! Key creations that arrive together commit together (`batch`), on SQLite and
//! PostgreSQL: a group whose commit fails answers every member with an error and keeps
//! nothing of any of them; a member over its tenant's quota is refused alone, and counts
//! carried from one group to the next follow the writes made in between; and a process
//! killed (SIGKILL) while groups commit loses no creation it acknowledged.

use std::collections::HashMap;
use std::path::Path;

use coffer_core::quota::{Limits, Quotas};
use coffer_core::store::{AuditStore, KeyStore, TenantStore, VersionStore};
use coffer_core::testing::fixtures;
use coffer_core::{Key, KeyVersion, Record, Store, StoreError, TenantId, VersionState};
use coffer_store_sql::SqlStore;
use sqlx::{AnyConnection, Connection, Executor};

use super::backends::{acks_until_sigkill, postgres_url, temp_dir};

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("coffer.db").display())
}

async fn tenant(store: &SqlStore) -> TenantId {
    let tenant = fixtures::tenant("acme");
    store
        .create_tenant(&tenant, b"wrapped-kek", &fixtures::audit_record(None))
        .await
        .unwrap();
    tenant.id
}

fn creation(tenant: TenantId, alias: Option<&str>) -> (Key, KeyVersion, Record) {
    let key = fixtures::key(tenant, alias.as_slice());
    let first = fixtures::version(key.id, 1, VersionState::Active, true);
    let record = fixtures::record(&fixtures::event(tenant, key.id, "key.created"));
    (key, first, record)
}

/// Creates `count` keys at once, each from its own task; every task's answer.
async fn create_together(
    store: &SqlStore,
    tenant: TenantId,
    count: usize,
) -> Vec<(Key, Result<(), StoreError>)> {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let store = store.clone();
            let alias = format!("alias/group-{i}");
            tokio::spawn(async move {
                let (key, first, record) = creation(tenant, Some(&alias));
                let outcome = store.create_key(&key, &first, &record).await;
                (key, outcome)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// Rows of the tables a key creation writes, and the audit log's length.
async fn counts(conn: &mut AnyConnection) -> Vec<(&'static str, i64)> {
    let mut out = Vec::new();
    for table in ["keys", "key_versions", "aliases", "events", "audit_entries"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        out.push((table, n));
    }
    out
}

/// Makes the next commits fail: on SQLite every audit insert aborts (the statement
/// before the commit); on PostgreSQL a deferred constraint trigger raises at COMMIT
/// itself, after every statement of the group succeeded.
async fn break_commits(conn: &mut AnyConnection, sqlite: bool) {
    let statements: &[&str] = if sqlite {
        &["CREATE TRIGGER fail_group BEFORE INSERT ON audit_entries \
           BEGIN SELECT RAISE(ABORT, 'commit refused'); END"]
    } else {
        &[
            "CREATE FUNCTION fail_group() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'commit refused'; END $$",
            "CREATE CONSTRAINT TRIGGER fail_group AFTER INSERT ON audit_entries \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_group()",
        ]
    };
    for statement in statements {
        conn.execute(*statement).await.unwrap();
    }
}

async fn mend_commits(conn: &mut AnyConnection, sqlite: bool) {
    let statement = if sqlite {
        "DROP TRIGGER fail_group"
    } else {
        "DROP TRIGGER fail_group ON audit_entries"
    };
    conn.execute(statement).await.unwrap();
}

async fn a_failed_group_commit_fails_every_member_and_keeps_none(url: String, sqlite: bool) {
    let store = SqlStore::connect(&url).await.unwrap();
    let t = tenant(&store).await;
    let mut conn = AnyConnection::connect(&url).await.unwrap();
    if sqlite {
        conn.execute("PRAGMA busy_timeout=10000").await.unwrap();
    }
    let before = counts(&mut conn).await;
    break_commits(&mut conn, sqlite).await;

    let answers = create_together(&store, t, 24).await;
    for (key, outcome) in &answers {
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "a creation of a failed group answered {outcome:?}"
        );
        assert!(store.get_key(t, key.id).await.unwrap().is_none());
    }
    assert_eq!(
        counts(&mut conn).await,
        before,
        "nothing of the groups is kept"
    );

    // The writer is not wedged: once commits work again, so do creations.
    mend_commits(&mut conn, sqlite).await;
    store.ping().await.unwrap();
    let answers = create_together(&store, t, 24).await;
    assert!(answers.iter().all(|(_, outcome)| outcome.is_ok()));
    let rows = store.audit_entries(0, 10_000).await.unwrap();
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, (index, _))| *index == i as u64),
        "the audit log stays contiguous"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_group_commit_fails_every_member_and_keeps_none() {
    let url = sqlite_url(&temp_dir());
    a_failed_group_commit_fails_every_member_and_keeps_none(url, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_group_commit_fails_every_member_and_keeps_none() {
    let Some(url) = postgres_url().await else {
        return;
    };
    a_failed_group_commit_fails_every_member_and_keeps_none(url, false).await;
}

async fn members_over_the_quota_are_refused_alone(store: SqlStore) {
    let t = tenant(&store).await;
    for i in 0..3 {
        let (key, first, record) = creation(t, Some(&format!("alias/before-{i}")));
        store.create_key(&key, &first, &record).await.unwrap();
    }
    let limits = Limits {
        keys_per_tenant: 8,
        ..Limits::default()
    };
    store.set_quotas(Quotas::new(Limits::default(), HashMap::from([(t, limits)])));
    let logged = store.audit_entries(0, 10_000).await.unwrap().len();
    let answers = create_together(&store, t, 12).await;
    let created = answers.iter().filter(|(_, o)| o.is_ok()).count();
    assert_eq!(created, 5, "the group fills the quota exactly");
    for (key, outcome) in &answers {
        match outcome {
            Ok(()) => assert!(store.get_key(t, key.id).await.unwrap().is_some()),
            Err(StoreError::QuotaExceeded(_)) => {
                assert!(store.get_key(t, key.id).await.unwrap().is_none());
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(store.list_keys(t).await.unwrap().len(), 8);
    assert_eq!(
        store.audit_entries(0, 10_000).await.unwrap().len(),
        logged + 5,
        "one entry per created key, none for a refusal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_members_over_the_quota_are_refused_alone() {
    let store = SqlStore::connect(&sqlite_url(&temp_dir())).await.unwrap();
    members_over_the_quota_are_refused_alone(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_members_over_the_quota_are_refused_alone() {
    let Some(url) = postgres_url().await else {
        return;
    };
    members_over_the_quota_are_refused_alone(SqlStore::connect(&url).await.unwrap()).await;
}

/// Counts carried from one group to the next (`batch::kept`, SQLite) follow every
/// write made in between: an alias removed frees its slot for the next group, an alias
/// added takes one, and a key created with an alias over the quota is refused.
async fn counts_between_groups_follow_other_writes(store: SqlStore) {
    let t = tenant(&store).await;
    let limits = Limits {
        aliases_per_tenant: 2,
        ..Limits::default()
    };
    store.set_quotas(Quotas::new(Limits::default(), HashMap::from([(t, limits)])));
    let (first_key, first, record) = creation(t, Some("alias/one"));
    store.create_key(&first_key, &first, &record).await.unwrap();
    let (key, first, record) = creation(t, Some("alias/two"));
    store.create_key(&key, &first, &record).await.unwrap();
    // Full; a single change frees one slot, so the next creation fits.
    let one: coffer_core::Alias = "alias/one".parse().unwrap();
    let event = fixtures::event(t, first_key.id, "alias.removed");
    store
        .remove_alias(t, first_key.id, &one, &fixtures::record(&event))
        .await
        .unwrap();
    let (key, first, record) = creation(t, Some("alias/three"));
    store.create_key(&key, &first, &record).await.unwrap();
    // A slot freed and counted by a group (a key without an alias), then taken by a
    // single change: the next creation with an alias is refused.
    let three: coffer_core::Alias = "alias/three".parse().unwrap();
    let event = fixtures::event(t, key.id, "alias.removed");
    store
        .remove_alias(t, key.id, &three, &fixtures::record(&event))
        .await
        .unwrap();
    let (key, first, record) = creation(t, None);
    store.create_key(&key, &first, &record).await.unwrap();
    let event = fixtures::event(t, first_key.id, "alias.added");
    store
        .add_alias(t, first_key.id, &one, &fixtures::record(&event))
        .await
        .unwrap();
    let (key, first, record) = creation(t, Some("alias/four"));
    let refused = store.create_key(&key, &first, &record).await.unwrap_err();
    assert!(matches!(refused, StoreError::QuotaExceeded(_)), "{refused}");
    assert!(store.get_key(t, key.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_counts_between_groups_follow_other_writes() {
    let store = SqlStore::connect(&sqlite_url(&temp_dir())).await.unwrap();
    counts_between_groups_follow_other_writes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_counts_between_groups_follow_other_writes() {
    let Some(url) = postgres_url().await else {
        return;
    };
    counts_between_groups_follow_other_writes(SqlStore::connect(&url).await.unwrap()).await;
}

/// Child side of the grouped crash test: does nothing unless the parent set
/// `COFFER_GROUP_CRASH_URL`; then 16 tasks create keys forever, each printing `ACK
/// <tenant> <key>` once its `create_key` returned, until the parent kills the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_crash_child() {
    let Ok(url) = std::env::var("COFFER_GROUP_CRASH_URL") else {
        return;
    };
    let store = SqlStore::connect(&url).await.unwrap();
    let t = tenant(&store).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    let (key, first, record) = creation(t, None);
                    store.create_key(&key, &first, &record).await.unwrap();
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {t} {}", key.id).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    // The creators run until the parent kills this process.
    let _creators = tasks;
    std::future::pending::<()>().await;
}

/// Kills (SIGKILL) a process whose 16 tasks create keys concurrently, so creations
/// commit in groups, once it acknowledged 200; every acknowledged key is there
/// afterwards, with its audit entry, and the log is contiguous.
async fn acknowledged_group_creations_survive_sigkill(url: String) {
    let acked = acks_until_sigkill(
        "store::group_create::group_crash_child",
        &[("COFFER_GROUP_CRASH_URL", url.clone())],
        200,
    );
    assert_eq!(acked.len(), 200, "the child acknowledged fewer keys");

    let store = SqlStore::connect(&url).await.unwrap();
    let rows = store.audit_entries(0, 1_000_000).await.unwrap();
    assert!(
        rows.iter()
            .enumerate()
            .all(|(i, (index, _))| *index == i as u64),
        "the audit log stays contiguous"
    );
    for line in &acked {
        let (tenant, key) = line.split_once(' ').unwrap();
        let tenant: TenantId = tenant.parse().unwrap();
        let key = store
            .get_key(tenant, key.parse().unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged key {key} lost"));
        assert_eq!(store.list_versions(tenant, key.id).await.unwrap().len(), 1);
        let id = key.id.to_string();
        assert!(
            rows.iter().any(|(_, leaf)| leaf.contains(&id)),
            "acknowledged key {id} has no audit entry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_group_creations_survive_sigkill() {
    acknowledged_group_creations_survive_sigkill(sqlite_url(&temp_dir())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_group_creations_survive_sigkill() {
    let Some(url) = postgres_url().await else {
        return;
    };
    acknowledged_group_creations_survive_sigkill(url).await;
}
