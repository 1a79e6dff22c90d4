//! The invariants of a key under rotation. The model checker asserts them in every
//! reachable state; the service checks the same on a live key (`coffer rotate verify`).

use std::fmt;

use super::{Saga, Status};
use crate::lifecycle::VersionState;

/// What the invariants look at: one key's versions, its tracked ciphertexts and sagas.
#[derive(Debug, Clone, Copy)]
pub struct KeyView<'a> {
    /// `(version number, state, primary)` for every version.
    pub versions: &'a [(u32, VersionState, bool)],
    /// The version each tracked ciphertext is wrapped under.
    pub tracked: &'a [u32],
    /// The key's sagas with the version each rotated away from.
    pub sagas: &'a [(Saga, u32)],
    /// True if the pointer ever moved back to a version it had left.
    pub pointer_moved_back: bool,
}

/// The invariants of DESIGN §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invariant {
    /// An old version is retiring or retired only after its saga switched away from it.
    /// Reactivation (`retired -> retiring`) and the quiet-period retirement
    /// (`retiring -> retired`) keep it: both act on a version its saga already left.
    RetireAfterSwitch,
    /// No tracked ciphertext references a retired (or destroyed) version.
    NoKeyOrphans,
    /// The pointer never moves back.
    ForwardOnly,
    /// Exactly one primary, and it is active.
    OnePrimary,
    /// At most one running saga.
    OneSagaPerKey,
    /// The saga's record agrees with the key's versions: where the pointer is, what
    /// became of the new version, and of the old one once completed.
    RecordMatchesKey,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RetireAfterSwitch => "RetireAfterSwitch",
            Self::NoKeyOrphans => "NoKeyOrphans",
            Self::ForwardOnly => "ForwardOnly",
            Self::OnePrimary => "OnePrimary",
            Self::OneSagaPerKey => "OneSagaPerKey",
            Self::RecordMatchesKey => "RecordMatchesKey",
        })
    }
}

/// A broken invariant and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

/// Every violated invariant (empty when the key is sound).
pub fn check(view: &KeyView<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut violate = |invariant, detail: String| out.push(Violation { invariant, detail });
    let primaries: Vec<_> = view
        .versions
        .iter()
        .filter(|(_, _, primary)| *primary)
        .collect();
    if primaries.len() != 1
        || primaries
            .iter()
            .any(|(_, state, _)| *state != VersionState::Active)
    {
        violate(
            Invariant::OnePrimary,
            format!("{} primary versions", primaries.len()),
        );
    }
    for (number, state, _) in view.versions {
        if matches!(state, VersionState::Retiring | VersionState::Retired) {
            let switched_away = view
                .sagas
                .iter()
                .any(|(saga, from)| *from == *number && saga.switched());
            let manual = view.sagas.iter().all(|(_, from)| *from != *number);
            if !switched_away && !manual {
                violate(
                    Invariant::RetireAfterSwitch,
                    format!("version {number} is {state} before its rotation switched"),
                );
            }
        }
    }
    for wrapped in view.tracked {
        let state = view
            .versions
            .iter()
            .find(|(n, _, _)| n == wrapped)
            .map(|(_, s, _)| *s);
        if matches!(
            state,
            Some(VersionState::Retired | VersionState::Destroyed) | None
        ) {
            violate(
                Invariant::NoKeyOrphans,
                format!("a tracked ciphertext references version {wrapped}, which is unusable"),
            );
        }
    }
    if view.pointer_moved_back {
        violate(
            Invariant::ForwardOnly,
            "the primary pointer moved back".into(),
        );
    }
    let running = view
        .sagas
        .iter()
        .filter(|(saga, _)| saga.status == Status::Running)
        .count();
    if running > 1 {
        violate(
            Invariant::OneSagaPerKey,
            format!("{running} running rotations"),
        );
    }
    out
}

/// One saga's record, as [`check_record`] compares it with the key.
#[derive(Debug, Clone, Copy)]
pub struct RecordView {
    /// The saga's state.
    pub saga: Saga,
    /// The version it rotates away from.
    pub from: u32,
    /// The version it created, once it did.
    pub to: Option<u32>,
}

/// Every way the record of one saga contradicts the key's `versions`
/// (`(number, state, primary)`): a record that says the pointer has not switched (or
/// was rolled back) while the new version is primary, one that says it switched while
/// another version is, a rollback that left its new version usable, and a completed
/// rotation whose old version still encrypts. A completed rotation leaves the old
/// version `retiring` (decrypt-only) until its overlap or quiet period ends, and the
/// version may be `retired` and reactivated since, so either state agrees.
pub fn check_record(record: &RecordView, versions: &[(u32, VersionState, bool)]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut violate = |detail: String| {
        out.push(Violation {
            invariant: Invariant::RecordMatchesKey,
            detail,
        });
    };
    let state_of = |n: u32| {
        versions
            .iter()
            .find(|(v, _, _)| *v == n)
            .map(|(_, s, _)| *s)
    };
    let primary = versions.iter().find(|(_, _, p)| *p).map(|(v, _, _)| *v);
    let saga = record.saga;
    match (record.to, saga.switched()) {
        (Some(to), false) if primary == Some(to) => violate(format!(
            "the record says the pointer has not switched ({}), but the new version {to} is primary",
            saga.status.as_str()
        )),
        (Some(to), true) if primary != Some(to) => violate(format!(
            "the record says the pointer switched to version {to}, but the primary is {}",
            primary.map_or_else(|| "missing".to_owned(), |p| format!("version {p}"))
        )),
        (None, true) => {
            violate("the record says the pointer switched, but names no new version".into())
        }
        _ => {}
    }
    if saga.status == Status::RolledBack
        && let Some(to) = record.to
    {
        match state_of(to) {
            None | Some(VersionState::Destroyed) => {}
            Some(state) => violate(format!(
                "the record says rolled-back, but its new version {to} is {state}, not destroyed"
            )),
        }
    }
    if saga.status == Status::Completed {
        let allowed = [VersionState::Retiring, VersionState::Retired];
        match state_of(record.from) {
            Some(state) if !allowed.contains(&state) => violate(format!(
                "the record says completed, but the old version {} is {state}",
                record.from
            )),
            _ => {}
        }
    }
    out
}
