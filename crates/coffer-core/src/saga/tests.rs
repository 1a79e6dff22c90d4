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
    assert!(saga.switched);
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
        let (after, effect) = saga.step_failed(failing).unwrap();
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
