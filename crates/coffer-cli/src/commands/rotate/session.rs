//! One `coffer rotate` run: every request goes through [`Session::run`], which prints
//! it (redacted unless `--show-commands`), records it in the evidence log, and — only
//! when this is not a dry run — performs it.
//!
//! A dry run performs nothing because of how Rust futures work: the call is handed to
//! `run` as a future that has not been polled, and an `async fn` does nothing (no
//! connection, no DNS lookup) until it is. In a dry run the future is dropped unpolled.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use coffer_client::{Client, ClientError};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::evidence::Evidence;
use super::profile::{Environment, Runbook};
use crate::commands::print_line;

/// The stand-in for anything secret in printed commands and evidence.
pub const REDACTED: &str = "<redacted>";

/// Whether requests are performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Perform them.
    Execute,
    /// Print and record them only; no network call at all.
    DryRun,
}

/// How much of a request is shown in printed commands and evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// Method and URL; bodies are `<redacted>`.
    Redacted,
    /// Bodies too (`--show-commands`). Tokens are never shown, and a body that would
    /// hold plaintext is built with a description in its place (see `smoke.rs`).
    Bodies,
}

/// A request as it will be (or would have been) sent.
pub struct Planned {
    method: &'static str,
    url: String,
    body: Option<Value>,
    /// Sent with the bearer token (the native API; the operations port gets none).
    authorized: bool,
    /// GET: safe to describe as skipped rather than as a change withheld.
    read_only: bool,
}

/// What became of a step.
pub enum Step<T> {
    /// Dry run: described, not performed.
    Planned,
    /// Performed; the answer.
    Done(T),
    /// Performed; it failed (already printed and recorded).
    Failed(ClientError),
}

/// A step's outcome in the evidence log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded / the check passed.
    Ok,
    /// It failed / the check failed.
    Failed,
    /// Dry run: described, not performed.
    Planned,
    /// The check cannot be made (say why in the summary).
    Unknown,
    /// Refused before anything ran.
    Refused,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Planned => "planned",
            Self::Unknown => "unknown",
            Self::Refused => "refused",
        }
    }
}

/// One run of one `coffer rotate` command. Built by `rotate.rs`, which owns the
/// flags.
pub struct Session {
    pub(super) client: Client,
    pub(super) ops: Option<String>,
    pub(super) env: Option<Environment>,
    pub(super) mode: Mode,
    pub(super) disclosure: Disclosure,
    pub(super) command: &'static str,
    pub(super) evidence: Option<Evidence>,
    pub(super) json: bool,
    /// The flags that aim another `coffer rotate` command at the same server
    /// (` --env production --confirm-production`, ` --addr URL`), for the commands
    /// this one tells the operator to run next.
    pub(super) reentry: String,
    /// How long to wait for a 202'd rotation to settle (`--wait-timeout`).
    pub(super) wait: std::time::Duration,
    /// The profile's health checks and hooks.
    pub(super) runbook: Runbook,
    /// What the run learned for the hooks' environment (`KMS_KEY_ID`, …).
    pub(super) hook_env: BTreeMap<&'static str, String>,
}

impl Session {
    /// The client, for building the calls handed to [`Session::run`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The operations port's base URL, when known.
    pub fn ops(&self) -> Option<&str> {
        self.ops.as_deref()
    }

    /// True in a dry run.
    pub fn dry_run(&self) -> bool {
        self.mode == Mode::DryRun
    }

    /// The exact command line for `coffer rotate ARGS` against the same server.
    pub fn command_line(&self, args: &str) -> String {
        format!("coffer rotate {args}{}", self.reentry)
    }

    /// How long to wait for a rotation the server runs in the background.
    pub fn wait(&self) -> std::time::Duration {
        self.wait
    }

    /// True with `--json`.
    pub fn json(&self) -> bool {
        self.json
    }

    /// True with `--show-commands`.
    pub fn shows_commands(&self) -> bool {
        self.disclosure == Disclosure::Bodies
    }

    /// The profile's health checks and hooks.
    pub fn runbook(&self) -> &Runbook {
        &self.runbook
    }

    /// Notes `value` for the hooks' environment variable `name`.
    pub fn learn(&mut self, name: &'static str, value: impl ToString) {
        self.hook_env.insert(name, value.to_string());
    }

