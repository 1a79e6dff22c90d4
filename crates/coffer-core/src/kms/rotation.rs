//! The rotation saga's executor: runs `saga::Saga` against the store, custody, cache and
//! audit log, persisting the state after every step so a restarted process resumes it.
//!
//! Every step is idempotent, because a crash can fall between a step's effect and the
//! record of its completion: re-running it finds the effect done and moves on.

use std::time::Duration;

use super::{Caller, Kms, KmsError, KmsResult, PrincipalUse};
use crate::audit::{Actor, AuditEntry};
use crate::ids::{TenantId, VersionNumber};
use crate::lifecycle::{KeyState, VersionState};
use crate::saga::{self, Effect, Saga, SagaError, Status, Step};
use crate::store::{Record, RotationRecord};
use crate::token::{Operation, TokenId};

/// How long `drain_inflight` waits for operations on the old version to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A rotation and its progress.
#[derive(Debug, Clone)]
pub struct RotationStatus {
    /// The persisted record.
    pub record: RotationRecord,
    /// Tracked data keys still under the old version.
    pub tracked_remaining: u64,
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
    /// Principals, most recent first.
    pub principals: Vec<(TokenId, PrincipalUse)>,
}

pub(super) fn saga_of(record: &RotationRecord) -> KmsResult<Saga> {
    let corrupt = |_| KmsError::Internal("corrupt rotation record".into());
    Ok(Saga {
        step: record.step.parse().map_err(corrupt)?,
        status: record.status.parse().map_err(corrupt)?,
        switched: record.switched,
        failures: record.failures,
    })
}

fn apply(record: &mut RotationRecord, saga: Saga) {
    record.step = saga.step.as_str().to_owned();
    record.status = saga.status.as_str().to_owned();
    record.switched = saga.switched;
    record.failures = saga.failures;
}

fn version(n: u32) -> KmsResult<VersionNumber> {
    VersionNumber::new(n).map_err(|e| KmsError::Internal(e.to_string()))
}

