//! `coffer-bench`: fixed-duration, fixed-concurrency load against Coffer's HTTP API,
//! with a no-op baseline on the same HTTP stack measured in the same run, so every
//! figure is also a ratio to what the machine can do at all.
//!
//! `coffer-bench drill …` runs seed 002's chaos drills instead (`drill`; the scripts
//! in `scripts/drills/` call it), and `coffer-bench audit-writer` measures the audit
//! writer alone, without HTTP (`audit_writer`).
//!
//! Layout: `setup` (an embedded server and the baseline), `load` (the closed-loop
//! generator and latency statistics), `scenarios` (what each run sends), `report`
//! (table and JSON), `drill` (open-loop phases at a rate, /metrics before and after),
//! `audit_writer` (concurrent appenders on one `AuditLog` over a real store).
//! Traffic goes to loopback only; every run stops by itself after its duration.

mod audit_writer;
mod drill;
mod load;
mod report;
mod scenarios;
mod setup;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Load generator for Coffer.
#[derive(Parser)]
#[command(name = "coffer-bench", version, about)]
struct Args {
    /// Seconds per scenario (after one second of warm-up).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connections per scenario.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Scenarios to run (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run the embedded server with the audit log off (to measure its cost).
    #[arg(long)]
    audit_off: bool,
    /// Use a PostgreSQL database instead of embedded SQLite.
    #[arg(long)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// A chaos drill of seed 002 §9 against an embedded server (see scripts/drills/).
    Drill(drill::DrillArgs),
    /// The audit writer alone: N concurrent appenders on one audit log (issue 15).
    AuditWriter(audit_writer::AuditArgs),
}

/// The allocator the `coffer` binary runs with (see coffer-cli/src/main.rs), so the
/// embedded server is measured as it is deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Command::Drill(drill)) => {
            return drill::run(drill, args.database_url.as_deref()).await;
        }
        Some(Command::AuditWriter(audit)) => {
            return audit_writer::run(
                audit,
                args.seconds,
                args.json.as_deref(),
                args.database_url.as_deref(),
            )
            .await;
        }
        None => {}
    }
    let target = setup::start_embedded(
        args.audit_off,
        args.database_url.as_deref(),
        setup::Settings::Defaults,
    )
    .await?;
    let baseline = setup::start_baseline().await?;
    let duration = Duration::from_secs(args.seconds.max(1));
    let mut results = Vec::new();
    for scenario in scenarios::all(&target, &baseline).await? {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == scenario.name) {
            continue;
        }
        eprintln!(
            "running {:<28} {}s × {} connections …",
            scenario.name,
            args.seconds,
            scenario.concurrency.unwrap_or(args.concurrency)
        );
        let stats = load::run(
            &scenario,
            scenario.concurrency.unwrap_or(args.concurrency),
            duration,
        )
        .await;
        eprintln!(
            "  {:>10.0} req/s  p99 {:>8.2} ms  errors {}",
            stats.rps(),
            stats.percentile_ms(99.0),
            stats.errors
        );
        results.push((scenario, stats));
    }
    let machine = report::machine();
    println!("{}", report::table(&results, &machine));
    if let Some(path) = args.json {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&report::json(&results, &machine, args.seconds))?,
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
