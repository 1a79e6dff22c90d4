//! Model checking of the rotation saga: every interleaving of saga steps, injected
//! failures, a process crash and restart (losing in-memory work), concurrent wraps that
//! register tracked data keys, and a second rotation request, explored exhaustively;
//! in every reachable state the five invariants of `coffer_core::saga::check` hold, and
//! a completed rotation and a rolled-back one are both reachable (so the check is not
//! vacuous). The transitions are the ones the executor applies: `Saga::step_done`,
//! `step_failed`, `can_start`.

use coffer_core::VersionState;
use coffer_core::saga::{self, Effect, KeyView, Saga, Status, Step};
use stateright::{Checker, Model, Property};

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct World {
    /// `(number, state, primary)`.
    versions: Vec<(u32, VersionState, bool)>,
    /// Persisted sagas: state, the version rotated away from, the new version.
    sagas: Vec<(Saga, u32, Option<u32>)>,
    /// The process is up (a crash loses `inflight`, not the persisted state).
    up: bool,
    /// Wraps in flight, by the version they read as primary.
    inflight: Vec<u32>,
    /// Tracked data keys, by the version wrapping them.
    tracked: Vec<u32>,
    /// Versions the pointer has left; moving back to one breaks ForwardOnly.
    left: Vec<u32>,
    moved_back: bool,
    failures_left: u8,
    crashes_left: u8,
    wraps_left: u8,
    requests_left: u8,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Action {
    RequestRotation,
    RunStep,
    FailStep,
    Crash,
    Restart,
    BeginWrap,
    EndWrap(usize),
}

struct SagaModel;

impl World {
    fn primary(&self) -> u32 {
        self.versions.iter().find(|v| v.2).map_or(0, |v| v.0)
    }

    fn running(&self) -> Option<usize> {
        self.sagas
            .iter()
            .position(|(s, _, _)| s.status == Status::Running)
    }

    fn set_state(&mut self, number: u32, state: VersionState) {
        if let Some(v) = self.versions.iter_mut().find(|v| v.0 == number) {
            v.1 = state;
        }
    }

    fn move_pointer(&mut self, to: u32) {
        let from = self.primary();
        if self.left.contains(&to) {
            self.moved_back = true;
        }
        self.left.push(from);
        for v in &mut self.versions {
            v.2 = v.0 == to;
        }
    }
}

impl Model for SagaModel {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        vec![World {
            versions: vec![(1, VersionState::Active, true)],
            sagas: Vec::new(),
            up: true,
            inflight: Vec::new(),
            tracked: vec![1],
            left: Vec::new(),
            moved_back: false,
            failures_left: 1,
            crashes_left: 1,
            wraps_left: 2,
            requests_left: 2,
        }]
    }

    fn actions(&self, s: &World, actions: &mut Vec<Action>) {
        if !s.up {
            actions.push(Action::Restart);
            return;
        }
        if s.requests_left > 0 {
            actions.push(Action::RequestRotation);
        }
        if let Some(i) = s.running() {
            let (saga, from, _) = s.sagas[i];
            // drain_inflight completes only when nothing in flight reads the old version.
            if saga.step != Step::DrainInflight || !s.inflight.contains(&from) {
                actions.push(Action::RunStep);
            }
            if s.failures_left > 0 {
                actions.push(Action::FailStep);
            }
        }
        if s.crashes_left > 0 {
            actions.push(Action::Crash);
        }
        if s.wraps_left > 0 {
            actions.push(Action::BeginWrap);
        }
        for i in 0..s.inflight.len() {
            actions.push(Action::EndWrap(i));
        }
    }

    fn next_state(&self, s: &World, action: Action) -> Option<World> {
        let mut w = s.clone();
        match action {
            Action::RequestRotation => {
                w.requests_left -= 1;
                if saga::can_start(w.sagas.iter().map(|(saga, _, _)| saga)) {
                    let from = w.primary();
                    w.sagas.push((Saga::start(), from, None));
                }
            }
            Action::RunStep => {
                let i = w.running()?;
                let (saga, from, new) = w.sagas[i];
                let mut new = new;
                match saga.step {
                    Step::CreateVersion => {
                        let n = w.versions.len() as u32 + 1;
                        w.versions.push((n, VersionState::Pending, false));
                        new = Some(n);
                    }
                    Step::Stage | Step::DrainInflight | Step::Anchor => {}
                    Step::SwitchPointer => {
                        let n = new?;
                        w.set_state(n, VersionState::Active);
                        w.move_pointer(n);
                    }
                    Step::RewrapTracked => {
                        let n = new?;
                        for t in &mut w.tracked {
                            if *t == from {
                                *t = n;
                            }
                        }
                    }
                    Step::RetireOld => w.set_state(from, VersionState::Retired),
                }
                let (next, _) = saga.step_done(saga.step).ok()?;
                w.sagas[i] = (next, from, new);
            }
            Action::FailStep => {
                w.failures_left -= 1;
                let i = w.running()?;
                let (saga, from, new) = w.sagas[i];
                let (next, effect) = saga.step_failed(saga.step).ok()?;
                if effect == Effect::Compensate {
                    if let Some(n) = new {
                        w.set_state(n, VersionState::Destroyed);
                    }
                }
                w.sagas[i] = (next, from, new);
            }
            Action::Crash => {
                w.crashes_left -= 1;
                w.up = false;
                w.inflight.clear();
            }
            Action::Restart => w.up = true,
            Action::BeginWrap => {
                w.wraps_left -= 1;
                let primary = w.primary();
                w.inflight.push(primary);
            }
            Action::EndWrap(i) => {
                let version = w.inflight.remove(i);
                w.tracked.push(version);
            }
        }
        Some(w)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("all five invariants hold", |_, w: &World| {
                let sagas: Vec<(Saga, u32)> =
                    w.sagas.iter().map(|(s, from, _)| (*s, *from)).collect();
                let view = KeyView {
                    versions: &w.versions,
                    tracked: &w.tracked,
                    sagas: &sagas,
                    pointer_moved_back: w.moved_back,
                };
                saga::check(&view).is_empty()
            }),
            Property::sometimes("a rotation completes", |_, w: &World| {
                w.sagas
                    .iter()
                    .any(|(s, _, _)| s.status == Status::Completed)
            }),
            Property::sometimes("a rotation rolls back", |_, w: &World| {
                w.sagas
                    .iter()
                    .any(|(s, _, _)| s.status == Status::RolledBack)
            }),
            Property::sometimes(
                "a second request is refused while one runs",
                |_, w: &World| {
                    w.requests_left == 0
                        && w.sagas.len() == 1
                        && w.sagas[0].0.status == Status::Running
                },
            ),
        ]
    }
}

