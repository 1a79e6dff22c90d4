//! Seed 002 §9's chaos drills, each against a Coffer embedded in this process on
//! loopback, bounded in time and in requests, writing into `--out`:
//! `figures.json` (what was measured, and the seed's thresholds checked),
//! `metrics-before.txt` and `metrics-after.txt` (the server's `/metrics`).
//!
//! - `burst` — open-loop load at the sustainable rate, then ten times it, then the
//!   sustainable rate again (`burst`).
//! - `rotate-flood` — keys rotating while verifications of their signatures run
//!   (`rotate`).
//! - `fairness` — a quiet tenant alone, then under a noisy tenant sending ten times
//!   its rate (`fairness`).
//! - `steady` — one open-loop phase of the seed's 70/20/10 verify/sign/wrap mix; the
//!   network-jitter script runs it twice in a network namespace, without and with
//!   `tc netem`.
//!
//! Open loop (`openloop`): requests are sent on a schedule whatever the answers, and
//! latency counts from the scheduled time, so a slow server cannot slow the load
//! down and hide its own queueing.

mod burst;
mod fairness;
mod openloop;
mod rotate;
mod steady;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::setup::{self, Target};

/// `coffer-bench drill`.
#[derive(clap::Args)]
pub struct DrillArgs {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand)]
enum Which {
    /// Sustainable rate, 10× it, sustainable rate again: p95 and 429/503 share.
    Burst(burst::BurstArgs),
    /// A quiet tenant alone, then under a tenant flooding at 10× its rate.
    Fairness(fairness::FairnessArgs),
    /// Keys rotating while verifications run: verify cache misses and staleness.
    RotateFlood(rotate::RotateArgs),
    /// One open-loop phase of the 70/20/10 verify/sign/wrap mix.
    Steady(steady::SteadyArgs),
}

/// Options every drill has.
#[derive(clap::Args)]
pub struct Common {
    /// Directory for figures.json and metrics-{before,after}.txt (created).
    #[arg(long)]
    out: PathBuf,
    /// At most this many requests in the whole drill.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Requests in flight from the generator at most; a request due while this many
    /// wait is not sent and is counted as `dropped` (the generator, not the server,
    /// was the limit).
    #[arg(long, default_value_t = 1024)]
    max_outstanding: usize,
}

/// Runs one drill.
pub async fn run(args: DrillArgs, database_url: Option<&str>) -> anyhow::Result<()> {
    let common = match &args.which {
        Which::Burst(a) => &a.common,
        Which::Fairness(a) => &a.common,
        Which::RotateFlood(a) => &a.common,
        Which::Steady(a) => &a.common,
    };
    std::fs::create_dir_all(&common.out)
        .with_context(|| format!("creating {}", common.out.display()))?;
    let target =
        setup::start_embedded(false, database_url, setup::Settings::FromEnvironment).await?;
    let out = common.out.clone();
    let mut figures = match args.which {
        Which::Burst(a) => burst::run(&target, a).await?,
        Which::Fairness(a) => fairness::run(&target, a).await?,
        Which::RotateFlood(a) => rotate::run(&target, a).await?,
        Which::Steady(a) => steady::run(&target, a).await?,
    };
    figures["machine"] = crate::report::machine().into();
    let path = out.join("figures.json");
    std::fs::write(&path, serde_json::to_string_pretty(&figures)? + "\n")?;
    println!("{}", serde_json::to_string_pretty(&figures)?);
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The server's `/metrics`, saved as `name` in `out` and parsed.
pub async fn snapshot(target: &Target, out: &Path, name: &str) -> anyhow::Result<Metrics> {
    let text = reqwest::get(format!("{}/metrics", target.ops))
        .await?
        .error_for_status()?
        .text()
        .await?;
    std::fs::write(out.join(name), &text)?;
    Ok(Metrics::parse(&text))
}

/// Series of a Prometheus text exposition: `name{labels}` → value.
#[derive(Debug, Default)]
pub struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Self {
        let series = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect();
        Self(series)
    }

    /// The sum of every series of metric `name` (all label sets).
    pub fn total(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(series, _)| series.split('{').next() == Some(name))
            .map(|(_, value)| value)
            .sum()
    }

    /// The value of one series, e.g. `kms_reject_total{reason="pq_policy"}` (0 absent).
    pub fn series(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// `after − before` for every series of the metrics named, where it moved.
    pub fn deltas(before: &Self, after: &Self, names: &[&str]) -> serde_json::Value {
        let moved: BTreeMap<&String, f64> = after
            .0
            .iter()
            .filter(|(series, _)| {
                let name = series.split('{').next().unwrap_or_default();
                names.contains(&name)
            })
            .map(|(series, value)| (series, value - before.0.get(series).unwrap_or(&0.0)))
            .filter(|(_, delta)| *delta != 0.0)
            .collect();
        serde_json::json!(moved)
    }
}

/// A rate or a factor: a finite number above zero. Anything else is refused with its
/// reason before the drill starts (a zero rate would send nothing and report figures of
/// nothing).
pub fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(_) => Err(format!("must be a number above zero, got {text}")),
        Err(e) => Err(format!("{e}: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn exposition_series_add_up_by_name_and_differ_by_series() {
        let before = Metrics::parse(
            "# TYPE rejected_total counter\nrejected_total{reason=\"backpressure\"} 2\nverify_cache_hit_total 10\n",
        );
        let after = Metrics::parse(
            "rejected_total{reason=\"backpressure\"} 5\nrejected_total{reason=\"tenant_share\"} 1\nverify_cache_hit_total 10\n",
        );
        assert_eq!(after.total("rejected_total"), 6.0);
        assert_eq!(after.series("rejected_total{reason=\"tenant_share\"}"), 1.0);
        assert_eq!(after.series("absent_total"), 0.0);
        let deltas = Metrics::deltas(
            &before,
            &after,
            &["rejected_total", "verify_cache_hit_total"],
        );
        assert_eq!(
            deltas,
            serde_json::json!({
                "rejected_total{reason=\"backpressure\"}": 3.0,
                "rejected_total{reason=\"tenant_share\"}": 1.0,
            })
        );
    }

    #[test]
    fn rates_and_factors_are_finite_and_above_zero() {
        assert_eq!(super::positive("2.5"), Ok(2.5));
        for bad in ["0", "-1", "NaN", "inf", "", "ten"] {
            assert!(super::positive(bad).is_err(), "{bad}");
        }
    }
}
