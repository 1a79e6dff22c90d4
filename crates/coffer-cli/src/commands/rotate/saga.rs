//! `stage`, `all`, `resume`, `rollback`, `status`, `verify` and `list`: driving the
//! saga.
//!
//! The server answers a start or a resume with 202 and runs the saga in its rotation
//! worker, so the commands that move a saga then poll it (`wait`) until it completes,
//! rolls back, or stops where it was asked to (or fails), within `--wait-timeout`.
//!
//! Forward-only past the switch (seed 000): once the key's pointer switched, the only
//! way out of a failure is `resume`. The server enforces it; the commands here make
//! sure the operator is told which command to run next, with the flags that reach the
//! same server.

use std::path::Path;

use anyhow::Context as _;
use coffer_api::paths;
use coffer_api::rotation::{
    ListRotationsQuery, ResumeRotationRequest, RotationList, RotationView, StartRotationRequest,
};
use coffer_client::{ClientError, Waited, request_paths};
use serde_json::{Value, json};

use super::health;
use super::hooks::{self, Hook};
use super::session::{Outcome, Session, Step};
use super::{Verdict, VersionChecks, checks, smoke, versions};
use crate::commands::{print_json, print_line, table};

/// The saga's steps in order (`RotationView::step` names the next one to run).
pub const STEPS: [&str; 7] = [
    "create_version",
    "stage",
    "switch_pointer",
    "drain_inflight",
    "rewrap_tracked",
    "retire_old",
    "anchor",
];

/// Starts a rotation up to, not past, the switch, then runs the stage hook. Stdout:
/// the rotation id.
pub async fn stage(
    s: &mut Session,
    key: &str,
    checks: VersionChecks,
    untracked: checks::Untracked,
    allowed_measurements: Option<Vec<String>>,
) -> anyhow::Result<Verdict> {
    s.learn("KMS_KEY_ID", key);
    if !health::before_change(s).await? {
        return Ok(Verdict::Failed);
    }
    let request = StartRotationRequest {
        key_id: key.to_owned(),
        until: Some("stage".into()),
        expect_version: checks.expect_version,
        retire_untracked: untracked == checks::Untracked::Retire,
        allowed_measurements,
    };
    let view = match start(s, "stage.start", &request).await? {
        Started::Planned => {
            hooks::run(s, Hook::Stage).await?;
            return Ok(Verdict::Planned);
        }
        Started::Refused => return Ok(Verdict::Failed),
        Started::Running(view) => *view,
    };
    if s.json() {
        print_json(&view)?;
    } else {
        print_line(&view.rotation_id)?;
        eprintln!("{}", summary(&view));
    }
    if !reached(&view, Some("stage")) {
        guide_after_failure(s, &view);
        return Ok(Verdict::Failed);
    }
    if versions::staged_is(s, checks.next_version, &view)? == Verdict::Failed
        || hooks::run(s, Hook::Stage).await? == Verdict::Failed
    {
        guide_after_failure(s, &view);
        return Ok(Verdict::Failed);
    }
    let id = &view.rotation_id;
    eprintln!(
        "staged: the new version exists; the pointer has not switched.\n\
         next, to switch and finish:  {}\n\
         or, to undo:                 {}",
        s.command_line(&format!("resume {id}")),
        s.command_line(&format!("rollback {id}")),
    );
    Ok(Verdict::Passed)
}

/// Preflight, a rotation through every step, then validate.
pub async fn all(
    s: &mut Session,
    key: &str,
    corpus: Option<&Path>,
    checks: VersionChecks,
    untracked: checks::Untracked,
    allowed_measurements: Option<Vec<String>>,
) -> anyhow::Result<Verdict> {
    s.learn("KMS_KEY_ID", key);
    if checks::preflight(s, key, untracked).await? == Verdict::Failed {
        eprintln!("preflight failed: no rotation was started");
        return Ok(Verdict::Failed);
    }
    // Seed 001's order: stage (and the stage hook), switch, validate while the old
    // version still decrypts (so a corpus can be dual-unwrapped with old and new),
    // then the rest.
    let stage_hook = hooks::configured(s, Hook::Stage);
    let until = if stage_hook {
        "stage"
    } else {
        "switch_pointer"
    };
    let request = StartRotationRequest {
        key_id: key.to_owned(),
        until: Some(until.to_owned()),
        expect_version: checks.expect_version,
        retire_untracked: untracked == checks::Untracked::Retire,
        allowed_measurements,
    };
    let rotation = match start(s, "rotation.start", &request).await? {
        Started::Planned => None,
        Started::Refused => return Ok(Verdict::Failed),
        Started::Running(view) => Some(*view),
    };
    if let Some(view) = &rotation {
        print_line(&summary(view))?;
        if !reached(view, Some(until)) {
            guide_after_failure(s, view);
            return Ok(Verdict::Failed);
        }
    }
    if stage_hook {
        if hooks::run(s, Hook::Stage).await? == Verdict::Failed {
            rotation
                .iter()
                .for_each(|view| guide_after_failure(s, view));
            return Ok(Verdict::Failed);
        }
        let id = rotation.as_ref().map_or("ROTATION_ID", |v| &v.rotation_id);
        if resume(s, id, Some("switch_pointer".to_owned())).await? == Verdict::Failed {
            return Ok(Verdict::Failed);
        }
    }
    if let Some(view) = &rotation
        && versions::primary_is(s, key, checks.next_version, &view.rotation_id).await?
            == Verdict::Failed
    {
        return Ok(Verdict::Failed);
    }
    let verdict = smoke::validate(s, key, corpus).await?;
    let Some(view) = rotation else {
        // Dry run: plan the remaining call too (the id is only known once it runs).
        resume(s, "ROTATION_ID", None).await?;
        return Ok(verdict);
    };
    if verdict == Verdict::Failed {
        eprintln!(
            "validation failed after the switch (rotation {}); the old version still decrypts. \
             Investigate, then finish it with:\n  {}",
            view.rotation_id,
            s.command_line(&format!("resume {}", view.rotation_id)),
        );
        return Ok(Verdict::Failed);
    }
    resume(s, &view.rotation_id, None).await
}

