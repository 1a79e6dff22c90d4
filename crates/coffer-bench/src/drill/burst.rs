//! Burst drill (seed 002 §9: "10× RPS for 60 s; p95 within ±15 % baseline; 429/503
//! < 1 %"): Ed25519 signing, open loop, in three phases: the sustainable rate
//! (baseline), `factor` times it (burst), the sustainable rate again (recovery).
//!
//! The sustainable rate is `--rate`, or half the throughput a short closed-loop probe
//! reaches (four connections for `--probe-seconds`) on this machine now. The seed's
//! figures are checked as: the p95 of the requests the server admitted during the
//! burst, and the recovery's p95, each within ±15 % of the baseline's; the 429/503
//! share at the sustainable rate (baseline and recovery) under 1 %. During the burst
//! most requests are expected to be shed: that is the operating envelope working.

use std::sync::Arc;
use std::time::Duration;

use coffer_client::Client;

use super::{Common, Metrics, openloop, snapshot};
use crate::load::Request;
use crate::scenarios::{self, Scenario};
use crate::setup::Target;

#[derive(clap::Args)]
pub struct BurstArgs {
    #[command(flatten)]
    pub common: Common,
    /// The sustainable rate (requests/s); default: half of what a probe reaches.
    #[arg(long, value_parser = super::positive)]
    rate: Option<f64>,
    /// How much more than the sustainable rate the burst sends.
    #[arg(long, default_value_t = 10.0, value_parser = super::positive)]
    factor: f64,
    /// Seconds of burst.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds of baseline before, and of recovery after, the burst.
    #[arg(long, default_value_t = 20)]
    baseline_seconds: u64,
    /// Seconds of the closed-loop probe that finds the sustainable rate.
    #[arg(long, default_value_t = 3)]
    probe_seconds: u64,
}

pub async fn run(target: &Target, args: BurstArgs) -> anyhow::Result<serde_json::Value> {
    let client = Client::new(&target.api, Some(target.token.clone()))?;
    let key = scenarios::key(&client, "ed25519").await?;
    let body = format!(
        r#"{{"key_id":"{key}","message":"{}"}}"#,
        scenarios::b64(&[0x42; 64])
    );
    let sign = Request::new(
        format!("{}/v1/kms/sign", target.api),
        body,
        Some(&target.token),
        "sign",
    );
    let requests = Arc::new(vec![sign]);
    let (rate, rate_source) = match args.rate {
        Some(rate) => (rate, "given (--rate)".to_owned()),
        None => {
            let probe = Scenario {
                name: "probe",
                requests: requests.clone(),
                pick: Arc::new(|_, _| 0),
                concurrency: None,
                seed: None,
                vs_baseline: false,
            };
            let seconds = Duration::from_secs(args.probe_seconds.max(1));
            let capacity = crate::load::run(&probe, 4, seconds).await.rps();
            (
                (capacity / 2.0).max(1.0),
                format!(
                    "half of {capacity:.0}/s, a closed-loop probe's (4 connections, {}s)",
                    seconds.as_secs()
                ),
            )
        }
    };
    let out = &args.common.out;
    let before = snapshot(target, out, "metrics-before.txt").await?;
    let mut budget = args.common.max_requests;
    let mut phases = Vec::new();
    for (name, phase_rate, seconds) in [
        ("baseline", rate, args.baseline_seconds),
        ("burst", rate * args.factor, args.seconds),
        ("recovery", rate, args.baseline_seconds),
    ] {
        eprintln!("{name}: {phase_rate:.0}/s for {seconds}s");
        let outcome = openloop::run(
            requests.clone(),
            Arc::new(|_, _| 0),
            phase_rate,
            Duration::from_secs(seconds.max(1)),
            budget,
            args.common.max_outstanding,
        )
        .await;
        budget = budget.saturating_sub(outcome.sent + outcome.dropped);
        phases.push((name, outcome));
    }
    let after = snapshot(target, out, "metrics-after.txt").await?;
    let (baseline, burst, recovery) = (&phases[0].1, &phases[1].1, &phases[2].1);
    let ratio = |p95: f64| {
        let base = baseline.percentile_ms(95.0);
        if base > 0.0 { p95 / base } else { f64::NAN }
    };
    let burst_ratio = ratio(burst.percentile_ms(95.0));
    let recovery_ratio = ratio(recovery.percentile_ms(95.0));
    let sustainable_shed = {
        let shed = baseline.shed_429 + baseline.shed_503 + recovery.shed_429 + recovery.shed_503;
        let answered = shed + baseline.ok + baseline.failed + recovery.ok + recovery.failed;
        if answered == 0 {
            0.0
        } else {
            shed as f64 / answered as f64
        }
    };
    let within = |r: f64| (0.85..=1.15).contains(&r);
    Ok(serde_json::json!({
        "drill": "burst",
        "operation": "sign (Ed25519)",
        "sustainable_rate": rate,
        "rate_source": rate_source,
        "factor": args.factor,
        "phases": phases.iter().map(|(name, o)| o.json(name)).collect::<Vec<_>>(),
        "checks": {
            "burst_admitted_p95_to_baseline": burst_ratio,
            "burst_admitted_p95_within_15_percent": within(burst_ratio),
            "recovery_p95_to_baseline": recovery_ratio,
            "recovery_p95_within_15_percent": within(recovery_ratio),
            "shed_share_at_sustainable_rate": sustainable_shed,
            "shed_share_at_sustainable_rate_under_1_percent": sustainable_shed < 0.01,
            "shed_share_during_burst": burst.shed_share(),
        },
        "metrics_delta": Metrics::deltas(&before, &after, &[
            "rejected_total", "kms_reject_total", "kms_heavy_jobs_total", "kms_connections_refused_total",
        ]),
    }))
}
