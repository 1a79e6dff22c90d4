//! The persisted reference tracker and safe retirement, over real stores with an
//! injected clock: the same answer after a restart (SQLite) and from a second replica
//! (PostgreSQL); a failed flush keeps its use; preflight refuses recent untracked use;
//! the quiet-period worker; reactivation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use coffer_core::kms::{
    Caller, Kms, KmsError, KmsOptions, MintToken, RetireUntracked, RotationWorker,
};
use coffer_core::saga::Step;
use coffer_core::usage::UseKind;
use coffer_core::{Clock, ManualClock, NewKey, Store, Timestamp, VersionState};
use coffer_crypto::{EncryptionContext, KeySpec};
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;

use super::backends::{postgres_url, temp_dir};

const DAY: u64 = 86_400;

/// One deployment: a database, a custody state file, a clock and a tenant token.
struct Deployment {
    dir: PathBuf,
    url: String,
    clock: ManualClock,
    token: String,
}

/// One server process of a deployment.
struct Replica {
    kms: Arc<Kms>,
    caller: Caller,
    store: SqlStore,
}

async fn replica(d: &Deployment) -> Replica {
    let store = SqlStore::connect(&d.url).await.unwrap();
    let custody = SealedCustody::open(d.dir.join("custody.json")).unwrap();
    custody.unseal_key_file(d.dir.join("unseal.key")).unwrap();
    let kms = Arc::new(Kms::new(
        Arc::new(store.clone()) as Arc<dyn Store>,
        Arc::new(custody),
        Arc::new(d.clock.clone()) as Arc<dyn Clock>,
        Arc::new(coffer_core::audit::NoAudit),
        Arc::new(coffer_core::offload::Inline),
        None,
        KmsOptions::default(),
    ));
    assert!(kms.load().await.unwrap(), "the deployment is initialized");
    let caller = kms.authenticate(&d.token).unwrap();
    Replica { kms, caller, store }
}

