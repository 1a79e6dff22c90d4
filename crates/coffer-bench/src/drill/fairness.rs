//! Fairness drill (issue 14: "a tenant flooding at 10× cannot push a quiet tenant's
//! success rate or p95 materially"): two tenants, each with its own key, on one
//! operation (Ed25519 sign by default, Ed25519 verify, or AES-256 wrap).
//!
//! - `alone`: the quiet tenant by itself, open loop at `--rate` for `--seconds`;
//! - `flood`: the same quiet load while the noisy tenant sends `--flood-factor` times
//!   the quiet rate, also open loop, for the same time.
//!
//! Both tenants run open loop (`openloop`): requests leave on schedule whatever the
//! answers, and latency counts from the scheduled time, so queueing the flood causes
//! shows in the quiet tenant's figures instead of slowing its load down. The noisy
//! tenant does not back off when refused (it ignores `Retry-After`): the worst case
//! for the quiet one. A warm-up sends a second of each tenant's load at the quiet rate
//! first (keys loaded, connections open), then the drill waits out the admission's
//! activity window so the alone phase starts with one active tenant.
//!
//! Figures: for the quiet tenant, each phase's ok, refusals (429/503), p50/p95/p99,
//! and the flood-to-alone ratios; for the noisy tenant, ok and refusals by reason
//! (429 `tenant_share`, 503 `backpressure`). Like the other drills, it exits 0 when it
//! ran; the figures say whether the bound held.

use std::sync::Arc;
use std::time::Duration;

use coffer_client::Client;
use coffer_server::admission::{ACTIVE_WINDOW, Class};

use super::openloop::{self, Outcome};
use super::{Common, Metrics, snapshot};
use crate::load::Request;
use crate::scenarios;
use crate::setup::Target;

/// The operation both tenants send.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Operation {
    /// Ed25519 signatures of 64 bytes.
    Sign,
    /// Verifications of one Ed25519 signature (each tenant its own).
    Verify,
    /// AES-256 wraps of 32 bytes.
    Wrap,
}

impl Operation {
    fn class(self) -> Class {
        match self {
            Operation::Sign => Class::Sign,
            Operation::Verify => Class::Verify,
            Operation::Wrap => Class::Wrap,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Operation::Sign => "sign (Ed25519)",
            Operation::Verify => "verify (Ed25519)",
            Operation::Wrap => "wrap (AES-256, 32 bytes)",
        }
    }
}

