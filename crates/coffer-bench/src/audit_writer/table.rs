//! The audit writer's figures as a Markdown table and as JSON, in the style of the
//! HTTP scenarios' report.

use super::Run;

/// A Markdown table, one row per appender count.
pub fn table(runs: &[Run], machine: &str, backend: &str) -> String {
    let mut out = format!(
        "machine: {machine}; store: {backend}\n\n| scenario | entries/s | p50 ms | p95 ms | p99 ms | commits/s | entries/commit | commit p50 ms | commit p99 ms | errors | acknowledged = stored |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for run in runs {
        let seconds = run.stats.elapsed.as_secs_f64().max(1e-9);
        out.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {:.2} | {:.2} | {} | {} = {} |\n",
            run.name(),
            run.stats.rps(),
            run.stats.percentile_ms(50.0),
            run.stats.percentile_ms(95.0),
            run.stats.percentile_ms(99.0),
            run.commits.commits as f64 / seconds,
            run.commits.entries_per_commit(),
            run.commits.commit_percentile_ms(50.0),
            run.commits.commit_percentile_ms(99.0),
            run.stats.errors,
            run.checked.acknowledged,
            run.checked.stored,
        ));
    }
    out
}

/// The same as JSON.
pub fn json(runs: &[Run], machine: &str, backend: &str, seconds: u64) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = runs
        .iter()
        .map(|run| {
            let elapsed = run.stats.elapsed.as_secs_f64().max(1e-9);
            serde_json::json!({
                "scenario": run.name(),
                "appenders": run.appenders,
                "entries_per_second": run.stats.rps(),
                "p50_ms": run.stats.percentile_ms(50.0),
                "p95_ms": run.stats.percentile_ms(95.0),
                "p99_ms": run.stats.percentile_ms(99.0),
                "errors": run.stats.errors,
                "commits_per_second": run.commits.commits as f64 / elapsed,
                "entries_per_commit": run.commits.entries_per_commit(),
                "commit_p50_ms": run.commits.commit_percentile_ms(50.0),
                "commit_p99_ms": run.commits.commit_percentile_ms(99.0),
                "acknowledged": run.checked.acknowledged,
                "stored": run.checked.stored,
                "missing": run.checked.missing,
                "unacknowledged_stored": run.checked.unacknowledged,
            })
        })
        .collect();
    serde_json::json!({
        "machine": machine,
        "store": backend,
        "seconds_per_scenario": seconds,
        "results": rows,
    })
}
