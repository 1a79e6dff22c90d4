//! Rotation saga records ([`RotationRecord`]) and their store ([`RotationStore`]).

use async_trait::async_trait;

use super::{Record, Rewrapped, StoreResult, TrackedKey};
use crate::ids::{KeyId, TenantId};
use crate::saga::{Saga, Status, Step};
use crate::time::Timestamp;

/// The allow-list a rotation puts in force with its switch
/// (`coffer rotate … --allowed-measurements`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowListChange {
    /// The attestation policy version in force when the rotation started: the switch
    /// stores the next one by compare-and-set on it, so a change made meanwhile makes
    /// the switch fail (before the pointer moves) and the saga roll back.
    pub from_policy: u32,
    /// The measurements in force from the switch on (the operations stay as they were).
    pub measurements: std::collections::BTreeSet<crate::attestation::Measurement>,
}

/// A rotation record: the saga's persisted state. The store guarantees at most one
/// `running` rotation per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRecord {
    /// Rotation id.
    pub id: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Key.
    pub key: KeyId,
    /// The next step to run (the failed one, after a failure past the switch).
    pub step: Step,
    /// Running, completed or rolled back.
    pub status: Status,
    /// Start time.
    pub started_at: Timestamp,
    /// The version rotated away from.
    pub from_version: u32,
    /// The new version, once created.
    pub to_version: Option<u32>,
    /// Failures seen.
    pub failures: u32,
    /// The last failure; while set on a running saga, the saga waits for `resume`.
    pub error: Option<String>,
    /// The `until` given at start or at the last resume: the worker stops after this
    /// step and leaves the saga running until it is resumed.
    pub paused_after: Option<Step>,
    /// The principal that started the rotation (`-` for records older than the field);
    /// the worker's audit entries name it.
    pub started_by: String,
    /// The allow-list the switch puts in force with the new version, if the rotation
    /// changes it (migration 0020).
    pub allow_list: Option<AllowListChange>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Why a running saga is left alone until someone resumes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// It ran through the step its `until` named.
    Paused(Step),
    /// A step failed past the switch (the saga machine's `AwaitResume`).
    Failed(Step),
}

impl RotationRecord {
    /// The saga machine's view of the record.
    pub fn saga(&self) -> Saga {
        Saga {
            step: self.step,
            status: self.status,
            failures: self.failures,
        }
    }

    /// Takes the saga machine's new state.
    pub fn apply(&mut self, saga: Saga) {
        self.step = saga.step;
        self.status = saga.status;
        self.failures = saga.failures;
    }

    /// True once the pointer switched (derived from step and status).
    pub fn switched(&self) -> bool {
        self.saga().switched()
    }

    /// Why the rotation waits for a resume, if it does; `None` for a running saga a
    /// worker should drive, and for a finished one.
    pub fn hold(&self) -> Option<Hold> {
        if self.status != Status::Running {
            return None;
        }
        if self.error.is_some() {
            return Some(Hold::Failed(self.step));
        }
        self.paused_after
            .filter(|until| self.step > *until)
            .map(Hold::Paused)
    }
}

/// Which rotations `Store::list_rotations` returns (within one tenant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationFilter {
    /// Only this key's.
    pub key: Option<KeyId>,
    /// Only those in this status.
    pub status: Option<Status>,
}

/// Rotation saga records and the tracked data keys a saga rewraps.
#[async_trait]
pub trait RotationStore: Send + Sync {
    /// Records a new running rotation. `Conflict` if the key already has one, or if
    /// the rotation's `from_version` is not (any more) the key's primary version: the
    /// check is part of the transaction, so a start cannot act on a stale primary.
    async fn start_rotation(&self, rotation: &RotationRecord, record: &Record) -> StoreResult<()>;

    /// A rotation by id.
    async fn get_rotation(&self, tenant: TenantId, id: &str)
    -> StoreResult<Option<RotationRecord>>;
    /// The tenant's rotations matching `filter`, newest first.
    async fn list_rotations(
        &self,
        tenant: TenantId,
        filter: RotationFilter,
    ) -> StoreResult<Vec<RotationRecord>>;

    /// Saves a rotation's mutable fields (step, status, versions, failures, error,
    /// pause) if the stored record is still at `from`'s step, status and pause
    /// (compare-and-set: `Conflict` when another driver moved it, or a resume re-paused
    /// it, first), with the step's audit entry. `started_by` is never changed.
    async fn save_rotation(
        &self,
        from: &RotationRecord,
        rotation: &RotationRecord,
        record: &Record,
    ) -> StoreResult<()>;

    /// Every running rotation, of every tenant (the rotation worker drives them).
    async fn running_rotations(&self) -> StoreResult<Vec<RotationRecord>>;

    /// Registers a tracked data key. `Conflict` if the id is taken in the tenant.
    async fn track_key(&self, tracked: &TrackedKey, record: &Record) -> StoreResult<()>;

    /// A tracked data key.
    async fn get_tracked(
        &self,
        tenant: TenantId,
        track_id: &str,
    ) -> StoreResult<Option<TrackedKey>>;

    /// Up to `limit` tracked data keys of `key` wrapped under `version`.
    async fn tracked_under(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: u32,
        limit: u64,
    ) -> StoreResult<Vec<TrackedKey>>;

    /// Count of tracked data keys of `key` per version.
    async fn count_tracked(&self, tenant: TenantId, key: KeyId) -> StoreResult<Vec<(u32, u64)>>;

    /// Replaces the envelopes of `items` still under `from_version` with theirs under
    /// `to_version`, in one transaction, each by compare-and-set: an item another run
    /// moved meanwhile is left alone. Returns how many moved.
    async fn rewrap_tracked(
        &self,
        tenant: TenantId,
        from_version: u32,
        to_version: u32,
        items: &[Rewrapped],
    ) -> StoreResult<u64>;
}
