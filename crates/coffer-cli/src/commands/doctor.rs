//! `coffer doctor`: health checks an operator runs from outside the server, composed
//! from endpoints that already exist (no server-side "doctor" endpoint to keep in
//! step). Each check answers ok, warning or critical with one line of detail; the
//! worst one is the exit code, so a cron job or a CI gate can act on it.
//!
//! Decisions:
//! - A check that cannot ask its question (connection refused, a 5xx) is critical:
//!   doctor is run to learn that things are fine, and it cannot say so. A check that
//!   is merely not set up to run (no tenant token for `key-expiration`) is a warning.
//! - Key expiry thresholds match the Prometheus rules in `deploy/prometheus/alerts.yml`
//!   (30 and 7 days, strictly less than), so doctor and the alerts agree.
//! - Every check has its own time limit, so one hung endpoint does not hide the others.

mod spares;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use coffer_api::ErrorCode;
use coffer_api::keys::{KeyView, ListKeysQuery};
use coffer_audit::checkpoint::CheckpointVerifier;
use coffer_client::{Client, ClientError};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};

use super::{Globals, print_json, print_line, table};

mod custody;

const CHECK_TIMEOUT: Duration = Duration::from_secs(20);
const SKEW_WARNING_SECS: u64 = 5;
const SKEW_CRITICAL_SECS: u64 = 60;
const DAY_SECS: i64 = 86_400;
const INTEGRITY_METRIC: &str = "kms_audit_integrity_failed_total";
const KEY_HEADERS: &[&str] = &[
    "KEY ID",
    "ALIASES",
    "VERSION",
    "NOT AFTER",
    "DAYS LEFT",
    "STATUS",
];

/// `doctor`.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 when every check is ok, 1 when the worst is a \
                        warning, 2 when any is critical (and when doctor cannot run at all)."
)]
pub struct DoctorArgs {
    /// Run only this check (repeatable; default: every check).
    #[arg(long = "check", value_name = "NAME", value_enum)]
    checks: Vec<CheckName>,
    /// A key whose primary version expires within this many days is a warning.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    warn_days: u32,
    /// A key whose primary version expires within this many days (or has expired) is
    /// critical.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    critical_days: u32,
    /// Address of the operations port (readiness, metrics).
    #[arg(long, env = "COFFER_OPS_ADDR", default_value = "http://127.0.0.1:9909")]
    ops_addr: String,
}

/// The checks, in the order they run and print.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckName {
    /// Enabled keys whose primary version expires soon (needs a tenant token).
    KeyExpiration,
    /// Enabled signing keys with a validity keep a spare version (needs a tenant token).
    SigningSpares,
    /// The server is ready: unsealed and its store answers (`/readyz`).
    Store,
    /// Custody is unsealed (`/v1/sys/seal-status`); for PKCS#11, the token answers
    /// (module, slot, token, root key handles, session pool: the ops port's `/custody`).
    Custody,
    /// The server's clock agrees with this machine's (HTTP `Date`).
    ClockSkew,
    /// The newest audit checkpoint verifies; the self-check found no problem.
    Audit,
}

impl CheckName {
    fn as_str(self) -> &'static str {
        match self {
            Self::KeyExpiration => "key-expiration",
            Self::SigningSpares => "signing-spares",
            Self::Store => "store",
            Self::Custody => "custody",
            Self::ClockSkew => "clock-skew",
            Self::Audit => "audit",
        }
    }
}

/// Ordered: the worst of several is their maximum. The discriminant is the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    fn exit_code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

/// One check's answer.
#[derive(Serialize)]
struct Report {
    check: &'static str,
    status: Status,
    detail: String,
    /// `key-expiration` only: the keys that made it a warning or critical.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    keys: Vec<ExpiringKey>,
}

impl Report {
    fn new(check: CheckName, status: Status, detail: impl Into<String>) -> Self {
        Self {
            check: check.as_str(),
            status,
            detail: detail.into(),
            keys: Vec::new(),
        }
    }
}

