//! Seed 001's health checks: the URLs a profile names (`api_healthcheck_url`,
//! `enclave_healthcheck_url`), fetched before the change, after validation and after
//! a rollback. Each is one GET without the token, bounded by `healthcheck_timeout`;
//! the evidence keeps the status and the latency, never the body. A 2xx answer passes.
//!
//! The URL as printed and recorded hides its user information and query unless
//! `--show-commands`: either can carry a credential.

use coffer_client::Probe;
use serde_json::{Value, json};

use super::session::{Outcome, REDACTED, Session};

/// When in the run the checks are made: the step names say it (`health.before.api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Before the rotation starts (`preflight`, `stage`).
    Before,
    /// After `validate`'s checks.
    AfterValidation,
    /// After `rollback` rolled the rotation back.
    AfterRollback,
}

impl Moment {
    fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::AfterValidation => "after-validation",
            Self::AfterRollback => "after-rollback",
        }
    }
}

/// One check's result.
pub struct Checked {
    /// `api` or `enclave`.
    pub name: &'static str,
    /// `Ok`, `Failed`, or `Planned` in a dry run.
    pub outcome: Outcome,
    /// `HTTP 200 in 4 ms`, or why it failed.
    pub detail: String,
}

/// Fetches every health-check URL of the profile (none without one) and records each.
pub async fn check(s: &mut Session, moment: Moment) -> anyhow::Result<Vec<Checked>> {
    let urls = s.runbook().health.clone();
    let timeout = s.runbook().health_timeout;
    let mut results = Vec::with_capacity(urls.len());
    for (name, url) in urls {
        let shown = if s.shows_commands() {
            url.clone()
        } else {
            shown_url(&url)
        };
        let planned = s.probe_get(&shown);
        let client = s.client().clone();
        let step = format!("health.{}.{name}", moment.name());
        let call = client.probe(&url, timeout);
        if s.dry_run() {
            // `run` prints and records the plan, and drops the call unpolled.
            s.run(&step, &planned, call, evidence).await?;
            results.push(Checked {
                name,
                outcome: Outcome::Planned,
                detail: format!("{shown}: not checked: dry run"),
            });
            continue;
        }
        // Not `run`: the outcome is the answer's status, not the request's success.
        let (outcome, detail) = match call.await {
            Ok(probe) => {
                let detail = format!("HTTP {} in {} ms", probe.status, probe.latency.as_millis());
                let (outcome, error) = if (200..300).contains(&probe.status) {
                    (Outcome::Ok, None)
                } else {
                    (Outcome::Failed, Some(format!("answered {detail}, not 2xx")))
                };
                s.record_request(&step, &planned, outcome, evidence(&probe), error)?;
                (outcome, detail)
            }
            Err(error) => {
                let detail = error.to_string();
                s.record_request(
                    &step,
                    &planned,
                    Outcome::Failed,
                    Value::Null,
                    Some(detail.clone()),
                )?;
                (Outcome::Failed, detail)
            }
        };
        results.push(Checked {
            name,
            outcome,
            detail: format!("{shown}: {detail}"),
        });
    }
    Ok(results)
}

/// The checks before a change, reported; false (after saying so) when one failed.
pub async fn before_change(s: &mut Session) -> anyhow::Result<bool> {
    let results = check(s, Moment::Before).await?;
    let healthy = report(Moment::Before, &results);
    if !healthy {
        eprintln!("a health check failed: no rotation was started");
    }
    Ok(healthy)
}

/// Prints each result as `NAME health (MOMENT): ok|FAILED DETAIL`; true when none
/// failed.
pub fn report(moment: Moment, results: &[Checked]) -> bool {
    for result in results {
        let verdict = match result.outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            _ => continue,
        };
        eprintln!(
            "{} health ({}): {verdict}  {}",
            result.name,
            moment.name(),
            result.detail
        );
    }
    results.iter().all(|r| r.outcome != Outcome::Failed)
}

fn evidence(probe: &Probe) -> serde_json::Value {
    json!({
        "status": probe.status,
        "latency_ms": probe.latency.as_millis(),
    })
}

/// `url` without its user information and query.
fn shown_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((base, _)) => (base, true),
        None => (url, false),
    };
    let mut shown = match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{REDACTED}@{host}{path}"),
                None => format!("{scheme}://{rest}"),
            }
        }
        None => url.to_owned(),
    };
    if query {
        shown.push('?');
        shown.push_str(REDACTED);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_not_shown() {
        assert_eq!(
            shown_url("https://ops:pw@api.example:8443/healthz?key=abc"),
            "https://<redacted>@api.example:8443/healthz?<redacted>"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:9909/healthz"),
            "http://127.0.0.1:9909/healthz"
        );
    }
}
