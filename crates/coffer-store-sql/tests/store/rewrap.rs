//! The rotation saga's tracked-key rewrap at scale, on SQLite with the real key
//! hierarchy: 100,000 tracked data keys, a rate limit, a crash mid-rewrap, and the
//! daily window held with an injected clock.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_core::kms::{
    Caller, Kms, KmsOptions, MintToken, RetireUntracked, RewrapPolicy, RotationWorker,
};
use coffer_core::saga::{Status, Step};
use coffer_core::{Clock, ManualClock, NewKey, Store, Timestamp};
use coffer_crypto::{EncryptionContext, KeySpec};
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;
use tokio::task::JoinSet;

use super::backends::temp_dir;

/// 2026-01-01T12:00:00Z: midday, outside a night window.
const NOON: i64 = 1_767_225_600_000 + 12 * 3_600_000;

struct World {
    store: Arc<dyn Store>,
    custody: Arc<SealedCustody>,
    clock: ManualClock,
    db: std::path::PathBuf,
}

async fn world() -> World {
    let dir = temp_dir();
    let db = dir.join("coffer.db");
    let store: Arc<dyn Store> = Arc::new(SqlStore::open_sqlite(&db).await.unwrap());
    let custody =
        SealedCustody::init_key_file(dir.join("custody.json"), dir.join("unseal.key")).unwrap();
    custody.unseal_key_file(dir.join("unseal.key")).unwrap();
    World {
        store,
        custody: Arc::new(custody),
        clock: ManualClock::new(Timestamp::from_millis(NOON)),
        db,
    }
}

/// A service over the world's store (audit off: these tests measure the rewrap).
fn kms(w: &World, rewrap: RewrapPolicy) -> Arc<Kms> {
    Arc::new(Kms::new(
        w.store.clone(),
        w.custody.clone(),
        Arc::new(w.clock.clone()) as Arc<dyn Clock>,
        Arc::new(coffer_core::audit::NoAudit),
        Arc::new(coffer_core::offload::Inline),
        None,
        KmsOptions {
            rewrap,
            ..KmsOptions::default()
        },
    ))
}

/// Initializes the service and returns a tenant caller.
async fn tenant_caller(kms: &Kms) -> Caller {
    let admin = kms
        .authenticate(&kms.initialize().await.unwrap().unwrap())
        .unwrap();
    kms.create_tenant(&admin, "archive").await.unwrap();
    let (token, _) = kms
        .mint_token(
            &admin,
            MintToken {
                tenant: Some("archive".into()),
                ..MintToken::default()
            },
        )
        .await
        .unwrap();
    kms.authenticate(&token).unwrap()
}

/// An AES key with `n` tracked data keys under version 1: one made by the service,
/// the rest copies of its row under other ids, inserted in one SQL statement (one
/// envelope opens under any track id, so they rewrap like distinct keys would).
async fn key_with_tracked(w: &World, kms: &Kms, caller: &Caller, n: u64) -> String {
    let key = kms
        .create_key(caller, NewKey::of(KeySpec::Aes256))
        .await
        .unwrap()
        .key
        .id
        .to_string();
    let context =
        EncryptionContext::from_pairs([("table".to_owned(), "invoices".to_owned())]).unwrap();
    kms.datakey(caller, &key, 32, &context, Some("seed"))
        .await
        .unwrap();
    bulk_copy(&w.db, "seed", n - 1).await;
    key
}