    /// The hooks' environment as learned so far.
    pub fn hook_env(&self) -> BTreeMap<&'static str, String> {
        self.hook_env.clone()
    }

    /// `GET url` on another origin (a health check), without the token. `shown` is
    /// the URL as printed and recorded.
    pub fn probe_get(&self, shown: &str) -> Planned {
        Planned {
            method: "GET",
            url: shown.to_owned(),
            body: None,
            authorized: false,
            read_only: true,
        }
    }

    /// `GET path` on the native API.
    pub fn get(&self, path: &str) -> Planned {
        Planned {
            method: "GET",
            url: format!("{}{path}", self.client.base_url()),
            body: None,
            authorized: true,
            read_only: true,
        }
    }

    /// `POST path` on the native API, with `body` (`None`: no body).
    pub fn post(&self, path: &str, body: Option<Value>) -> Planned {
        Planned {
            method: "POST",
            url: format!("{}{path}", self.client.base_url()),
            body,
            authorized: true,
            read_only: false,
        }
    }

    /// `GET path` on the operations port (no token).
    pub fn ops_get(&self, ops: &str, path: &str) -> Planned {
        Planned {
            method: "GET",
            url: format!("{}{path}", ops.trim_end_matches('/')),
            body: None,
            authorized: false,
            read_only: true,
        }
    }

    /// Prints `planned`, records it, and performs `call` unless this is a dry run.
    /// `summary` picks what the evidence keeps of a success (never plaintext).
    ///
    /// The outer error is the evidence log's; a failed call is [`Step::Failed`].
    pub async fn run<T>(
        &mut self,
        step: &str,
        planned: &Planned,
        call: impl Future<Output = Result<T, ClientError>>,
        summary: impl FnOnce(&T) -> Value,
    ) -> anyhow::Result<Step<T>> {
        let line = self.describe(step, planned);
        if self.dry_run() {
            let note = if planned.read_only {
                "read-only; skipped in dry run"
            } else {
                "not executed: dry run"
            };
            print_line(&format!("[dry-run] {line}  ({note})"))?;
            drop(call);
            self.write(step, Some(planned), Outcome::Planned, Value::Null, None)?;
            return Ok(Step::Planned);
        }
        eprintln!("{line}");
        match call.await {
            Ok(answer) => {
                self.write(step, Some(planned), Outcome::Ok, summary(&answer), None)?;
                Ok(Step::Done(answer))
            }
            Err(error) => {
                let text = error.to_string();
                eprintln!("  {step} failed: {text}");
                self.write(
                    step,
                    Some(planned),
                    Outcome::Failed,
                    Value::Null,
                    Some(text),
                )?;
                Ok(Step::Failed(error))
            }
        }
    }

    /// Records a step that is not a request (a comparison, a check that cannot be
    /// made).
    pub fn record(
        &mut self,
        step: &str,
        outcome: Outcome,
        summary: Value,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        self.write(step, None, outcome, summary, error)
    }

    /// Records a request performed outside [`Session::run`], whose outcome depends on
    /// its answer rather than on its success (a health check answering 503).
    pub fn record_request(
        &mut self,
        step: &str,
        planned: &Planned,
        outcome: Outcome,
        response: Value,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        self.write(step, Some(planned), outcome, response, error)
    }

    /// Records the run's end and writes the manifest; answers the manifest's path.
    pub fn close(
        mut self,
        outcome: Outcome,
        error: Option<String>,
    ) -> anyhow::Result<Option<PathBuf>> {
        self.write("end", None, outcome, Value::Null, error)?;
        self.evidence.take().map(Evidence::seal).transpose()
    }

    fn describe(&self, step: &str, planned: &Planned) -> String {
        let mut line = format!("{step}: {} {}", planned.method, planned.url);
        if let Some(body) = self.shown_body(planned) {
            line.push_str("  body: ");
            line.push_str(&match body {
                Value::String(text) => text,
                other => other.to_string(),
            });
        }
        line
    }

    fn shown_body(&self, planned: &Planned) -> Option<Value> {
        let body = planned.body.as_ref()?;
        Some(match self.disclosure {
            Disclosure::Redacted => Value::String(REDACTED.into()),
            Disclosure::Bodies => body.clone(),
        })
    }

    fn write(
        &mut self,
        step: &str,
        planned: Option<&Planned>,
        outcome: Outcome,
        response: Value,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        if self.evidence.is_none() {
            return Ok(());
        }
        let request = planned.map(|p| {
            let mut request = json!({ "method": p.method, "url": p.url });
            if let Some(body) = self.shown_body(p) {
                request["body"] = body;
            }
            if p.authorized {
                request["authorization"] = Value::String(format!("Bearer {REDACTED}"));
            }
            request
        });
        let line = evidence_line(EvidenceLine {
            env: self.env,
            addr: self.client.base_url(),
            command: self.command,
            step,
            dry_run: self.dry_run(),
            request,
            response,
            outcome,
            error,
        });
        match &mut self.evidence {
            Some(evidence) => evidence.append(&line),
            None => Ok(()),
        }
    }
}

/// The fields of one evidence line.
pub struct EvidenceLine<'a> {
    pub env: Option<Environment>,
    pub addr: &'a str,
    pub command: &'a str,
    pub step: &'a str,
    pub dry_run: bool,
    pub request: Option<Value>,
    pub response: Value,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// One evidence line as JSON.
pub fn evidence_line(line: EvidenceLine<'_>) -> Value {
    json!({
        "time": now_rfc3339(),
        "env": line.env.map(Environment::name),
        "addr": line.addr,
        "command": line.command,
        "step": line.step,
        "dry_run": line.dry_run,
        "request": line.request,
        "response": line.response,
        "outcome": line.outcome.as_str(),
        "error": line.error,
    })
}

/// Now, RFC 3339, UTC.
fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    now.format(&Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
