//! The results as a table and as JSON.

use crate::load::Stats;
use crate::scenarios::Scenario;

/// CPU model and core count.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

fn baseline_rps(results: &[(Scenario, Stats)]) -> Option<f64> {
    results
        .iter()
        .find(|(s, _)| s.name == "baseline-noop")
        .map(|(_, st)| st.rps())
}

/// A Markdown table.
pub fn table(results: &[(Scenario, Stats)], machine: &str) -> String {
    let baseline = baseline_rps(results);
    let mut out = format!(
        "machine: {machine}\n\n| scenario | req/s | items/s | p50 ms | p95 ms | p99 ms | errors | × baseline | × seed 002 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for (scenario, stats) in results {
        let vs_baseline = match (scenario.vs_baseline, baseline) {
            (true, Some(b)) if b > 0.0 => format!("{:.2}", stats.rps() / b),
            _ => "-".into(),
        };
        let vs_seed = scenario
            .seed
            .map_or_else(|| "-".into(), |s| format!("{:.2}", stats.rps() / s));
        out.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |\n",
            scenario.name,
            stats.rps(),
            stats.items_per_second(),
            stats.percentile_ms(50.0),
            stats.percentile_ms(95.0),
            stats.percentile_ms(99.0),
            stats.errors,
            vs_baseline,
            vs_seed
        ));
        if stats.latencies.len() > 1 {
            for (kind, _) in &stats.latencies {
                out.push_str(&format!(
                    "|   ↳ {kind} | | | {:.2} | {:.2} | {:.2} | | | |\n",
                    stats.kind_percentile_ms(kind, 50.0).unwrap_or(0.0),
                    stats.kind_percentile_ms(kind, 95.0).unwrap_or(0.0),
                    stats.kind_percentile_ms(kind, 99.0).unwrap_or(0.0)
                ));
            }
        }
    }
    out
}

/// The same as JSON.
pub fn json(results: &[(Scenario, Stats)], machine: &str, seconds: u64) -> serde_json::Value {
    let baseline = baseline_rps(results);
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|(scenario, stats)| {
            serde_json::json!({
                "scenario": scenario.name,
                "requests_per_second": stats.rps(),
                "items_per_second": stats.items_per_second(),
                "p50_ms": stats.percentile_ms(50.0),
                "p95_ms": stats.percentile_ms(95.0),
                "p99_ms": stats.percentile_ms(99.0),
                "errors": stats.errors,
                "ratio_to_baseline": baseline.filter(|_| scenario.vs_baseline).map(|b| stats.rps() / b),
                "ratio_to_seed_002": scenario.seed.map(|s| stats.rps() / s),
                "p99_ms_by_kind": stats.latencies.iter().map(|(k, _)| (k.to_string(), stats.kind_percentile_ms(k, 99.0))).collect::<std::collections::BTreeMap<_, _>>(),
            })
        })
        .collect();
    serde_json::json!({ "machine": machine, "seconds_per_scenario": seconds, "results": rows })
}
