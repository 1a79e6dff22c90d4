//! The rotation worker: drives every running saga that is not held (paused after its
//! `until`, or failed past the switch and waiting for `resume`), whoever started it and
//! whichever replica answered the request.
//!
//! Each saga is driven under its own store lease, `rotation:<id>`, rather than one
//! lease for all sagas: replicas sharing a database then share the sagas, a long saga
//! (a drain can wait ten seconds) does not hold up the others, and when a replica dies
//! mid-saga another takes that saga over once its lease expires ([`LEASE`]). The lease
//! is renewed while the saga runs. It decides who drives; it is not what keeps a saga
//! consistent: every step is idempotent and every save is a compare-and-set, so a
//! driver that lost its lease without knowing it loses its next save and stops.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinSet;

use super::{Kms, KmsResult};
use crate::audit::Actor;
use crate::store::RotationRecord;

/// How long a saga's lease lasts without renewal: a dead replica's sagas are taken
/// over within this (plus one tick).
pub const LEASE: Duration = Duration::from_secs(6);

/// How often a driven saga's lease is renewed: well within [`LEASE`], so one slow
/// renewal does not hand the saga to another replica.
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// How often the worker looks for sagas to drive when nothing wakes it (sagas started
/// on other replicas, leases of dead replicas expiring).
const TICK: Duration = Duration::from_secs(1);

/// Drives rotation sagas in the background for one replica.
pub struct RotationWorker {
    kms: Arc<Kms>,
    /// This replica's name as a lease holder.
    holder: String,
    /// Sagas this worker is driving now, so a pass does not start a second driver of
    /// one (the lease is ours already, so it would not stop it).
    driving: Arc<Mutex<HashSet<String>>>,
}

impl RotationWorker {
    /// A worker for `kms`; `holder` names this replica in the leases it takes, and must
    /// differ between replicas sharing a database.
    pub fn new(kms: Arc<Kms>, holder: impl Into<String>) -> Self {
        Self {
            kms,
            holder: holder.into(),
            driving: Arc::default(),
        }
    }

    /// Runs passes every second, or sooner when a request starts or resumes a saga
    /// here, while the service is ready, until `stop` resolves; then stops its drivers
    /// (each saga continues from its persisted step, here or on another replica).
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut drivers = JoinSet::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.kms.rotation_wake.notified() => {}
                () = &mut stop => break,
            }
            // Sealed, or not yet loaded: nothing can run, and nothing is lost by waiting.
            if !self.kms.ready().await {
                continue;
            }
            if let Err(error) = self.pass(&mut drivers).await {
                tracing::warn!(%error, "rotation worker pass failed");
            }
            while drivers.try_join_next().is_some() {}
        }
        drivers.shutdown().await;
    }

    /// One pass: every running, unheld saga whose lease this replica takes gets a
    /// driver in `drivers`. Returns the ids of the sagas it started driving.
    pub async fn pass(&self, drivers: &mut JoinSet<()>) -> KmsResult<Vec<String>> {
        let store = self.kms.keys.store();
        let mut started = Vec::new();
        for record in store.running_rotations().await? {
            if record.hold().is_some() || self.is_driving(&record.id) {
                continue;
            }
            let now = self.kms.keys.clock().now();
            let lease = lease_name(&record);
            if !store
                .try_lease(&lease, &self.holder, now, now.plus(LEASE))
                .await?
            {
                continue;
            }
            self.driving_set().insert(record.id.clone());
            started.push(record.id.clone());
            let (kms, holder, driving) =
                (self.kms.clone(), self.holder.clone(), self.driving.clone());
            drivers.spawn(async move {
                let id = record.id.clone();
                drive_leased(&kms, &holder, record).await;
                driving
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            });
        }
        Ok(started)
    }

    fn is_driving(&self, id: &str) -> bool {
        self.driving_set().contains(id)
    }

    fn driving_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // The set holds ids only; a panic elsewhere cannot leave it half-updated.
        self.driving.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn lease_name(record: &RotationRecord) -> String {
    format!("rotation:{}", record.id)
}

/// Drives one saga while renewing its lease. Losing the lease stops the driver at once
/// (as a crash would: the step it was in is idempotent and the new holder repeats it).
async fn drive_leased(kms: &Kms, holder: &str, record: RotationRecord) {
    let id = record.id.clone();
    let lease = lease_name(&record);
    // The audit entries name whoever started the saga; the request id says which
    // replica's worker ran the step (the rotation itself is the entries' request id).
    let actor = Actor::new(
        record.started_by.clone(),
        format!("rotation-worker:{holder}"),
        "rotation.run",
    );
    let renew = async {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let now = kms.keys.clock().now();
            match kms
                .keys
                .store()
                .try_lease(&lease, holder, now, now.plus(LEASE))
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                // The store is failing: the saga's own next write fails too.
                Err(error) => {
                    tracing::warn!(rotation = %id, %error, "renewing the rotation lease failed")
                }
            }
        }
    };
    tokio::select! {
        outcome = kms.drive(record, &actor) => match outcome {
            Ok(status) => tracing::info!(
                rotation = %id,
                status = %status.record.status.as_str(),
                step = %status.record.step,
                "rotation driven"
            ),
            Err(error) => tracing::warn!(rotation = %id, %error, "driving the rotation failed"),
        },
        () = renew => tracing::warn!(rotation = %id, "the rotation's lease passed to another replica"),
    }
}