async fn deployment(url: String, dir: &Path) -> Deployment {
    SealedCustody::init_key_file(dir.join("custody.json"), dir.join("unseal.key")).unwrap();
    let custody = SealedCustody::open(dir.join("custody.json")).unwrap();
    custody.unseal_key_file(dir.join("unseal.key")).unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let store = SqlStore::connect(&url).await.unwrap();
    let kms = Kms::new(
        Arc::new(store.clone()) as Arc<dyn Store>,
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
    store.close().await;
    Deployment {
        dir: dir.to_owned(),
        url,
        clock,
        token,
    }
}

async fn sqlite_deployment() -> Deployment {
    let dir = temp_dir();
    let url = format!("sqlite://{}?mode=rwc", dir.join("coffer.db").display());
    deployment(url, &dir).await
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
}

async fn new_key(r: &Replica) -> String {
    r.kms
        .create_key(&r.caller, NewKey::of(KeySpec::Aes256))
        .await
        .unwrap()
        .key
        .id
        .to_string()
}

/// `(version, principal, kind, first, last, count)` rows of the references view.
async fn answer(r: &Replica, key: &str) -> Vec<(u32, String, UseKind, i64, i64, u64)> {
    let (_, versions) = r.kms.references(&r.caller, key).await.unwrap();
    versions
        .iter()
        .flat_map(|v| {
            v.principals.iter().map(|u| {
                (
                    v.version.get(),
                    u.of.principal.to_string(),
                    u.of.kind,
                    u.count.first_seen.millis(),
                    u.count.last_seen.millis(),
                    u.count.count,
                )
            })
        })
        .collect()
}

async fn states(r: &Replica, key: &str) -> Vec<(u32, VersionState, bool)> {
    let details = r.kms.show_key(&r.caller, key).await.unwrap();
    details
        .versions
        .iter()
        .map(|v| (v.number.get(), v.state, v.primary))
        .collect()
}

/// Wraps twice and unwraps once, a day apart: `(ciphertext, …)`.
async fn use_key(d: &Deployment, r: &Replica, key: &str) -> Vec<u8> {
    let sealed = r.kms.wrap(&r.caller, key, b"column", &ctx()).await.unwrap();
    d.clock.advance(Duration::from_secs(DAY));
    r.kms.wrap(&r.caller, key, b"column", &ctx()).await.unwrap();
    r.kms
        .unwrap(&r.caller, &sealed.ciphertext, &ctx())
        .await
        .unwrap();
    sealed.ciphertext
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracker_answers_the_same_after_a_restart() {
    let d = sqlite_deployment().await;
    let first = replica(&d).await;
    let key = new_key(&first).await;
    use_key(&d, &first, &key).await;
    // Before any flush the answer is this process's own use.
    let before = answer(&first, &key).await;
    let principal = first.caller.token_id.to_string();
    let t0 = 1_767_225_600_000;
    let t1 = t0 + 86_400_000;
    assert_eq!(
        before,
        [
            (1, principal.clone(), UseKind::Encrypt, t0, t1, 2),
            (1, principal.clone(), UseKind::Decrypt, t1, t1, 1),
        ]
    );
    // A graceful stop flushes; the restarted process reads it back.
    assert_eq!(first.kms.flush_references().await.unwrap(), 2);
    assert_eq!(
        answer(&first, &key).await,
        before,
        "flushed: the same answer"
    );
    first.store.close().await;
    drop(first);
    let second = replica(&d).await;
    assert_eq!(answer(&second, &key).await, before);
    // New use adds to the stored counts, flushed or not.
    second
        .kms
        .wrap(&second.caller, &key, b"x", &ctx())
        .await
        .unwrap();
    let added = answer(&second, &key).await;
    assert_eq!(
        added[0],
        (1, principal.clone(), UseKind::Encrypt, t0, t1, 3)
    );
    second.kms.flush_references().await.unwrap();
    assert_eq!(answer(&second, &key).await, added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_keeps_its_use_for_the_next() {
    let d = sqlite_deployment().await;
    let r = replica(&d).await;
    let key = new_key(&r).await;
    use_key(&d, &r, &key).await;
    let expected = answer(&r, &key).await;
    // The table gone (as a broken database would be): the flush fails, nothing is lost,
    // and the request path never noticed.
    let side = sqlx::AnyPool::connect(&d.url).await.unwrap();
    sqlx::query("ALTER TABLE version_use RENAME TO version_use_away")
        .execute(&side)
        .await
        .unwrap();
    let error = r.kms.flush_references().await.unwrap_err();
    assert!(matches!(error, KmsError::Unavailable(_)), "{error}");
    r.kms
        .wrap(&r.caller, &key, b"during", &ctx())
        .await
        .unwrap();
    sqlx::query("ALTER TABLE version_use_away RENAME TO version_use")
        .execute(&side)
        .await
        .unwrap();
    assert_eq!(r.kms.flush_references().await.unwrap(), 2);
    r.store.close().await;
    drop(r);
    let restarted = replica(&d).await;
    let after = answer(&restarted, &key).await;
    assert_eq!(after[1], expected[1]);
    assert_eq!(
        after[0].5,
        expected[0].5 + 1,
        "the use during the outage counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_on_postgres_gives_the_same_answer() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let d = deployment(url, &temp_dir()).await;
    let (a, b) = (replica(&d).await, replica(&d).await);
    let key = new_key(&a).await;
    use_key(&d, &a, &key).await;
    b.kms
        .unwrap(
            &b.caller,
            &a.kms
                .wrap(&a.caller, &key, b"y", &ctx())
                .await
                .unwrap()
                .ciphertext,
            &ctx(),
        )
        .await
        .unwrap();
    a.kms.flush_references().await.unwrap();
    b.kms.flush_references().await.unwrap();
    let from_a = answer(&a, &key).await;
    assert_eq!(from_a, answer(&b, &key).await);
    let principal = a.caller.token_id.to_string();
    let decrypts: u64 = from_a
        .iter()
        .filter(|row| row.1 == principal && row.2 == UseKind::Decrypt)
        .map(|row| row.5)
        .sum();
    assert_eq!(decrypts, 2, "one unwrap on each replica: {from_a:?}");
    // And a third process, started later, agrees.
    assert_eq!(answer(&replica(&d).await, &key).await, from_a);
}

/// Runs the saga of `id` on this replica's worker until it holds: started with `until`
/// `retire_old` (the anchor step needs a checkpointing audit log, which these tests
/// leave out), it pauses with every key change made. Returns its next step.
async fn run_rotation(r: &Replica, id: &str) -> Step {
    let worker = RotationWorker::new(r.kms.clone(), "test-replica");
    let mut drivers = tokio::task::JoinSet::new();
    worker.pass(&mut drivers).await.unwrap();
    while drivers.join_next().await.is_some() {}
    r.kms
        .rotation_status(&r.caller, id)
        .await
        .unwrap()
        .record
        .step
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untracked_use_refuses_a_rotation_unless_accepted_and_the_old_version_retires_when_quiet() {
    let d = sqlite_deployment().await;
    let r = replica(&d).await;
    let key = new_key(&r).await;
    let ciphertext = use_key(&d, &r, &key).await;

    let refused = r
        .kms
        .start_rotation(&r.caller, &key, None, None, RetireUntracked::Refuse, None)
        .await
        .unwrap_err();
    let message = refused.to_string();
    assert_eq!(refused.code(), "untracked_use");
    assert!(
        message.contains(&r.caller.token_id.to_string()) && message.contains("encrypt 2x"),
        "{message}"
    );
    assert_eq!(states(&r, &key).await, [(1, VersionState::Active, true)]);

    let started = r
        .kms
        .start_rotation(
            &r.caller,
            &key,
            Some(Step::RetireOld),
            None,
            RetireUntracked::Accept,
            None,
        )
        .await
        .unwrap();
    assert_eq!(run_rotation(&r, &started.record.id).await, Step::Anchor);
    // Decrypt-only, not retired: the untracked ciphertext still opens.
    assert_eq!(
        states(&r, &key).await,
        [
            (1, VersionState::Retiring, false),
            (2, VersionState::Active, true)
        ]
    );
    r.kms.unwrap(&r.caller, &ciphertext, &ctx()).await.unwrap();

    // Still used after six days: not quiet a week later either.
    d.clock.advance(Duration::from_secs(6 * DAY));
    r.kms.unwrap(&r.caller, &ciphertext, &ctx()).await.unwrap();
    assert!(r.kms.retire_quiet_versions().await.unwrap().is_empty());
    d.clock.advance(Duration::from_secs(6 * DAY));
    assert!(r.kms.retire_quiet_versions().await.unwrap().is_empty());
    // Flushed use counts the same as unflushed use.
    r.kms.flush_references().await.unwrap();
    assert!(r.kms.retire_quiet_versions().await.unwrap().is_empty());
    d.clock.advance(Duration::from_secs(DAY + 1));
    let key_id: coffer_core::KeyId = key.parse().unwrap();
    assert_eq!(r.kms.retire_quiet_versions().await.unwrap(), [(key_id, 1)]);
    assert_eq!(
        states(&r, &key).await,
        [
            (1, VersionState::Retired, false),
            (2, VersionState::Active, true)
        ]
    );
    let error = r
        .kms
        .unwrap(&r.caller, &ciphertext, &ctx())
        .await
        .unwrap_err();
    assert!(matches!(error, KmsError::VersionRetired(1)), "{error}");
    // Recorded: the history event shares the change's transaction with its audit entry.
    let history = r.kms.key_history(&r.caller, &key).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.detail, "retiring -> retired");
    assert_eq!(last.actor.as_deref(), Some("coffer-scheduler"));

    // Reactivation restores decrypt, and starts a new quiet period.
    let details = r.kms.reactivate(&r.caller, &key, 1).await.unwrap();
    assert_eq!(details.versions[0].state, VersionState::Retiring);
    r.kms.unwrap(&r.caller, &ciphertext, &ctx()).await.unwrap();
    let history = r.kms.key_history(&r.caller, &key).await.unwrap();
    assert_eq!(history.last().unwrap().detail, "retired -> retiring");
    assert!(r.kms.retire_quiet_versions().await.unwrap().is_empty());
    // Never encrypts again: wraps use the primary.
    let sealed = r.kms.wrap(&r.caller, &key, b"new", &ctx()).await.unwrap();
    assert_eq!(sealed.version.get(), 2);
    d.clock.advance(Duration::from_secs(7 * DAY + 1));
    assert_eq!(r.kms.retire_quiet_versions().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_retired_version_is_reactivated() {
    let d = sqlite_deployment().await;
    let r = replica(&d).await;
    let key = new_key(&r).await;
    // The primary (active).
    let refused = r.kms.reactivate(&r.caller, &key, 1).await.unwrap_err();
    assert!(
        matches!(&refused, KmsError::Conflict(m) if m.contains("version 1 is active")),
        "{refused}"
    );
    // A destroyed spare: its material is gone.
    r.kms.add_spare(&r.caller, &key).await.unwrap();
    let details = r.kms.show_key(&r.caller, &key).await.unwrap();
    let actor = coffer_core::Actor::new("test", "req", "version.destroy");
    r.kms
        .key_service()
        .set_version_state(
            details.key.tenant,
            details.key.id,
            coffer_core::VersionNumber::new(2).unwrap(),
            VersionState::Destroyed,
            &actor,
        )
        .await
        .unwrap();
    let refused = r.kms.reactivate(&r.caller, &key, 2).await.unwrap_err();
    assert!(
        matches!(&refused, KmsError::Conflict(m) if m.contains("version 2 is destroyed")),
        "{refused}"
    );
    // Absent.
    let refused = r.kms.reactivate(&r.caller, &key, 9).await.unwrap_err();
    assert!(matches!(refused, KmsError::NotFound(_)), "{refused}");
    assert_eq!(
        states(&r, &key).await,
        [
            (1, VersionState::Active, true),
            (2, VersionState::Destroyed, false)
        ]
    );
}