#[derive(clap::Args)]
pub struct FairnessArgs {
    #[command(flatten)]
    pub common: Common,
    /// The operation both tenants send.
    #[arg(long, value_enum, default_value_t = Operation::Sign)]
    op: Operation,
    /// The quiet tenant's rate (requests/s, open loop).
    #[arg(long, default_value_t = 200.0, value_parser = super::positive)]
    rate: f64,
    /// How many times the quiet tenant's rate the noisy tenant sends.
    #[arg(long, default_value_t = 10.0, value_parser = super::positive)]
    flood_factor: f64,
    /// Seconds of each phase (alone, flood).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

pub async fn run(target: &Target, args: FairnessArgs) -> anyhow::Result<serde_json::Value> {
    let quiet = request(target, &target.tenant("quiet").await?, args.op).await?;
    let noisy = request(target, &target.tenant("noisy").await?, args.op).await?;
    let common = &args.common;
    let phase = Duration::from_secs(args.seconds.max(1));
    let noisy_rate = args.rate * args.flood_factor;
    let send = |request: &Arc<Vec<Request>>, rate: f64, duration: Duration, budget: u64| {
        openloop::run(
            request.clone(),
            Arc::new(|_, _| 0),
            rate,
            duration,
            budget,
            common.max_outstanding,
        )
    };

    eprintln!("warm-up: both tenants at {:.0}/s for 1s", args.rate);
    let second = Duration::from_secs(1);
    let budget = common.max_requests;
    tokio::join!(
        send(&quiet, args.rate, second, budget),
        send(&noisy, args.rate, second, budget)
    );
    tokio::time::sleep(ACTIVE_WINDOW * 2).await;

    let load_before = load_average();
    let before = snapshot(target, &common.out, "metrics-before.txt").await?;
    let cpu_before = cpu::seconds();
    eprintln!(
        "alone: quiet at {:.0}/s for {}s",
        args.rate,
        phase.as_secs()
    );
    let alone = send(&quiet, args.rate, phase, budget).await;
    let between = snapshot(target, &common.out, "metrics-between.txt").await?;
    let cpu_between = cpu::seconds();
    let budget = budget.saturating_sub(alone.sent + alone.dropped);
    eprintln!(
        "flood: quiet at {:.0}/s, noisy at {noisy_rate:.0}/s for {}s",
        args.rate,
        phase.as_secs()
    );
    // The quiet tenant's share of what is left is what it sends alone.
    let quiet_budget = budget.min(alone.sent + alone.dropped);
    let (flood, noisy_outcome) = tokio::join!(
        send(&quiet, args.rate, phase, quiet_budget),
        send(
            &noisy,
            noisy_rate,
            phase,
            budget.saturating_sub(quiet_budget)
        )
    );
    let after = snapshot(target, &common.out, "metrics-after.txt").await?;
    let cpu_after = cpu::seconds();
    let load_after = load_average();

    let class = args.op.class();
    let ratio = |p: f64| {
        let base = alone.percentile_ms(p);
        if base > 0.0 {
            flood.percentile_ms(p) / base
        } else {
            f64::NAN
        }
    };
    let quiet_refused = refused(&alone) + refused(&flood);
    Ok(serde_json::json!({
        "drill": "fairness",
        "operation": args.op.label(),
        "quiet_rate": args.rate,
        "flood_factor": args.flood_factor,
        "noisy_rate": noisy_rate,
        "seconds_per_phase": phase.as_secs(),
        "admission": {
            "class": class.as_str(),
            "max_inflight": target.admission.cap(class),
            "tenant_floor": target.admission.floor(class),
        },
        "quiet": {
            "alone": quiet_json(&alone, "alone"),
            "flood": quiet_json(&flood, "flood"),
            "flood_to_alone": {
                "p50": ratio(50.0),
                "p95": ratio(95.0),
                "p99": ratio(99.0),
                "success_rate": success_rate(&flood) / success_rate(&alone),
            },
        },
        "noisy": {
            "phase": noisy_outcome.json("flood"),
            "refused_by_reason": {
                "tenant_share": noisy_outcome.shed_429,
                "backpressure": noisy_outcome.shed_503,
            },
        },
        "checks": {
            "quiet_refused": quiet_refused,
            "quiet_never_refused": quiet_refused == 0,
            "quiet_failed": alone.failed + flood.failed,
            "quiet_p95_flood_to_alone": ratio(95.0),
            "noisy_was_refused": refused(&noisy_outcome) > 0,
        },
        // Where the quiet tenant's time goes under the flood: the audit writer it
        // shares with the noisy tenant, and the CPU this process (server and load
        // generator together) used.
        "attribution": {
            "alone": attribution(&before, &between, cpu::spent(cpu_before, cpu_between), phase),
            "flood": attribution(&between, &after, cpu::spent(cpu_between, cpu_after), phase),
        },
        "load_average": { "before": load_before, "after": load_after },
        "metrics_delta": Metrics::deltas(&before, &after, &[
            "rejected_total", "kms_reject_total", "kms_heavy_jobs_total", "kms_connections_refused_total",
        ]),
    }))
}

/// One prepared request of `op` for the tenant of `token`, on a key of its own.
async fn request(target: &Target, token: &str, op: Operation) -> anyhow::Result<Arc<Vec<Request>>> {
    let client = Client::new(&target.api, Some(token.to_owned()))?;
    let message = [0x42u8; 64];
    let url = |path: &str| format!("{}{path}", target.api);
    let request = match op {
        Operation::Sign => {
            let key = scenarios::key(&client, "ed25519").await?;
            let body = format!(
                r#"{{"key_id":"{key}","message":"{}"}}"#,
                scenarios::b64(&message)
            );
            Request::new(url("/v1/kms/sign"), body, Some(token), "sign")
        }
        Operation::Verify => {
            let key = scenarios::key(&client, "ed25519").await?;
            let signature = scenarios::signature(&client, &key, &message).await?;
            let body = format!(
                r#"{{"key_id":"{key}","message":"{}","signature":"{signature}"}}"#,
                scenarios::b64(&message)
            );
            let mut verify = Request::new(url("/v1/kms/verify"), body, Some(token), "verify");
            verify.expect_valid = true;
            verify
        }
        Operation::Wrap => {
            let key = scenarios::key(&client, "aes-256").await?;
            let body = format!(
                r#"{{"key_id":"{key}","plaintext":"{}"}}"#,
                scenarios::b64(&[7u8; 32])
            );
            Request::new(url("/v1/kms/wrap"), body, Some(token), "wrap")
        }
    };
    Ok(Arc::new(vec![request]))
}

fn refused(outcome: &Outcome) -> u64 {
    outcome.shed_429 + outcome.shed_503
}

/// Successful answers over requests sent (1 when none were sent).
fn success_rate(outcome: &Outcome) -> f64 {
    if outcome.sent == 0 {
        return 1.0;
    }
    outcome.ok as f64 / outcome.sent as f64
}

fn quiet_json(outcome: &Outcome, phase: &str) -> serde_json::Value {
    let mut json = outcome.json(phase);
    json["refused"] = refused(outcome).into();
    json["refused_by_reason"] = serde_json::json!({
        "tenant_share": outcome.shed_429,
        "backpressure": outcome.shed_503,
    });
    json["success_rate"] = success_rate(outcome).into();
    json
}

/// The audit writer's commits between two `/metrics` snapshots (every request of
/// either tenant waits for the commit that holds its entry), and the CPU used.
fn attribution(
    from: &Metrics,
    to: &Metrics,
    cpu_seconds: Option<f64>,
    phase: Duration,
) -> serde_json::Value {
    let delta = |series: &str| to.series(series) - from.series(series);
    let commits = delta("kms_audit_commit_seconds_count");
    let committing = delta("kms_audit_commit_seconds_sum");
    let entries = delta("kms_audit_batch_entries_sum");
    let per_commit = |total: f64| if commits > 0.0 { total / commits } else { 0.0 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    serde_json::json!({
        "audit_commits": commits,
        "audit_entries": entries,
        "audit_entries_per_commit": per_commit(entries),
        "audit_commit_mean_ms": per_commit(committing) * 1000.0,
        // Commits in progress on average (time spent committing over the phase,
        // Little's law; the writer may have several batches in the store at once):
        // the higher, the more a request's commit overlaps or queues behind others.
        "audit_commits_in_progress": committing / phase.as_secs_f64(),
        "process_cpu_seconds": cpu_seconds,
        "process_cpu_share_of_machine": cpu_seconds.map(|s| s / (phase.as_secs_f64() * cores)),
    })
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), if this system has them.
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

/// CPU time of this process, from `/proc/self/stat`.
mod cpu {
    /// Clock ticks per second of `/proc/*/stat` on Linux (`USER_HZ`, fixed at 100 by
    /// the kernel's ABI whatever `CONFIG_HZ` is).
    const USER_HZ: f64 = 100.0;

    /// User plus system seconds, if this system has `/proc/self/stat`.
    pub fn seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces; the fields after it do not.
        let rest = stat.rsplit_once(')')?.1;
        let mut fields = rest.split_whitespace().skip(11);
        let user: f64 = fields.next()?.parse().ok()?;
        let system: f64 = fields.next()?.parse().ok()?;
        Some((user + system) / USER_HZ)
    }

    /// Seconds from `start` to `end`, when both were read.
    pub fn spent(start: Option<f64>, end: Option<f64>) -> Option<f64> {
        Some(end? - start?)
    }
}