/// Runs a rotation on from its next step.
pub async fn resume(s: &mut Session, id: &str, until: Option<String>) -> anyhow::Result<Verdict> {
    let path = request_paths::rotation_action(id, "resume")?;
    let request = ResumeRotationRequest { until };
    let planned = s.post(&path, Some(serde_json::to_value(&request)?));
    let client = s.client().clone();
    let call = client.resume_rotation(id, &request);
    let view = match s.run("resume", &planned, call, rotation_evidence).await? {
        Step::Planned => return Ok(Verdict::Planned),
        Step::Failed(error) => return Err(error.into()),
        Step::Done(view) => view,
    };
    let Some(view) = wait(s, &view.rotation_id).await? else {
        return Ok(Verdict::Failed);
    };
    show(s, &view)?;
    if reached(&view, request.until.as_deref()) {
        Ok(Verdict::Passed)
    } else {
        guide_after_failure(s, &view);
        Ok(Verdict::Failed)
    }
}

/// Compensates a rotation before the switch; after it, says to resume.
pub async fn rollback(s: &mut Session, id: &str) -> anyhow::Result<Verdict> {
    let planned = s.post(&request_paths::rotation_action(id, "rollback")?, None);
    let client = s.client().clone();
    let call = client.rollback_rotation(id);
    let view = match s.run("rollback", &planned, call, rotation_evidence).await? {
        Step::Planned => return hooks::after_rollback(s).await,
        Step::Failed(ClientError::Api {
            status: 409,
            message,
            ..
        }) => {
            if message.contains("resume") {
                eprintln!(
                    "rollback refused by the server: {message}\n\
                     Past the switch a rotation only goes forward: do not switch back. \
                     Resume it:\n  {}",
                    s.command_line(&format!("resume {id}"))
                );
            } else {
                // Completed or already rolled back: there is nothing to resume either.
                eprintln!("rollback refused by the server: {message}");
            }
            return Ok(Verdict::Failed);
        }
        Step::Failed(error) => return Err(error.into()),
        Step::Done(view) => view,
    };
    show(s, &view)?;
    if view.status != "rolled-back" {
        eprintln!("the rotation is {}, not rolled-back", view.status);
        return Ok(Verdict::Failed);
    }
    hooks::learn(s, &view);
    hooks::after_rollback(s).await
}

/// Shows a rotation.
pub async fn status(s: &mut Session, id: &str, watch: bool) -> anyhow::Result<Verdict> {
    let planned = s.get(&request_paths::rotation(id)?);
    let client = s.client().clone();
    match s
        .run("status", &planned, client.rotation(id), rotation_evidence)
        .await?
    {
        Step::Planned => Ok(Verdict::Planned),
        Step::Failed(error) => Err(error.into()),
        Step::Done(view) if watch => {
            let last = super::watch::watch(s, view).await?;
            show(s, &last)?;
            Ok(Verdict::Passed)
        }
        Step::Done(view) => {
            show(s, &view)?;
            Ok(Verdict::Passed)
        }
    }
}

/// What became of a start.
enum Started {
    /// Dry run.
    Planned,
    /// `--expect-version` did not hold (reported and recorded as a failed check).
    Refused,
    /// Started, and settled where it was asked to stop (or failed).
    Running(Box<RotationView>),
}

