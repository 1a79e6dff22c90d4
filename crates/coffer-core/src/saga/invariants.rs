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
    /// An old version is retired (or retiring) only after its saga switched away from it.
    RetireAfterSwitch,
    /// No tracked ciphertext references a retired (or destroyed) version.
    NoKeyOrphans,
    /// The pointer never moves back.
    ForwardOnly,
    /// Exactly one primary, and it is active.
    OnePrimary,
    /// At most one running saga.
    OneSagaPerKey,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RetireAfterSwitch => "RetireAfterSwitch",
            Self::NoKeyOrphans => "NoKeyOrphans",
            Self::ForwardOnly => "ForwardOnly",
            Self::OnePrimary => "OnePrimary",
            Self::OneSagaPerKey => "OneSagaPerKey",
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
                .any(|(saga, from)| *from == *number && saga.switched);
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
