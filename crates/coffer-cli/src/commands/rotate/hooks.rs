//! Seed 001's hook commands (`ALFRED_ROTATION_{STAGE,VALIDATE,ROLLBACK}_CMD`): the
//! profile's `stage_cmd`, `validate_cmd` and `rollback_cmd`, run at their point of a
//! rotation — the application's side of it, which Coffer cannot do itself.
//!
//! - `stage_cmd`: by `stage` and `all`, once the new version is staged and before the
//!   switch. Failing, it stops the run before the switch.
//! - `validate_cmd`: by `validate` (and so `all`), after the smoke test. Failing, it
//!   fails the run; in `all` the old version is then not retired.
//! - `rollback_cmd`: by `rollback`, once the server rolled the rotation back.
//!
//! Each runs under `sh -c` with `hook_timeout` (then it and its process group are
//! killed), without the token's variable, with `KMS_KEY_ID`, `KMS_KEY_VERSION`,
//! `NEXT_KMS_KEY_VERSION`, `COFFER_ROTATION_ID` and `COFFER_ENV` set as far as the run
//! knows them. The evidence keeps its exit status, duration and output (bounded);
//! unless `--show-commands`, the command line is `<redacted>` and the output has its
//! credentials masked (`scrub.rs`). A dry run runs none and only prints it.

use serde_json::{Value, json};

use coffer_api::rotation::RotationView;

use super::Verdict;
use super::health::{self, Moment};
use super::hook_process::{self, Ran, Spec};
use super::scrub::scrub;
use super::session::{Outcome, REDACTED, Session};
use crate::commands::print_line;

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// After staging, before the switch.
    Stage,
    /// After the smoke test.
    Validate,
    /// After a rollback.
    Rollback,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Self::Stage => "stage",
            Self::Validate => "validate",
            Self::Rollback => "rollback",
        }
    }
}

/// True when the profile names `hook`.
pub fn configured(s: &Session, hook: Hook) -> bool {
    command(s, hook).is_some()
}

fn command(s: &Session, hook: Hook) -> Option<&str> {
    let runbook = s.runbook();
    match hook {
        Hook::Stage => runbook.stage_cmd.as_deref(),
        Hook::Validate => runbook.validate_cmd.as_deref(),
        Hook::Rollback => runbook.rollback_cmd.as_deref(),
    }
}

/// Runs `hook` if the profile names it (`Passed` when it names none), records it, and
/// answers whether it succeeded.
pub async fn run(s: &mut Session, hook: Hook) -> anyhow::Result<Verdict> {
    let Some(line) = command(s, hook).map(str::to_owned) else {
        return Ok(Verdict::Passed);
    };
    let step = format!("hook.{}", hook.name());
    let shown = if s.shows_commands() {
        line.clone()
    } else {
        REDACTED.to_owned()
    };
    let timeout = s.runbook().hook_timeout;
    let mut summary = json!({
        "command": shown,
        "timeout_secs": timeout.as_secs(),
        "env": s.hook_env(),
    });
    if s.dry_run() {
        print_line(&format!(
            "[dry-run] {step}: sh -c {shown}  (not executed: dry run)"
        ))?;
        s.record(&step, Outcome::Planned, summary, None)?;
        return Ok(Verdict::Planned);
    }
    eprintln!("{step}: sh -c {shown}");
    let mut remove = vec!["COFFER_TOKEN".to_owned()];
    remove.extend(s.runbook().token_env.clone());
    let spec = Spec {
        command: line,
        env: s
            .hook_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        remove,
        timeout,
    };
    let ran = match tokio::task::spawn_blocking(move || hook_process::run(&spec)).await? {
        Ok(ran) => ran,
        Err(error) => {
            let message = format!("{step} could not start: {error}");
            eprintln!("  {message}");
            s.record(&step, Outcome::Failed, summary, Some(message))?;
            return Ok(Verdict::Failed);
        }
    };
    let ended = ending(&ran, timeout);
    let disclose = s.shows_commands();
    let shown_output = |text: &str| {
        if disclose {
            text.to_owned()
        } else {
            scrub(text)
        }
    };
    let (stdout, stderr) = (
        shown_output(&ran.stdout.text),
        shown_output(&ran.stderr.text),
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        for output_line in text.lines() {
            eprintln!("  {step} {name}| {output_line}");
        }
    }
    eprintln!("  {step}: {ended} after {} ms", ran.duration.as_millis());
    extend(
        &mut summary,
        json!({
            "exit_code": ran.code(),
            "signal": ran.signal(),
            "timed_out": ran.timed_out,
            "duration_ms": ran.duration.as_millis(),
            "stdout": stdout,
            "stdout_truncated": ran.stdout.truncated,
            "stderr": stderr,
            "stderr_truncated": ran.stderr.truncated,
        }),
    );
    if ran.success() {
        s.record(&step, Outcome::Ok, summary, None)?;
        Ok(Verdict::Passed)
    } else {
        s.record(
            &step,
            Outcome::Failed,
            summary,
            Some(format!("{step} {ended}")),
        )?;
        Ok(Verdict::Failed)
    }
}

/// The rollback hook, then the health checks: both after a rollback.
pub async fn after_rollback(s: &mut Session) -> anyhow::Result<Verdict> {
    let hook = run(s, Hook::Rollback).await?;
    let healthy = health::check(s, Moment::AfterRollback).await?;
    if s.dry_run() {
        return Ok(Verdict::Planned);
    }
    if !health::report(Moment::AfterRollback, &healthy) || hook == Verdict::Failed {
        eprintln!("the rotation was rolled back, but the rollback hook or a health check failed");
        return Ok(Verdict::Failed);
    }
    Ok(Verdict::Passed)
}

/// What the hooks' environment says of a rotation.
pub fn learn(s: &mut Session, view: &RotationView) {
    s.learn("KMS_KEY_ID", &view.key_id);
    s.learn("KMS_KEY_VERSION", view.from_version);
    if let Some(to) = view.to_version {
        s.learn("NEXT_KMS_KEY_VERSION", to);
    }
    s.learn("COFFER_ROTATION_ID", &view.rotation_id);
}

/// `exited 0`, `exited 3`, `killed at its timeout (5s)`, `killed by signal 15`.
fn ending(ran: &Ran, timeout: std::time::Duration) -> String {
    if ran.timed_out {
        return format!(
            "killed at its timeout ({})",
            coffer_core::HumanDuration::new(timeout)
        );
    }
    match (ran.code(), ran.signal()) {
        (Some(code), _) => format!("exited {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "ended without a status".to_owned(),
    }
}

fn extend(summary: &mut Value, more: Value) {
    if let (Value::Object(summary), Value::Object(more)) = (summary, more) {
        summary.extend(more);
    }
}
