//! The rotation saga's executor: runs `saga::Saga` against the store, custody, cache and
//! audit log, persisting the state after every step so a restarted process resumes it.
//!
//! Requests only record intent: `start_rotation` stores a running record and
//! `resume_rotation` sets its pause; the rotation worker (`rotation_worker.rs`) drives
//! the saga, so no client connection holds it. Rollback stays in the request: it only
//! destroys a pending version and is refused past the switch.
//!
//! Every step is idempotent, because a crash can fall between a step's effect and the
//! record of its completion: re-running it finds the effect done and moves on.

use std::collections::BTreeSet;
use std::time::Duration;

use super::untracked::RetireUntracked;
use super::{Caller, Kms, KmsError, KmsResult};
use crate::attestation::Measurement;
use crate::audit::{Actor, AuditEntry};
use crate::ids::{TenantId, VersionNumber};
use crate::lifecycle::{KeyState, VersionState};
use crate::saga::{self, Effect, SagaError, Status, Step};
use crate::store::{Record, RotationRecord};
use crate::token::Operation;
use crate::usage::VersionUse;

/// How long `drain_inflight` waits for operations on the old version to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A rotation and its progress.
#[derive(Debug, Clone)]
pub struct RotationStatus {
    /// The persisted record.
    pub record: RotationRecord,
    /// Tracked data keys still under the old version.
    pub tracked_remaining: u64,
    /// The rewrap's progress, while this process runs the `rewrap_tracked` step.
    pub rewrap: Option<super::RewrapProgress>,
}

/// The outcome of `verify`.
#[derive(Debug, Clone)]
pub struct RotationVerification {
    /// The rotation.
    pub status: RotationStatus,
    /// Broken invariants.
    pub violations: Vec<saga::Violation>,
    /// True when a signed checkpoint covers the rotation's last audit entry.
    pub anchored: bool,
    /// The newest checkpoint's size.
    pub checkpoint_size: Option<u64>,
}

/// Use of one version, for `references`.
#[derive(Debug, Clone)]
pub struct VersionReferences {
    /// Number.
    pub version: VersionNumber,
    /// State.
    pub state: VersionState,
    /// Primary?
    pub primary: bool,
    /// In flight now.
    pub in_flight: u64,
    /// Tracked data keys under it.
    pub tracked: u64,
    /// Its use per principal and kind, most recent first: stored use of every replica
    /// plus this process's not yet flushed.
    pub principals: Vec<VersionUse>,
    /// Untracked use last seen at or after this counts in a rotation's preflight (now
    /// minus `rotation.untracked_window`).
    pub untracked_since: crate::time::Timestamp,
}

fn joined(measurements: &BTreeSet<Measurement>) -> String {
    let list: Vec<&str> = measurements.iter().map(Measurement::as_str).collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(",")
    }
}

fn version(n: u32) -> KmsResult<VersionNumber> {
    VersionNumber::new(n).map_err(|e| KmsError::Internal(e.to_string()))
}

