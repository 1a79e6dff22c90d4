//! The rotation saga as a pure state machine (DESIGN §4; seeds 000, 001, 003).
//!
//! ```text
//! create_version → stage → switch_pointer → drain_inflight → rewrap_tracked → retire_old → anchor
//! ```
//!
//! The rules, which the executor follows and the model checker (`tests/saga_model.rs`)
//! verifies over every interleaving of steps, failures, crashes, concurrent wraps and a
//! second rotation request:
//! - a failure before `switch_pointer` completes compensates: the saga ends
//!   `rolled-back` (the new version, still `pending`, is destroyed; nothing else changed);
//! - once `switch_pointer` completes the saga only moves forward: a failure leaves it at
//!   the failed step, to be resumed; `rollback` is refused and names `resume`;
//! - the state is persisted after every step, so a restarted process resumes from it;
//! - at most one saga per key is running.

mod invariants;

pub use invariants::{Invariant, KeyView, RecordView, Violation, check, check_record};

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::error::InvalidInput;

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// A new version is generated, `pending`.
    CreateVersion,
    /// Every replica loads the new version (still `pending`, not used).
    Stage,
    /// In one transaction the new version becomes `active` and primary.
    SwitchPointer,
    /// Wait (with a timeout) until no in-flight operation uses the old version.
    DrainInflight,
    /// Tracked data keys wrapped under the old version are rewrapped to the new one.
    RewrapTracked,
    /// The old version goes `retiring` → `retired`.
    RetireOld,
    /// An audit checkpoint covering the rotation's events is signed and anchored.
    Anchor,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Self; 7] = [
        Self::CreateVersion,
        Self::Stage,
        Self::SwitchPointer,
        Self::DrainInflight,
        Self::RewrapTracked,
        Self::RetireOld,
        Self::Anchor,
    ];

    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CreateVersion => "create_version",
            Self::Stage => "stage",
            Self::SwitchPointer => "switch_pointer",
            Self::DrainInflight => "drain_inflight",
            Self::RewrapTracked => "rewrap_tracked",
            Self::RetireOld => "retire_old",
            Self::Anchor => "anchor",
        }
    }

    /// The step after this one, if any.
    pub fn next(self) -> Option<Self> {
        let index = Self::ALL.iter().position(|s| *s == self)?;
        Self::ALL.get(index + 1).copied()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Step {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or(InvalidInput::new("saga step", "unknown step"))
    }
}

/// Where a saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Steps remain (possibly after a failure, waiting to be resumed).
    Running,
    /// Every step done.
    Completed,
    /// Compensated before the switch; nothing changed.
    RolledBack,
}

impl Status {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::RolledBack => "rolled-back",
        }
    }
}

impl FromStr for Status {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Self::Running),
            "completed" => Ok(Self::Completed),
            "rolled-back" => Ok(Self::RolledBack),
            _ => Err(InvalidInput::new("saga status", "unknown status")),
        }
    }
}

/// A refused saga transition.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SagaError {
    /// The event names a step other than the one due.
    #[error("step {got} reported, but {due} is due")]
    OutOfOrder {
        /// The step due.
        due: Step,
        /// The step reported.
        got: Step,
    },
    /// The saga is not running.
    #[error("the rotation is {0}; nothing more can happen to it")]
    Finished(&'static str),
    /// Rollback after the switch.
    #[error(
        "the pointer was switched at {0}: a rotation only moves forward from there; resume it instead"
    )]
    ForwardOnly(Step),
}

/// The persisted state of one saga.
///
/// Whether the pointer switched is not a field: it follows from the step and status
/// (see [`Saga::switched`]), so a stored record cannot contradict itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Saga {
    /// The next step to run (the failed one, after a failure past the switch).
    pub step: Step,
    /// Running, completed or rolled back.
    pub status: Status,
    /// Failures seen (for status output).
    pub failures: u32,
}

/// What the executor must do after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Run `step` next.
    Run(Step),
    /// Destroy the new (pending) version: the saga rolled back.
    Compensate,
    /// Wait for `resume`.
    AwaitResume(Step),
    /// Nothing left.
    Done,
}

impl Default for Saga {
    fn default() -> Self {
        Self::start()
    }
}

impl Saga {
    /// A new saga, about to create the version.
    pub const fn start() -> Self {
        Self {
            step: Step::CreateVersion,
            status: Status::Running,
            failures: 0,
        }
    }

    /// True once `switch_pointer` completed. A running saga's due step is past the
    /// switch exactly then (a failure past it keeps the failed step, which is later
    /// still); a completed saga switched; a rolled-back one never did, since rollback
    /// and compensation are refused once it has.
    pub fn switched(&self) -> bool {
        match self.status {
            Status::Running => self.step > Step::SwitchPointer,
            Status::Completed => true,
            Status::RolledBack => false,
        }
    }

    fn require_running(&self) -> Result<(), SagaError> {
        match self.status {
            Status::Running => Ok(()),
            other => Err(SagaError::Finished(other.as_str())),
        }
    }

    /// `step` completed.
    pub fn step_done(self, step: Step) -> Result<(Self, Effect), SagaError> {
        self.require_running()?;
        if step != self.step {
            return Err(SagaError::OutOfOrder {
                due: self.step,
                got: step,
            });
        }
        Ok(match step.next() {
            Some(next) => (Self { step: next, ..self }, Effect::Run(next)),
            None => (
                Self {
                    status: Status::Completed,
                    ..self
                },
                Effect::Done,
            ),
        })
    }

    /// `step` failed (or its process died and it is reported on restart).
    pub fn step_failed(self, step: Step) -> Result<(Self, Effect), SagaError> {
        self.require_running()?;
        if step != self.step {
            return Err(SagaError::OutOfOrder {
                due: self.step,
                got: step,
            });
        }
        let failures = self.failures + 1;
        if self.switched() {
            Ok((Self { failures, ..self }, Effect::AwaitResume(step)))
        } else {
            Ok((
                Self {
                    status: Status::RolledBack,
                    failures,
                    ..self
                },
                Effect::Compensate,
            ))
        }
    }

    /// An operator's rollback: allowed only before the switch.
    pub fn rollback(self) -> Result<(Self, Effect), SagaError> {
        self.require_running()?;
        if self.switched() {
            return Err(SagaError::ForwardOnly(Step::SwitchPointer));
        }
        Ok((
            Self {
                status: Status::RolledBack,
                ..self
            },
            Effect::Compensate,
        ))
    }

    /// An operator's resume: run the due step again.
    pub fn resume(self) -> Result<(Self, Effect), SagaError> {
        self.require_running()?;
        Ok((self, Effect::Run(self.step)))
    }
}

/// True when a new saga may start for a key whose sagas are `existing` (the store's
/// unique index enforces the same).
pub fn can_start<'a>(existing: impl IntoIterator<Item = &'a Saga>) -> bool {
    existing
        .into_iter()
        .all(|saga| saga.status != Status::Running)
}

#[cfg(test)]
mod tests;