/// A key whose primary version expires within the warning window.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct ExpiringKey {
    key_id: String,
    aliases: Vec<String>,
    version: u32,
    not_after: String,
    /// Whole days left, rounded down; negative once expired.
    days_left: i64,
    status: Status,
}

/// The expiry windows, in seconds.
#[derive(Clone, Copy)]
struct Windows {
    warn: i64,
    critical: i64,
}

/// What every check needs.
struct Context {
    client: Client,
    has_token: bool,
    ops_addr: String,
    windows: Windows,
}

/// Runs the selected checks and prints their reports.
pub async fn run(global: &Globals, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    if args.critical_days > args.warn_days {
        let message = "--critical-days must not be more than --warn-days\n";
        clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, message).exit();
    }
    // Exit 1 means "warning" here, so a doctor that cannot start exits 2, not 1.
    let client = match global.client() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error:#}");
            return Ok(Status::Critical.exit_code());
        }
    };
    let context = Context {
        client,
        has_token: global.token.is_some(),
        ops_addr: args.ops_addr,
        windows: Windows {
            warn: i64::from(args.warn_days) * DAY_SECS,
            critical: i64::from(args.critical_days) * DAY_SECS,
        },
    };
    let mut reports = Vec::new();
    for &name in CheckName::value_variants() {
        if args.checks.is_empty() || args.checks.contains(&name) {
            reports.push(run_check(name, &context).await);
        }
    }
    let worst = reports.iter().map(|r| r.status).max().unwrap_or(Status::Ok);
    if global.json {
        print_json(&serde_json::json!({ "status": worst, "checks": reports }))?;
    } else {
        print_line(&render(&reports))?;
    }
    Ok(worst.exit_code())
}

async fn run_check(name: CheckName, context: &Context) -> Report {
    let check = async {
        match name {
            CheckName::KeyExpiration => key_expiration(context).await,
            CheckName::SigningSpares => spares::signing_spares(context).await,
            CheckName::Store => store(context).await,
            CheckName::Custody => custody::custody(context).await,
            CheckName::ClockSkew => clock_skew(context).await,
            CheckName::Audit => audit(context).await,
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            let detail = format!("no answer within {} s", CHECK_TIMEOUT.as_secs());
            Report::new(name, Status::Critical, detail)
        })
}

async fn key_expiration(context: &Context) -> Report {
    const NAME: CheckName = CheckName::KeyExpiration;
    if !context.has_token {
        let detail = "not checked: needs a tenant token (COFFER_TOKEN or --token)";
        return Report::new(NAME, Status::Warning, detail);
    }
    let query = ListKeysQuery {
        state: Some("enabled".into()),
        ..ListKeysQuery::default()
    };
    match context.client.list_keys(&query).await {
        Ok(answer) => expiry_report(&answer.keys, OffsetDateTime::now_utc(), context.windows),
        Err(error) => Report::new(NAME, Status::Critical, format!("cannot list keys: {error}")),
    }
}

