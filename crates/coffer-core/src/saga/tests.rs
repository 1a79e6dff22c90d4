use super::*;

#[test]
fn a_saga_runs_every_step_in_order() {
    let mut saga = Saga::start();
    for step in Step::ALL {
        let (next, effect) = saga.step_done(step).unwrap();
        assert_eq!(effect, step.next().map_or(Effect::Done, Effect::Run));
        saga = next;
    }
    assert_eq!(saga.status, Status::Completed);
    assert!(saga.switched());
    assert_eq!(
        saga.step_done(Step::Anchor),
        Err(SagaError::Finished("completed"))
    );
}

#[test]
fn failures_before_the_switch_compensate_and_after_it_wait_for_resume() {
    for failing in Step::ALL {
        let mut saga = Saga::start();
        for step in Step::ALL.iter().copied().take_while(|s| *s != failing) {
            saga = saga.step_done(step).unwrap().0;
        }
        assert_eq!(saga.switched(), failing > Step::SwitchPointer, "{failing}");
        let (after, effect) = saga.step_failed(failing).unwrap();
        assert_eq!(after.switched(), saga.switched(), "{failing}");
        if failing <= Step::SwitchPointer {
            assert_eq!(
                (after.status, effect),
                (Status::RolledBack, Effect::Compensate),
                "{failing}"
            );
        } else {
            assert_eq!(
                (after.status, effect),
                (Status::Running, Effect::AwaitResume(failing)),
                "{failing}"
            );
            assert_eq!(
                after.rollback(),
                Err(SagaError::ForwardOnly(Step::SwitchPointer))
            );
            assert_eq!(after.resume().unwrap().1, Effect::Run(failing));
        }
    }
}

#[test]
fn steps_out_of_order_are_refused() {
    let saga = Saga::start();
    assert_eq!(
        saga.step_done(Step::Stage),
        Err(SagaError::OutOfOrder {
            due: Step::CreateVersion,
            got: Step::Stage
        })
    );
    assert!(can_start([&Saga {
        status: Status::Completed,
        ..saga
    }]));
    assert!(!can_start([&saga]));
}

#[test]
fn names_round_trip() {
    for step in Step::ALL {
        assert_eq!(step.as_str().parse::<Step>().unwrap(), step);
    }
    for status in [Status::Running, Status::Completed, Status::RolledBack] {
        assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
    }
}

mod record_check {
    use super::super::{RecordView, check_record};
    use super::*;
    use crate::lifecycle::VersionState::{self, Active, Destroyed, Pending, Retired, Retiring};

    fn at(step: Step, status: Status) -> Saga {
        Saga {
            step,
            status,
            failures: 0,
        }
    }

    fn record(saga: Saga) -> RecordView {
        RecordView {
            saga,
            from: 1,
            to: Some(2),
        }
    }

    fn broken(saga: Saga, versions: &[(u32, VersionState, bool)]) -> usize {
        check_record(&record(saga), versions).len()
    }

    #[test]
    fn a_record_that_agrees_with_the_key_passes() {
        let done = at(Step::Anchor, Status::Completed);
        assert_eq!(broken(done, &[(1, Retired, false), (2, Active, true)]), 0);
        assert_eq!(broken(done, &[(1, Retiring, false), (2, Active, true)]), 0);
        let staged = at(Step::SwitchPointer, Status::Running);
        assert_eq!(broken(staged, &[(1, Active, true), (2, Pending, false)]), 0);
        let rolled = at(Step::SwitchPointer, Status::RolledBack);
        assert_eq!(
            broken(rolled, &[(1, Active, true), (2, Destroyed, false)]),
            0
        );
    }

    #[test]
    fn a_record_that_contradicts_the_key_is_a_violation() {
        // Rolled back, but the new version is primary.
        let rolled = at(Step::SwitchPointer, Status::RolledBack);
        let violations = check_record(&record(rolled), &[(1, Active, false), (2, Active, true)]);
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(
            violations
                .iter()
                .all(|v| v.invariant == Invariant::RecordMatchesKey)
        );
        // Running before the switch, yet the pointer moved.
        let staged = at(Step::SwitchPointer, Status::Running);
        assert_eq!(broken(staged, &[(1, Active, false), (2, Active, true)]), 1);
        // Past the switch, yet the old version is primary.
        let draining = at(Step::DrainInflight, Status::Running);
        assert_eq!(
            broken(draining, &[(1, Active, true), (2, Active, false)]),
            1
        );
        // Completed while the old version still encrypts.
        let done = at(Step::Anchor, Status::Completed);
        assert_eq!(broken(done, &[(1, Active, false), (2, Active, true)]), 1);
    }
}