/// `POST ROTATIONS`, then waits for the rotation to settle.
async fn start(
    s: &mut Session,
    step: &str,
    request: &StartRotationRequest,
) -> anyhow::Result<Started> {
    let planned = s.post(paths::ROTATIONS, Some(serde_json::to_value(request)?));
    if request.retire_untracked && !s.dry_run() {
        // The operator's choice is evidence in itself, whatever the request body shows.
        s.record(
            "rotation.retire-untracked",
            Outcome::Ok,
            json!({
                "key_id": request.key_id,
                "detail": "--retire-untracked: recent untracked use of the primary accepted; \
                           the old version stays retiring (decrypt-only) until quiet",
            }),
            None,
        )?;
    }
    let client = s.client().clone();
    let call = client.start_rotation(request);
    let view = match s.run(step, &planned, call, rotation_evidence).await? {
        Step::Planned => return Ok(Started::Planned),
        Step::Failed(error) if versions::expected_refused(s, request.expect_version, &error)? => {
            return Ok(Started::Refused);
        }
        Step::Failed(error) => return Err(error).context("the rotation did not start"),
        Step::Done(view) => view,
    };
    versions::expected_held(s, request.expect_version, &view)?;
    match wait(s, &view.rotation_id).await? {
        Some(view) => {
            hooks::learn(s, &view);
            Ok(Started::Running(Box::new(view)))
        }
        None => anyhow::bail!(
            "rotation {} did not settle within --wait-timeout",
            view.rotation_id
        ),
    }
}

/// Polls a rotation the server accepted until it settles, printing each step it
/// reaches to stderr. `None` (after saying what to run next) when `--wait-timeout`
/// passed first: the server goes on running it regardless.
async fn wait(s: &mut Session, id: &str) -> anyhow::Result<Option<RotationView>> {
    let planned = s.get(&request_paths::rotation(id)?);
    let client = s.client().clone();
    let progress = |view: &RotationView| {
        if view.status == "running" && view.held.is_none() {
            eprintln!("rotation {}: running step {}", view.rotation_id, view.step);
        }
    };
    let call = client.wait_rotation(id, s.wait(), progress);
    let evidence = |waited: &Waited| rotation_evidence(waited.view());
    match s.run("wait", &planned, call, evidence).await? {
        // Unreachable after a performed start; a dry run stops before.
        Step::Planned => Ok(None),
        Step::Failed(error) => Err(error).context("following the rotation failed"),
        Step::Done(Waited::Settled(view)) => Ok(Some(view)),
        Step::Done(Waited::StillRunning(view)) => {
            eprintln!(
                "rotation {id} is still running (next step: {}) after {}; the server \
                 goes on with it. Follow it with:\n  {}",
                view.step,
                coffer_core::HumanDuration::new(s.wait()),
                s.command_line(&format!("status {id}")),
            );
            Ok(None)
        }
    }
}

/// The tenant's rotations, newest first: a table, or the API's answer with `--json`.
pub async fn list(
    s: &mut Session,
    key: Option<String>,
    status: Option<String>,
) -> anyhow::Result<Verdict> {
    // The printed request names the filters as given; the client encodes them.
    let filters: Vec<String> = [("key", &key), ("status", &status)]
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
        .collect();
    let path = if filters.is_empty() {
        paths::ROTATIONS.to_owned()
    } else {
        format!("{}?{}", paths::ROTATIONS, filters.join("&"))
    };
    let planned = s.get(&path);
    let query = ListRotationsQuery { key, status };
    let client = s.client().clone();
    let evidence = |list: &RotationList| json!({ "rotations": list.rotations.iter().map(rotation_evidence).collect::<Vec<_>>() });
    let list = match s
        .run("list", &planned, client.list_rotations(&query), evidence)
        .await?
    {
        Step::Planned => return Ok(Verdict::Planned),
        Step::Failed(error) => return Err(error.into()),
        Step::Done(list) => list,
    };
    if s.json() {
        print_json(&list)?;
        return Ok(Verdict::Passed);
    }
    let rows: Vec<Vec<String>> = list
        .rotations
        .iter()
        .map(|r| {
            vec![
                r.rotation_id.clone(),
                r.key_id.clone(),
                state_of(r),
                format!(
                    "v{} -> {}",
                    r.from_version,
                    r.to_version
                        .map_or_else(|| "-".to_owned(), |v| format!("v{v}"))
                ),
                r.started_at.clone(),
            ]
        })
        .collect();
    print_line(&table(
        &["ROTATION", "KEY", "STATUS", "VERSIONS", "STARTED"],
        &rows,
    ))?;
    Ok(Verdict::Passed)
}