#[test]
fn the_saga_keeps_its_invariants_in_every_interleaving() {
    let checker = SagaModel.checker().spawn_bfs().join();
    checker.assert_properties();
    println!(
        "rotation saga model: {} states explored ({} unique)",
        checker.state_count(),
        checker.unique_state_count()
    );
    assert!(checker.unique_state_count() > 1_000);
}

/// The checker is not blind: without `drain_inflight`'s wait, a wrap that read the old
/// version before the switch registers its data key after the rewrap, and the old
/// version's retirement orphans it.
#[test]
fn dropping_the_drain_step_is_caught() {
    struct NoDrain;
    impl Model for NoDrain {
        type State = World;
        type Action = Action;
        fn init_states(&self) -> Vec<World> {
            SagaModel.init_states()
        }
        fn actions(&self, s: &World, actions: &mut Vec<Action>) {
            SagaModel.actions(s, actions);
            if let Some(i) = s.running() {
                if s.sagas[i].0.step == Step::DrainInflight && !actions.contains(&Action::RunStep) {
                    actions.push(Action::RunStep);
                }
            }
        }
        fn next_state(&self, s: &World, a: Action) -> Option<World> {
            SagaModel.next_state(s, a)
        }
        fn properties(&self) -> Vec<Property<Self>> {
            vec![Property::always("no orphans", |_, w: &World| {
                let sagas: Vec<(Saga, u32)> =
                    w.sagas.iter().map(|(s, from, _)| (*s, *from)).collect();
                let view = KeyView {
                    versions: &w.versions,
                    tracked: &w.tracked,
                    sagas: &sagas,
                    pointer_moved_back: w.moved_back,
                };
                saga::check(&view).is_empty()
            })]
        }
    }
    let checker = NoDrain.checker().spawn_bfs().join();
    assert!(
        checker.discovery("no orphans").is_some(),
        "the model checker must find the orphan"
    );
}