/// Test builds only: `COFFER_FAILPOINT=rotation:<step>` kills the process (SIGKILL) when
/// that step is about to run, for the crash tests.
#[cfg(feature = "failpoints")]
fn failpoint(step: Step) {
    if std::env::var("COFFER_FAILPOINT").ok().as_deref() == Some(&format!("rotation:{step}")) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
fn failpoint(_step: Step) {}

impl Kms {
    fn rotation_caller(&self, caller: &Caller) -> KmsResult<TenantId> {
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
        Ok(RotationStatus {
            record,
            tracked_remaining,
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

    /// Starts a rotation saga of `reference` and runs it (to the end, or through `until`).
    pub async fn start_rotation(
        &self,
        caller: &Caller,
        reference: &str,
        until: Option<Step>,
    ) -> KmsResult<RotationStatus> {
        self.rotation_caller(caller)?;
        let entry = self
            .key_for(caller, Operation::KeysRotate, reference)
            .await?;
        if entry.key.state != KeyState::Enabled {
            return Err(KmsError::KeyDisabled("not enabled"));
        }
        let from = entry.primary_number()?;
        let now = self.keys.clock().now();
        let record = RotationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: entry.key.tenant,
            key: entry.key.id,
            step: Step::CreateVersion.as_str().into(),
            status: Status::Running.as_str().into(),
            started_at: now,
            from_version: from.get(),
            to_version: None,
            switched: false,
            failures: 0,
            error: None,
            updated_at: now,
        };
        let actor = caller.actor("rotation.start");
        let entry = self.step_entry(&actor, &record, "rotation.start");
        self.keys
            .store()
            .start_rotation(&record, &Record::audit(entry))
            .await
            .map_err(|e| match e {
                crate::StoreError::Conflict(_) => {
                    KmsError::Conflict("a rotation is already running for this key".into())
                }
                other => other.into(),
            })?;
        self.drive(record, until, &actor).await
    }

    /// Resumes a rotation from its persisted step.
    pub async fn resume_rotation(
        &self,
        caller: &Caller,
        id: &str,
        until: Option<Step>,
    ) -> KmsResult<RotationStatus> {
        let record = self.load_rotation(caller, id).await?;
        saga_of(&record)?
            .resume()
            .map_err(|e| KmsError::Conflict(e.to_string()))?;
        self.drive(record, until, &caller.actor("rotation.resume"))
            .await
    }

    /// Rolls a rotation back: allowed before the switch only.
    pub async fn rollback_rotation(&self, caller: &Caller, id: &str) -> KmsResult<RotationStatus> {
        let mut record = self.load_rotation(caller, id).await?;
        let (saga, _) = saga_of(&record)?.rollback().map_err(|e| match e {
            SagaError::ForwardOnly(_) => KmsError::Conflict(format!(
                "rotation {id} already switched the primary pointer, so it can only move forward; resume it with: coffer rotate resume {id}"
            )),
            other => KmsError::Conflict(other.to_string()),
        })?;
        let actor = caller.actor("rotation.rollback");
        self.compensate(&record, &actor).await?;
        let before = record.clone();
        apply(&mut record, saga);
        record.updated_at = self.keys.clock().now();
        let entry = self.step_entry(&actor, &record, "rotation.rollback");
        self.save_progress(&before, &record, entry).await?;
        self.status_of(record).await
    }

    /// A rotation's state.
    pub async fn rotation_status(&self, caller: &Caller, id: &str) -> KmsResult<RotationStatus> {
        let record = self.load_rotation(caller, id).await?;
        self.status_of(record).await
    }

    /// Resumes every running rotation (at start, after a crash). Errors are logged.
    pub async fn resume_all(&self) {
        tracing::info!("resuming interrupted rotations");
        let running = match self.keys.store().running_rotations().await {
            Ok(running) => running,
            Err(error) => return tracing::error!(%error, "cannot list running rotations"),
        };
        for record in running {
            let id = record.id.clone();
            // Nobody asked: the resumption names itself, and the run it continues.
            let actor = Actor::new("coffer-rotation", format!("resume:{id}"), "rotation.resume");
            match self.drive(record, None, &actor).await {
                Ok(status) => {
                    tracing::info!(rotation = %id, status = %status.record.status, "resumed rotation")
                }
                Err(error) => tracing::error!(rotation = %id, %error, "resuming rotation failed"),
            }
        }
    }

    async fn drive(
        &self,
        mut record: RotationRecord,
        until: Option<Step>,
        actor: &Actor,
    ) -> KmsResult<RotationStatus> {
        // The saga's own changes carry the rotation as their request id, like its steps.
        let saga_actor = Actor {
            request_id: format!("rotation:{}", record.id),
            ..actor.clone()
        };
        loop {
            let saga = saga_of(&record)?;
            if saga.status != Status::Running {
                break;
            }
            let step = saga.step;
            tracing::info!(rotation = %record.id, %step, "rotation step");
            failpoint(step);
            let outcome = self.run_step(&mut record, step, &saga_actor).await;
            let now = self.keys.clock().now();
            let op = format!("rotation.{step}");
            match outcome {
                Ok(()) => {
                    let (next, _) = saga
                        .step_done(step)
                        .map_err(|e| KmsError::Internal(e.to_string()))?;
                    let before = record.clone();
                    apply(&mut record, next);
                    record.error = None;
                    record.updated_at = now;
                    let entry = self.step_entry(actor, &record, &op);
                    self.save_progress(&before, &record, entry).await?;
                    if until == Some(step) {
                        break;
                    }
                }
                Err(error) => {
                    let (next, effect) = saga
                        .step_failed(step)
                        .map_err(|e| KmsError::Internal(e.to_string()))?;
                    if effect == Effect::Compensate {
                        self.compensate(&record, actor).await?;
                    }
                    let before = record.clone();
                    apply(&mut record, next);
                    record.error = Some(format!("{step}: {error}"));
                    record.updated_at = now;
                    let mut entry = self.step_entry(actor, &record, &op);
                    error.code().clone_into(&mut entry.outcome);
                    self.save_progress(&before, &record, entry).await?;
                    break;
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
        if versions
            .iter()
            .any(|v| v.number.get() == new && v.state == VersionState::Pending)
        {
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
                self.keys.load_material(&details, v).await?;
            }
            Step::SwitchPointer => {
                let new = self.new_version(record)?;
                let versions = self.keys.versions(tenant, key).await?;
                let done = versions.iter().any(|v| v.number == new && v.primary);
                if !done {
                    self.keys.activate(tenant, key, new, &actor).await?;
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
                // With an overlap policy the old version goes only to `retiring`: it keeps
                // decrypting and verifying (untracked ciphertexts, old signatures) until the
                // overlap ends and the scheduler retires it. Without one it retires now.
                let details = self.keys.key(tenant, key).await?;
                let overlap = details.rotation.overlap.is_some_and(|o| !o.get().is_zero());
                let versions = self.keys.versions(tenant, key).await?;
                let state = versions.iter().find(|v| v.number == from).map(|v| v.state);
                if state == Some(VersionState::Active) {
                    self.keys
                        .set_version_state(tenant, key, from, VersionState::Retiring, &actor)
                        .await?;
                }
                if !overlap && matches!(state, Some(VersionState::Active | VersionState::Retiring))
                {
                    self.keys
                        .set_version_state(tenant, key, from, VersionState::Retired, &actor)
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
        self.rewrap_tracked_between(
            record.tenant,
            record.key,
            version(record.from_version)?,
            new,
        )
        .await
    }
}