/// `running (next step: X)`, `paused before X`, `failed at X`, or the final status.
fn state_of(view: &RotationView) -> String {
    use coffer_api::rotation::RotationHold;
    match (view.status.as_str(), view.held) {
        ("running", Some(RotationHold::Paused)) => format!("paused before {}", view.step),
        ("running", Some(RotationHold::Failed)) => format!("failed at {}", view.step),
        ("running", None) => format!("running (next step: {})", view.step),
        (status, _) => status.to_owned(),
    }
}

/// True when a run asked to stop after `until` (or to finish) got there.
fn reached(view: &RotationView, until: Option<&str>) -> bool {
    let position = |step: &str| STEPS.iter().position(|s| *s == step);
    match (view.status.as_str(), until) {
        ("completed", _) => true,
        ("running", Some(until)) => match (position(&view.step), position(until)) {
            (Some(next), Some(last)) => next > last,
            // A step this tool does not know: trust the absence of an error.
            _ => view.error.is_none(),
        },
        _ => false,
    }
}

/// What went wrong and the command that continues from here.
fn guide_after_failure(s: &Session, view: &RotationView) {
    let id = &view.rotation_id;
    let error = view.error.as_deref().unwrap_or("no error recorded");
    let resume = s.command_line(&format!("resume {id}"));
    match (view.status.as_str(), view.switched) {
        ("rolled-back", _) => eprintln!(
            "rotation {id} failed before the switch and was rolled back ({error}); \
             nothing to resume: fix the cause and start a new rotation"
        ),
        (_, true) => eprintln!(
            "rotation {id} stopped after the switch at step {} ({error}).\n\
             Do not switch back: past the switch it only goes forward. Resume it:\n  {resume}",
            view.step
        ),
        (_, false) => eprintln!(
            "rotation {id} stopped before the switch at step {} ({error}). Resume it:\n  \
             {resume}\nor undo it:\n  {}",
            view.step,
            s.command_line(&format!("rollback {id}"))
        ),
    }
}

fn show(s: &Session, view: &RotationView) -> anyhow::Result<()> {
    if s.json() {
        print_json(view)
    } else {
        print_line(&summary(view))
    }
}

/// The human form of a rotation.
pub fn summary(view: &RotationView) -> String {
    let status = state_of(view);
    let to = view
        .to_version
        .map_or_else(|| "(not created yet)".to_owned(), |v| format!("v{v}"));
    let mut text = format!(
        "rotation:  {}\nkey:       {}\nversions:  v{} -> {to}\nstatus:    {status}\n\
         switched:  {}\nfailures:  {}",
        view.rotation_id,
        view.key_id,
        view.from_version,
        if view.switched { "yes" } else { "no" },
        view.failures,
    );
    if let Some(error) = &view.error {
        text.push_str(&format!("\nerror:     {error}"));
    }
    if let (Some(list), Some(from)) = (&view.allowed_measurements, view.allow_list_from_policy) {
        text.push_str(&format!(
            "\nallow-list: {} at the switch (attestation policy v{from} -> v{})",
            if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(",")
            },
            from + 1
        ));
    }
    text.push_str(&format!(
        "\ntracked data keys still under v{}: {}",
        view.from_version, view.tracked_remaining
    ));
    if view.rewrap.is_some() {
        text.push_str(&format!(
            "\nrewrap:    {}",
            super::watch::progress_line(view)
        ));
    }
    text.push_str(&format!(
        "\nstarted:   {}\nupdated:   {}",
        view.started_at, view.updated_at
    ));
    text
}

/// What the evidence keeps of a rotation.
pub fn rotation_evidence(view: &RotationView) -> Value {
    json!({
        "rotation_id": view.rotation_id,
        "key_id": view.key_id,
        "step": view.step,
        "status": view.status,
        "switched": view.switched,
        "from_version": view.from_version,
        "to_version": view.to_version,
        "failures": view.failures,
        "error": view.error,
        "allowed_measurements": view.allowed_measurements,
        "allow_list_from_policy": view.allow_list_from_policy,
        "tracked_remaining": view.tracked_remaining,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::commands::rotate) fn view(status: &str, step: &str) -> RotationView {
        RotationView {
            rotation_id: "r".into(),
            key_id: "k".into(),
            from_version: 1,
            to_version: Some(2),
            step: step.into(),
            status: status.into(),
            switched: false,
            paused_after: None,
            held: None,
            failures: 0,
            error: None,
            allowed_measurements: None,
            allow_list_from_policy: None,
            tracked_remaining: 0,
            rewrap: None,
            started_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn a_run_reached_its_goal_only_past_its_until() {
        assert!(reached(&view("running", "switch_pointer"), Some("stage")));
        assert!(!reached(&view("running", "stage"), Some("stage")));
        assert!(!reached(&view("running", "retire_old"), None));
        assert!(reached(&view("completed", "anchor"), None));
        assert!(!reached(&view("rolled-back", "stage"), Some("stage")));
    }
}