async fn bulk_copy(db: &Path, seed: &str, copies: u64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO tracked_keys (tenant_id, track_id, key_id, version, ciphertext, context, updated_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         SELECT t.tenant_id, 'bulk-' || n.i, t.key_id, t.version, t.ciphertext, t.context, t.updated_at \
         FROM n, tracked_keys t WHERE t.track_id = $2",
    )
    .bind(i64::try_from(copies).unwrap())
    .bind(seed)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

/// Starts a rotation that stops after `rewrap_tracked` and has `kms`'s worker drive it.
async fn drive(kms: &Arc<Kms>, holder: &str, id: &str, drivers: &mut JoinSet<()>) {
    let worker = RotationWorker::new(kms.clone(), holder);
    let started = worker.pass(drivers).await.unwrap();
    assert_eq!(started, [id.to_owned()], "{holder} drives the rotation");
}

/// One observation of the rotation's status, bracketed by the instants around the call.
struct Sample {
    before: Instant,
    after: Instant,
    remaining: u64,
    done: Option<u64>,
    rate: Option<f64>,
    eta: Option<Duration>,
    step: Step,
}

async fn sample(kms: &Kms, caller: &Caller, id: &str) -> Sample {
    let before = Instant::now();
    let status = kms.rotation_status(caller, id).await.unwrap();
    let after = Instant::now();
    Sample {
        before,
        after,
        remaining: status.tracked_remaining,
        done: status.rewrap.as_ref().map(|p| p.done),
        rate: status.rewrap.as_ref().map(|p| p.rate_per_second),
        eta: status
            .rewrap
            .as_ref()
            .and_then(|p| p.eta(status.tracked_remaining)),
        step: status.record.step,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_rewrap_reports_progress_keeps_its_rate_and_survives_a_crash() {
    const TOTAL: u64 = 100_000;
    const RATE: u32 = 1_000;
    const BATCH: u64 = 100;
    let w = world().await;
    let limited = kms(
        &w,
        RewrapPolicy {
            rate: NonZeroU32::new(RATE),
            window: None,
        },
    );
    let caller = tenant_caller(&limited).await;
    let key = key_with_tracked(&w, &limited, &caller, TOTAL).await;
    let id = limited
        .start_rotation(
            &caller,
            &key,
            Some(Step::RewrapTracked),
            None,
            RetireUntracked::default(),
            None,
        )
        .await
        .unwrap()
        .record
        .id;

    // Phase 1: rate-limited for three seconds, then the driver dies mid-rewrap.
    let mut drivers = JoinSet::new();
    drive(&limited, "replica-a", &id, &mut drivers).await;
    let mut samples = Vec::new();
    // Four seconds, longer on a loaded machine where a status read is slow: at least
    // ten samples, but never past 20 s (the ETA check below still holds there).
    let start = Instant::now();
    let until = start + Duration::from_secs(4);
    let cap = start + Duration::from_secs(20);
    while Instant::now() < until || (samples.len() < 10 && Instant::now() < cap) {
        let s = sample(&limited, &caller, &id).await;
        if s.step == Step::RewrapTracked && s.done.is_some() {
            samples.push(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drivers.shutdown().await;
    assert!(samples.len() >= 10, "{} samples", samples.len());
    for (i, a) in samples.iter().enumerate() {
        for b in &samples[i + 1..] {
            if b.after.duration_since(a.before) <= Duration::from_secs(1) {
                let moved = b.done.unwrap() - a.done.unwrap();
                assert!(
                    moved <= u64::from(RATE) + BATCH,
                    "{moved} rewrapped within one second at a rate of {RATE}/s"
                );
            }
            assert!(b.remaining <= a.remaining, "remaining never grows");
        }
    }
    let last = samples.last().unwrap();
    assert!(
        last.done.unwrap() >= u64::from(RATE),
        "the rewrap ran: {:?}",
        last.done
    );
    // The status counts what is left, then reads what was done: batches that commit
    // in between count twice, none is missed.
    let seen = last.remaining + last.done.unwrap();
    assert!((TOTAL..=TOTAL + u64::from(RATE)).contains(&seen), "{seen}");
    let rate = last.rate.unwrap();
    assert!(
        (f64::from(RATE) * 0.25..=f64::from(RATE) + BATCH as f64).contains(&rate),
        "reported rate {rate}"
    );
    let eta = last.eta.unwrap();
    assert!(
        eta > Duration::from_secs(60),
        "ETA {eta:?} for {} left",
        last.remaining
    );

    // What phase 1 moved stays as it was: the restarted rewrap does not redo it.
    let moved_before = w
        .store
        .tracked_under(caller.grants.tenant().unwrap(), key.parse().unwrap(), 2, 50)
        .await
        .unwrap();
    assert_eq!(moved_before.len(), 50);
    let left_after_crash = sample(&limited, &caller, &id).await.remaining;

    // Phase 2: another replica takes the rotation over once the lease expires and
    // finishes unthrottled; remaining only ever falls, to zero.
    w.clock.advance(Duration::from_secs(10));
    let free = kms(&w, RewrapPolicy::default());
    free.load().await.unwrap();
    let mut drivers = JoinSet::new();
    drive(&free, "replica-b", &id, &mut drivers).await;
    let started = Instant::now();
    let mut remaining = vec![left_after_crash];
    loop {
        let s = sample(&free, &caller, &id).await;
        remaining.push(s.remaining);
        if s.step != Step::RewrapTracked {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rewrap too slow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    assert!(remaining.windows(2).all(|p| p[1] <= p[0]), "{remaining:?}");
    assert!(
        remaining.len() > 3,
        "progress seen along the way: {remaining:?}"
    );
    assert_eq!(*remaining.last().unwrap(), 0);
    let tenant = caller.grants.tenant().unwrap();
    let counts = w
        .store
        .count_tracked(tenant, key.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        counts,
        vec![(2, TOTAL)],
        "every tracked key moved, none lost"
    );
    for before in moved_before {
        let now = w
            .store
            .get_tracked(tenant, &before.track_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.ciphertext, before.ciphertext, "not rewrapped twice");
    }
    eprintln!(
        "rewrapped {left_after_crash} tracked keys unthrottled in {elapsed:?} ({:.0}/s)",
        left_after_crash as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_the_rewrap_waits_and_resumes_inside_it() {
    let w = world().await;
    let windowed = kms(
        &w,
        RewrapPolicy {
            rate: None,
            window: Some("22:00-06:00".parse().unwrap()),
        },
    );
    let caller = tenant_caller(&windowed).await;
    let key = key_with_tracked(&w, &windowed, &caller, 500).await;
    let id = windowed
        .start_rotation(
            &caller,
            &key,
            Some(Step::RewrapTracked),
            None,
            RetireUntracked::default(),
            None,
        )
        .await
        .unwrap()
        .record
        .id;
    let mut drivers = JoinSet::new();
    drive(&windowed, "replica-a", &id, &mut drivers).await;

    // Noon: the step holds, the rotation stays running at rewrap_tracked and says why.
    let deadline = Instant::now() + Duration::from_secs(10);
    let waiting = loop {
        let status = windowed.rotation_status(&caller, &id).await.unwrap();
        if let Some(progress) = status.rewrap.filter(|p| p.waiting_for_window.is_some()) {
            break (status.record, status.tracked_remaining, progress);
        }
        assert!(Instant::now() < deadline, "the step never waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (record, remaining, progress) = waiting;
    assert_eq!(
        (record.step, record.status),
        (Step::RewrapTracked, Status::Running)
    );
    assert_eq!(remaining, 500);
    assert_eq!(progress.done, 0);
    assert_eq!(progress.eta(remaining), None);
    assert_eq!(
        progress.waiting_for_window.unwrap().to_string(),
        "22:00-06:00"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = windowed.rotation_status(&caller, &id).await.unwrap();
    assert_eq!(
        still.tracked_remaining, 500,
        "nothing moves outside the window"
    );
    assert_eq!(still.record.step, Step::RewrapTracked);

    // 22:00: the window opens, the step resumes and finishes.
    w.clock.advance(Duration::from_secs(10 * 3600));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = windowed.rotation_status(&caller, &id).await.unwrap();
        if status.record.step != Step::RewrapTracked {
            assert_eq!(status.tracked_remaining, 0);
            assert_eq!(status.record.paused_after, Some(Step::RewrapTracked));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the step did not resume in its window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drivers.shutdown().await;
}