/// Test builds only: `COFFER_FAILPOINT=rotation:<step>` kills the process (SIGKILL) when
/// that step is about to run, and `rotation:<step>:done` once its effect is made and
/// before its record is saved, for the crash tests.
#[cfg(feature = "failpoints")]
fn failpoint(point: &str) {
    if std::env::var("COFFER_FAILPOINT").ok().as_deref() == Some(&format!("rotation:{point}")) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
fn failpoint(_point: &str) {}

impl Kms {
    pub(super) fn rotation_caller(&self, caller: &Caller) -> KmsResult<TenantId> {
        if !caller.grants.allows_op(Operation::KeysRotate) {
            return Err(KmsError::Forbidden(
                "the token does not allow rotating keys",
            ));
        }
        Self::tenant_of(caller)
    }

    pub(super) async fn load_rotation(
        &self,
        caller: &Caller,
        id: &str,
    ) -> KmsResult<RotationRecord> {
        let tenant = self.rotation_caller(caller)?;
        let record = self
            .keys
            .store()
            .get_rotation(tenant, id)
            .await?
            .ok_or(KmsError::NotFound("rotation"))?;
        // The key must be within the token's key scope too.
        self.entry_in_scope(caller, tenant, record.key).await?;
        Ok(record)
    }

    pub(super) async fn status_of(&self, record: RotationRecord) -> KmsResult<RotationStatus> {
        let counts = self
            .keys
            .store()
            .count_tracked(record.tenant, record.key)
            .await?;
        let tracked_remaining = counts
            .iter()
            .find(|(v, _)| *v == record.from_version)
            .map_or(0, |(_, n)| *n);
        let rewrap = (record.step == Step::RewrapTracked && record.status == Status::Running)
            .then(|| self.rewrap_board.progress(&record.id))
            .flatten();
        Ok(RotationStatus {
            record,
            tracked_remaining,
            rewrap,
        })
    }

    /// The audit entry of a saga step (or start, or rollback) by `actor`. It names the
    /// caller (principal) and, as its request id, the rotation (`rotation:<ID>`, which
    /// runbooks search for); the caller's own request id goes in the detail.
    fn step_entry(&self, actor: &Actor, record: &RotationRecord, op: &str) -> AuditEntry {
        let mut entry = actor.as_op(op).entry(
            Some(record.tenant),
            (
                Some(record.key),
                record.to_version.and_then(|v| version(v).ok()),
            ),
            self.keys.clock().now(),
            Some(format!("request {}", actor.request_id)),
        );
        entry.request_id = format!("rotation:{}", record.id);
        entry
    }

    /// Saves the saga's progress from `before` to `record` by compare-and-set, with the
    /// step's audit entry in the same transaction.
    async fn save_progress(
        &self,
        before: &RotationRecord,
        record: &RotationRecord,
        entry: AuditEntry,
    ) -> KmsResult<()> {
        self.keys
            .store()
            .save_rotation(before, record, &Record::audit(entry))
            .await
            .map_err(|e| match e {
                crate::StoreError::Conflict(_) => KmsError::Conflict(format!(
                    "rotation {} was moved on by another driver; see coffer rotate status {}",
                    record.id, record.id
                )),
                other => other.into(),
            })
    }

    async fn audit_step(&self, actor: &Actor, record: &RotationRecord, op: &str) -> KmsResult<()> {
        let entry = self.step_entry(actor, record, op);
        self.audit
            .record(entry)
            .await
            .map_err(|e| KmsError::Unavailable(e.to_string()))
    }

    /// Records a rotation saga of `reference`, to run to the end or through `until`.
    /// With `expect_version`, only if that is the key's primary version
    /// (`VersionMismatch` otherwise); the store re-checks the primary in the
    /// transaction that records the start, so no other rotation can switch it between
    /// the check and the start. Refused (`UntrackedUse`) when the primary was used for
    /// untracked material within `rotation.untracked_window`, unless `untracked` accepts
    /// it. It returns at once: the rotation worker drives the saga.
    /// A refusal changes nothing and is recorded here; the change records itself.
    pub async fn start_rotation(
        &self,
        caller: &Caller,
        reference: &str,
        until: Option<Step>,
        expect_version: Option<u32>,
        untracked: RetireUntracked,
        allow_list: Option<BTreeSet<Measurement>>,
    ) -> KmsResult<RotationStatus> {
        let result = self
            .start_rotation_unaudited(
                caller,
                reference,
                until,
                expect_version,
                untracked,
                allow_list,
            )
            .await;
        let actor = caller.actor("rotation.start");
        self.settled(caller, &actor, Some(reference), result).await
    }

    async fn start_rotation_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        until: Option<Step>,
        expect_version: Option<u32>,
        untracked: RetireUntracked,
        allow_list: Option<BTreeSet<Measurement>>,
    ) -> KmsResult<RotationStatus> {
        self.rotation_caller(caller)?;
        let entry = self
            .key_for(caller, Operation::KeysRotate, reference)
            .await?;
        if entry.key.state != KeyState::Enabled {
            return Err(KmsError::KeyDisabled("not enabled"));
        }
        let from = entry.primary_number()?;
        if let Some(expected) = expect_version.filter(|v| *v != from.get()) {
            return Err(KmsError::VersionMismatch {
                expected,
                primary: from.get(),
            });
        }
        let allow_list = self
            .allow_list_at_start(entry.key.tenant, entry.key.id, allow_list)
            .await?;
        let accepted = self
            .preflight_untracked(entry.key.tenant, entry.key.id, from, untracked)
            .await?;
        let now = self.keys.clock().now();
        let record = RotationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: entry.key.tenant,
            key: entry.key.id,
            step: Step::CreateVersion,
            status: Status::Running,
            started_at: now,
            from_version: from.get(),
            to_version: None,
            failures: 0,
            error: None,
            paused_after: until,
            started_by: caller.token_id.to_string(),
            allow_list,
            updated_at: now,
        };
        let actor = caller.actor("rotation.start");
        let mut entry = self.step_entry(&actor, &record, "rotation.start");
        if untracked == RetireUntracked::Accept {
            // The evidence of the operator's choice, and of what it accepted.
            let accepted = accepted.as_deref().unwrap_or("no recent untracked use");
            let detail = entry.detail.get_or_insert_with(String::new);
            detail.push_str(&format!("; retire-untracked: {accepted}"));
        }
        if let Some(list) = &record.allow_list {
            let detail = entry.detail.get_or_insert_with(String::new);
            detail.push_str(&format!(
                "; allow-list at the switch (policy v{} -> v{}): {}",
                list.from_policy,
                list.from_policy + 1,
                joined(&list.measurements)
            ));
        }
        self.keys
            .store()
            .start_rotation(&record, &Record::audit(entry))
            .await
            .map_err(KmsError::from)?;
        self.rotation_wake.notify_one();
        self.status_of(record).await
    }

    /// Lets a rotation run on from its persisted step, to the end or through `until`
    /// (which becomes its new pause), and clears a failure it waits on. It returns at
    /// once: the rotation worker drives the saga.
    /// A refusal changes nothing and is recorded here; the change records itself.
    pub async fn resume_rotation(
        &self,
        caller: &Caller,
        id: &str,
        until: Option<Step>,
    ) -> KmsResult<RotationStatus> {
        let result = self.resume_rotation_unaudited(caller, id, until).await;
        let actor = caller.actor("rotation.resume");
        self.settled(caller, &actor, None, result).await
    }

    async fn resume_rotation_unaudited(
        &self,
        caller: &Caller,
        id: &str,
        until: Option<Step>,
    ) -> KmsResult<RotationStatus> {
        let actor = caller.actor("rotation.resume");
        // A driver that moves the saga between our read and our write makes the
        // compare-and-set fail; read again and re-check rather than refuse the caller.
        let mut attempts = 0;
        loop {
            let record = self.load_rotation(caller, id).await?;
            record
                .saga()
                .resume()
                .map_err(|e| KmsError::Conflict(e.to_string()))?;
            if let Some(until) = until.filter(|until| *until < record.step) {
                return Err(KmsError::Invalid(format!(
                    "until {until} names a step rotation {id} has already passed (its next step is {})",
                    record.step
                )));
            }
            let mut resumed = record.clone();
            resumed.paused_after = until;
            resumed.error = None;
            resumed.updated_at = self.keys.clock().now();
            let entry = self.step_entry(&actor, &resumed, "rotation.resume");
            match self.save_progress(&record, &resumed, entry).await {
                Ok(()) => {
                    self.rotation_wake.notify_one();
                    return self.status_of(resumed).await;
                }
                Err(KmsError::Conflict(_)) if attempts < 3 => attempts += 1,
                Err(other) => return Err(other),
            }
        }
    }

    /// Rolls a rotation back: allowed before the switch only.
    /// A refusal changes nothing and is recorded here; the change records itself.
    pub async fn rollback_rotation(&self, caller: &Caller, id: &str) -> KmsResult<RotationStatus> {
        let result = self.rollback_rotation_unaudited(caller, id).await;
        let actor = caller.actor("rotation.rollback");
        self.settled(caller, &actor, None, result).await
    }

    async fn rollback_rotation_unaudited(
        &self,
        caller: &Caller,
        id: &str,
    ) -> KmsResult<RotationStatus> {
        let mut record = self.load_rotation(caller, id).await?;
        let (saga, _) = record.saga().rollback().map_err(|e| match e {
            SagaError::ForwardOnly(_) => KmsError::Conflict(format!(
                "rotation {id} already switched the primary pointer, so it can only move forward; resume it with: coffer rotate resume {id}"
            )),
            other => KmsError::Conflict(other.to_string()),
        })?;
        let actor = caller.actor("rotation.rollback");
        self.compensate(&record, &actor).await?;
        let before = record.clone();
        record.apply(saga);
        record.updated_at = self.keys.clock().now();
        let entry = self.step_entry(&actor, &record, "rotation.rollback");
        self.save_progress(&before, &record, entry).await?;
        self.status_of(record).await
    }

    /// A rotation's state.
    pub async fn rotation_status(&self, caller: &Caller, id: &str) -> KmsResult<RotationStatus> {
        let result = self.rotation_status_unaudited(caller, id).await;
        self.audited(caller, "rotation.status", None, result).await
    }

    async fn rotation_status_unaudited(
        &self,
        caller: &Caller,
        id: &str,
    ) -> KmsResult<RotationStatus> {
        let record = self.load_rotation(caller, id).await?;
        self.status_of(record).await
    }

    /// Runs the saga's steps until it finishes or holds (paused after its `until`, or
    /// failed past the switch). The rotation worker calls it under the rotation's
    /// lease; the compare-and-set save keeps a second driver from moving it twice.
    pub(super) async fn drive(
        &self,
        mut record: RotationRecord,
        actor: &Actor,
    ) -> KmsResult<RotationStatus> {
        // The saga's own changes carry the rotation as their request id, like its steps.
        let saga_actor = Actor {
            request_id: format!("rotation:{}", record.id),
            ..actor.clone()
        };
        while record.status == Status::Running && record.hold().is_none() {
            let saga = record.saga();
            let step = saga.step;
            tracing::info!(rotation = %record.id, %step, "rotation step");
            failpoint(step.as_str());
            let outcome = self.run_step(&mut record, step, &saga_actor).await;
            if outcome.is_ok() {
                failpoint(&format!("{step}:done"));
            }
            let now = self.keys.clock().now();
            let op = format!("rotation.{step}");
            match outcome {
                Ok(()) => {
                    let (next, _) = saga
                        .step_done(step)
                        .map_err(|e| KmsError::Internal(e.to_string()))?;
                    let before = record.clone();
                    record.apply(next);
                    record.error = None;
                    record.updated_at = now;
                    let entry = self.step_entry(actor, &record, &op);
                    self.save_progress(&before, &record, entry).await?;
                }
                Err(error) => {
                    let (next, effect) = saga
                        .step_failed(step)
                        .map_err(|e| KmsError::Internal(e.to_string()))?;
                    if effect == Effect::Compensate {
                        self.compensate(&record, actor).await?;
                    }
                    let before = record.clone();
                    record.apply(next);
                    record.error = Some(format!("{step}: {error}"));
                    record.updated_at = now;
                    let mut entry = self.step_entry(actor, &record, &op);
                    error.code().clone_into(&mut entry.outcome);
                    self.save_progress(&before, &record, entry).await?;
                }
            }
        }
        self.forget_key(record.tenant, record.key);
        self.status_of(record).await
    }

    /// Destroys the new version if it was created (still pending: the switch never happened).
    async fn compensate(&self, record: &RotationRecord, actor: &Actor) -> KmsResult<()> {
        let Some(new) = record.to_version else {
            return Ok(());
        };
        let versions = self.keys.versions(record.tenant, record.key).await?;
        let new_version = versions.iter().find(|v| v.number.get() == new);
        Self::refuse_if_switched(
            record,
            version(new)?,
            new_version.is_some_and(|v| v.primary),
        )?;
        if new_version.is_some_and(|v| v.state == VersionState::Pending) {
            self.keys
                .set_version_state(
                    record.tenant,
                    record.key,
                    version(new)?,
                    VersionState::Destroyed,
                    &actor.as_op("rotation.compensate"),
                )
                .await?;
        }
        Ok(())
    }

    async fn run_step(
        &self,
        record: &mut RotationRecord,
        step: Step,
        actor: &Actor,
    ) -> KmsResult<()> {
        let (tenant, key) = (record.tenant, record.key);
        let actor = actor.as_op(&format!("rotation.{step}"));
        let from = version(record.from_version)?;
        match step {
            Step::CreateVersion => {
                // Adopt a pending version a crashed run created but never recorded.
                let versions = self.keys.versions(tenant, key).await?;
                let adopted = versions
                    .iter()
                    .rev()
                    .find(|v| v.number > from && v.state == VersionState::Pending);
                let created = match adopted {
                    Some(v) => v.number,
                    None => {
                        self.keys
                            .add_version_to(tenant, key, VersionState::Pending, &actor)
                            .await?
                            .number
                    }
                };
                record.to_version = Some(created.get());
            }
            Step::Stage => {
                // Every replica can use it: its material unwraps and loads here.
                let new = self.new_version(record)?;
                let details = self.keys.key(tenant, key).await?;
                let versions = self.keys.versions(tenant, key).await?;
                let v = versions
                    .iter()
                    .find(|v| v.number == new)
                    .ok_or(KmsError::NotFound("key version"))?;
                self.keys.open_version(&details, v).await?;
            }
            Step::SwitchPointer => {
                let new = self.new_version(record)?;
                let versions = self.keys.versions(tenant, key).await?;
                let done = versions.iter().any(|v| v.number == new && v.primary);
                if !done {
                    self.switch_with_allow_list(record, new, &actor).await?;
                }
                self.forget_key(tenant, key);
            }
            Step::DrainInflight => {
                self.forget_key(tenant, key);
                self.references
                    .drained(key, from, DRAIN_TIMEOUT)
                    .await
                    .map_err(|busy| {
                        KmsError::Conflict(format!("{busy} operations still use version {from}"))
                    })?;
            }
            Step::RewrapTracked => self.rewrap_tracked(record).await?,
            Step::RetireOld => {
                // The old version goes only to `retiring`: it stops encrypting and signing
                // but keeps decrypting and verifying (untracked ciphertexts, old
                // signatures). The scheduler retires it later: after the key's overlap
                // if it has one, otherwise once the tracker shows it unused for
                // `rotation.retire_after_quiet` (`quiet.rs`).
                let versions = self.keys.versions(tenant, key).await?;
                let state = versions.iter().find(|v| v.number == from).map(|v| v.state);
                if state == Some(VersionState::Active) {
                    self.keys
                        .set_version_state(tenant, key, from, VersionState::Retiring, &actor)
                        .await?;
                }
                self.forget_key(tenant, key);
            }
            Step::Anchor => {
                self.audit_step(&actor, record, "rotation.anchor_request")
                    .await?;
                self.audit
                    .checkpoint_now()
                    .await
                    .map_err(|e| KmsError::Unavailable(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn new_version(&self, record: &RotationRecord) -> KmsResult<VersionNumber> {
        version(
            record
                .to_version
                .ok_or(KmsError::Internal("no new version recorded".into()))?,
        )
    }

    async fn rewrap_tracked(&self, record: &RotationRecord) -> KmsResult<()> {
        let new = self.new_version(record)?;
        self.rewrap_for_rotation(record, version(record.from_version)?, new)
            .await
    }
}