/// Classifies each enabled key by its primary version's `not_after`.
fn expiry_report(keys: &[KeyView], now: OffsetDateTime, windows: Windows) -> Report {
    const NAME: CheckName = CheckName::KeyExpiration;
    let enabled: Vec<&KeyView> = keys.iter().filter(|k| k.state == "enabled").collect();
    let mut found = Vec::new();
    for key in &enabled {
        let Some(primary) = key.versions.iter().find(|v| v.primary) else {
            continue;
        };
        let Some(not_after) = &primary.not_after else {
            continue;
        };
        let Ok(end) = OffsetDateTime::parse(not_after, &Rfc3339) else {
            let detail = format!(
                "key {}: not_after `{not_after}` is not RFC 3339",
                key.key_id
            );
            return Report::new(NAME, Status::Critical, detail);
        };
        let left = (end - now).whole_seconds();
        let status = if left < windows.critical {
            Status::Critical
        } else if left < windows.warn {
            Status::Warning
        } else {
            continue;
        };
        found.push(ExpiringKey {
            key_id: key.key_id.clone(),
            aliases: key.aliases.clone(),
            version: primary.version,
            not_after: not_after.clone(),
            days_left: left.div_euclid(DAY_SECS),
            status,
        });
    }
    found.sort_by_key(|k| k.days_left);
    let (warn_days, critical_days) = (windows.warn / DAY_SECS, windows.critical / DAY_SECS);
    let count = |keep: &dyn Fn(&ExpiringKey) -> bool| found.iter().filter(|k| keep(k)).count();
    let parts: Vec<String> = [
        (count(&|k| k.days_left < 0), "expired".to_owned()),
        (
            count(&|k| k.days_left >= 0 && k.status == Status::Critical),
            format!("within {critical_days} days"),
        ),
        (
            count(&|k| k.status == Status::Warning),
            format!("within {warn_days} days"),
        ),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    let total = match enabled.len() {
        1 => "1 enabled key".to_owned(),
        n => format!("{n} enabled keys"),
    };
    let detail = if parts.is_empty() {
        format!("{total}; none expires within {warn_days} days")
    } else {
        format!("of {total}: {}", parts.join(", "))
    };
    let status = found.iter().map(|k| k.status).max().unwrap_or(Status::Ok);
    Report {
        keys: found,
        ..Report::new(NAME, status, detail)
    }
}

async fn store(context: &Context) -> Report {
    const NAME: CheckName = CheckName::Store;
    match context.client.readyz(&context.ops_addr).await {
        Ok(true) => Report::new(NAME, Status::Ok, "ready: unsealed and the store answers"),
        Ok(false) => {
            // Readiness folds several causes into one 503; the seal status tells them
            // apart.
            let cause = match context.client.seal_status().await {
                Ok(seal) if seal.sealed => "the server is sealed",
                Ok(_) => "unsealed, so the store does not answer",
                Err(_) => "the seal status cannot be read either",
            };
            Report::new(NAME, Status::Critical, format!("not ready: {cause}"))
        }
        Err(error) => {
            let detail = format!("readiness check on {} failed: {error}", context.ops_addr);
            Report::new(NAME, Status::Critical, detail)
        }
    }
}

/// The server's `Date` header. An HTTP date is 29 characters; a longer one is refused
/// unparsed: `time` before 0.3.47 recurses once per nested RFC 2822 comment
/// (RUSTSEC-2026-0009), and 0.3.47 needs a newer Rust than the workspace's 1.85.
fn http_date(text: &str) -> Option<OffsetDateTime> {
    (text.len() <= 64).then(|| OffsetDateTime::parse(text, &Rfc2822).ok())?
}

async fn clock_skew(context: &Context) -> Report {
    const NAME: CheckName = CheckName::ClockSkew;
    let (start, sent) = (Instant::now(), OffsetDateTime::now_utc());
    let answer = context.client.server_date().await;
    let round_trip = start.elapsed();
    // The server stamped its answer somewhere in the round trip: take the middle.
    let local = sent + round_trip / 2;
    let text = match answer {
        Ok(Some(text)) => text,
        Ok(None) => return Report::new(NAME, Status::Warning, "the server sent no Date header"),
        Err(error) => {
            let detail = format!("cannot reach the API: {error}");
            return Report::new(NAME, Status::Critical, detail);
        }
    };
    let Some(server) = http_date(&text) else {
        let detail = format!("the server's Date header `{text}` does not parse");
        return Report::new(NAME, Status::Warning, detail);
    };
    // The header drops the fraction of a second: compare with ours truncated too.
    let skew = (server - local.replace_nanosecond(0).unwrap_or(local)).whole_seconds();
    let status = skew_status(skew);
    let relation = match skew {
        0 => "agrees with this machine's".to_owned(),
        s if s > 0 => format!("is {s} s ahead of this machine's"),
        s => format!("is {} s behind this machine's", -s),
    };
    let detail = format!(
        "server clock {relation} (±1 s; round trip {} ms)",
        round_trip.as_millis()
    );
    Report::new(NAME, status, detail)
}

fn skew_status(skew_secs: i64) -> Status {
    match skew_secs.unsigned_abs() {
        s if s > SKEW_CRITICAL_SECS => Status::Critical,
        s if s > SKEW_WARNING_SECS => Status::Warning,
        _ => Status::Ok,
    }
}

async fn audit(context: &Context) -> Report {
    const NAME: CheckName = CheckName::Audit;
    let client = &context.client;
    let (mut status, mut details) = match client.audit_checkpoint().await {
        Ok(note) => match client.audit_key().await {
            Ok(key) => verify_checkpoint(&key, &note),
            Err(error) => (
                Status::Critical,
                format!("cannot fetch the verifier key: {error}"),
            ),
        },
        Err(ClientError::Api {
            code: ErrorCode::NotFound,
            message,
            ..
        }) => (Status::Warning, message),
        Err(error) => (
            Status::Critical,
            format!("cannot fetch the checkpoint: {error}"),
        ),
    };
    match client.metrics(&context.ops_addr).await {
        Ok(text) => match integrity_failures(&text) {
            Some(count) if count > 0.0 => {
                status = Status::Critical;
                details = format!(
                    "{details}; {INTEGRITY_METRIC} is {count}: the self-check found an \
                     edited, missing or reordered entry"
                );
            }
            _ => details.push_str("; self-check clean"),
        },
        Err(error) => {
            status = status.max(Status::Warning);
            details = format!("{details}; {INTEGRITY_METRIC} not read: {error}");
        }
    }
    Report::new(NAME, status, details)
}

fn verify_checkpoint(key: &str, note: &str) -> (Status, String) {
    let verifier = match CheckpointVerifier::parse(key) {
        Ok(verifier) => verifier,
        Err(error) => return (Status::Critical, format!("the verifier key: {error}")),
    };
    match verifier.verify(note) {
        Ok(checkpoint) => (
            Status::Ok,
            format!("checkpoint of {} entries verifies", checkpoint.size),
        ),
        Err(error) => (Status::Critical, format!("the newest checkpoint: {error}")),
    }
}

/// The sum of the metric's samples, or `None` when it is absent (it appears only once
/// incremented).
fn integrity_failures(metrics: &str) -> Option<f64> {
    let mut total = None;
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(INTEGRITY_METRIC) else {
            continue;
        };
        let rest = match rest.as_bytes().first() {
            Some(b'{') => rest.split_once('}').map_or("", |(_, after)| after),
            Some(b' ') => rest,
            _ => continue, // another metric with this prefix, or the bare name
        };
        if let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

/// The table of checks, then the expiring keys, if any.
fn render(reports: &[Report]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| vec![r.check.into(), r.status.as_str().into(), r.detail.clone()])
        .collect();
    let mut text = table(&["CHECK", "STATUS", "DETAIL"], &rows);
    for report in reports.iter().filter(|r| !r.keys.is_empty()) {
        let rows: Vec<Vec<String>> = report
            .keys
            .iter()
            .map(|k| {
                vec![
                    k.key_id.clone(),
                    Some(k.aliases.join(","))
                        .filter(|a| !a.is_empty())
                        .unwrap_or_else(|| "-".into()),
                    k.version.to_string(),
                    k.not_after.clone(),
                    k.days_left.to_string(),
                    k.status.as_str().into(),
                ]
            })
            .collect();
        let keys = table(KEY_HEADERS, &rows);
        text.push_str(&format!("\n\n{}:\n{keys}", report.check));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWS: Windows = Windows {
        warn: 30 * DAY_SECS,
        critical: 7 * DAY_SECS,
    };

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    fn key(id: &str, state: &str, not_after: Option<&str>) -> KeyView {
        let mut version = serde_json::json!({
            "version": 2, "state": "active", "primary": true,
            "not_before": "2026-01-01T00:00:00.000Z"
        });
        if let Some(not_after) = not_after {
            version["not_after"] = not_after.into();
        }
        serde_json::from_value(serde_json::json!({
            "key_id": id, "spec": "aes-256", "purpose": "encrypt", "state": state,
            "aliases": [format!("alias/{id}")], "labels": {}, "registered_purposes": [],
            "rotation": {}, "primary_version": 2, "created_at": "2026-01-01T00:00:00.000Z",
            "versions": [version]
        }))
        .unwrap()
    }

    #[test]
    fn a_date_header_of_nested_comments_is_refused_unparsed() {
        let deep = format!(
            "Sun, {}{} 22 Nov 2026 15:52:34 GMT",
            "(".repeat(1 << 20),
            ")".repeat(1 << 20)
        );
        assert!(http_date(&deep).is_none());
        assert!(http_date("Sun, 22 Nov 2026 15:52:34 GMT").is_some());
    }

    #[test]
    fn keys_are_classified_by_their_primary_versions_expiry() {
        let now = at("2026-11-01T00:00:00Z");
        let keys = [
            key("gone", "enabled", Some("2026-10-30T12:00:00.000Z")),
            key("soon", "enabled", Some("2026-11-04T00:00:00.000Z")),
            key("month", "enabled", Some("2026-11-21T00:00:00.000Z")),
            key("later", "enabled", Some("2027-01-01T00:00:00.000Z")),
            key("forever", "enabled", None),
            key("off", "disabled", Some("2026-11-02T00:00:00.000Z")),
        ];
        let report = expiry_report(&keys, now, WINDOWS);
        assert_eq!(report.status, Status::Critical);
        assert_eq!(
            report.detail,
            "of 5 enabled keys: 1 expired, 1 within 7 days, 1 within 30 days"
        );
        let found: Vec<(&str, i64, Status)> = report
            .keys
            .iter()
            .map(|k| (k.key_id.as_str(), k.days_left, k.status))
            .collect();
        assert_eq!(
            found,
            [
                ("gone", -2, Status::Critical),
                ("soon", 3, Status::Critical),
                ("month", 20, Status::Warning)
            ]
        );

        let report = expiry_report(&keys[2..], now, WINDOWS);
        assert_eq!(report.status, Status::Warning);
        let report = expiry_report(&keys[3..], now, WINDOWS);
        assert_eq!(report.status, Status::Ok);
        assert_eq!(report.detail, "2 enabled keys; none expires within 30 days");
        assert!(report.keys.is_empty());
    }

    #[test]
    fn skew_thresholds_are_exclusive() {
        assert_eq!(skew_status(0), Status::Ok);
        assert_eq!(skew_status(-5), Status::Ok);
        assert_eq!(skew_status(6), Status::Warning);
        assert_eq!(skew_status(-60), Status::Warning);
        assert_eq!(skew_status(61), Status::Critical);
    }

    #[test]
    fn http_dates_parse() {
        let date = OffsetDateTime::parse("Sun, 22 Nov 2026 15:52:34 GMT", &Rfc2822).unwrap();
        assert_eq!(date, at("2026-11-22T15:52:34Z"));
    }

    #[test]
    fn the_integrity_counter_is_summed_and_may_be_absent() {
        let healthy = "# TYPE kms_sealed gauge\nkms_sealed 0\nkms_audit_entries 4\n";
        assert_eq!(integrity_failures(healthy), None);
        let failed = "# TYPE kms_audit_integrity_failed_total counter\n\
                      kms_audit_integrity_failed_total 2\n\
                      kms_audit_integrity_failed_total_other 9\n";
        assert_eq!(integrity_failures(failed), Some(2.0));
        let labelled = "kms_audit_integrity_failed_total{kind=\"a b\"} 1 1700000000\n";
        assert_eq!(integrity_failures(labelled), Some(1.0));
    }
}
