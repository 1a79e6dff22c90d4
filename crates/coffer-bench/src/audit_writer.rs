//! `coffer-bench audit-writer` (issue 15): the audit writer alone, so the next change to
//! it is measured. A real store (SQLite in a temp dir, or `--database-url`), one
//! [`AuditLog`] on it, and N appenders, each recording a wrap's entry in a closed loop
//! through `AuditSink::record` — no HTTP, no auth, no crypto — for one second of
//! warm-up and then `--seconds`, once per N.
//!
//! Only acknowledged records are counted, and after each run the rows it added are
//! read back and matched to them one by one: an acknowledged entry that is not stored
//! fails the benchmark.
//!
//! Layout: this file (arguments, store, the closed loop); `commits` (a metrics
//! recorder keeping the writer's commit histograms); `ledger` (acknowledged records
//! against stored rows); `table` (table and JSON).

mod commits;
mod ledger;
mod table;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use coffer_audit_log::{Anchor, AuditLog};
use coffer_core::audit::{AuditEntry, AuditSink};
use coffer_core::ids::{KeyId, TenantId};
use coffer_core::token::TokenId;
use coffer_core::{Clock, Store, SystemClock};
use coffer_store_sql::SqlStore;

use crate::load::Stats;
use commits::{Commits, Window};
use ledger::{Checked, Record};

/// Arguments of `coffer-bench audit-writer` (`--seconds`, `--json` and
/// `--database-url` are the top-level ones).
#[derive(clap::Args)]
pub struct AuditArgs {
    /// Concurrent appenders: one run for each count, in order.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64])]
    appenders: Vec<usize>,
    /// Keep the SQLite database in this directory (as `coffer.db`) instead of a temp
    /// dir removed afterwards, to read the log back.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// One appender count's figures.
struct Run {
    appenders: usize,
    stats: Stats,
    commits: Window,
    checked: Checked,
}

impl Run {
    fn name(&self) -> String {
        format!("audit-writer-{}", self.appenders)
    }
}

/// Runs the benchmark for each appender count and prints the table.
pub async fn run(
    args: AuditArgs,
    seconds: u64,
    json: Option<&Path>,
    database_url: Option<&str>,
) -> anyhow::Result<()> {
    let commits = Commits::install()?;
    let opened = open_store(args.data_dir.as_deref(), database_url).await?;
    let store: Arc<dyn Store> = opened.store.clone();
    let (log, _) = AuditLog::open(store.clone(), "coffer-bench", Anchor::default())
        .await
        .context("opening the audit log")?;
    let duration = Duration::from_secs(seconds.max(1));
    let mut from = ledger::end_of_log(store.as_ref(), 0).await?;
    let mut runs = Vec::new();
    for (run, &appenders) in (0u32..).zip(&args.appenders) {
        eprintln!("running audit-writer-{appenders:<3} {seconds}s × {appenders} appenders …");
        let (stats, window, acknowledged) =
            measure(&log, &commits, run, appenders.max(1), duration).await?;
        let checked = ledger::check(store.as_ref(), from, run, acknowledged).await?;
        from = checked.end;
        eprintln!(
            "  {:>10.0} entries/s  p99 {:>8.2} ms  {:.1} entries/commit  acknowledged {} stored {}",
            stats.rps(),
            stats.percentile_ms(99.0),
            window.entries_per_commit(),
            checked.acknowledged,
            checked.stored
        );
        runs.push(Run {
            appenders,
            stats,
            commits: window,
            checked,
        });
    }
    let machine = crate::report::machine();
    println!("{}", table::table(&runs, &machine, opened.backend));
    if let Some(path) = json {
        let value = table::json(&runs, &machine, opened.backend, seconds);
        std::fs::write(path, serde_json::to_string_pretty(&value)?)?;
        eprintln!("wrote {}", path.display());
    }
    opened.close().await;
    let missing: u64 = runs.iter().map(|r| r.checked.missing).sum();
    anyhow::ensure!(
        missing == 0,
        "{missing} acknowledged audit entries are not in the store"
    );
    Ok(())
}

/// The store under test and what to remove afterwards.
struct Opened {
    store: Arc<SqlStore>,
    backend: &'static str,
    /// A temp dir of this run's own, removed on close.
    scratch: Option<PathBuf>,
}

impl Opened {
    async fn close(self) {
        self.store.close().await;
        if let Some(dir) = self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn open_store(data_dir: Option<&Path>, database_url: Option<&str>) -> anyhow::Result<Opened> {
    if let Some(url) = database_url {
        anyhow::ensure!(
            data_dir.is_none(),
            "--data-dir is for SQLite; --database-url names the database"
        );
        let store = SqlStore::connect(url)
            .await
            .context("connecting to --database-url")?;
        return Ok(Opened {
            store: Arc::new(store),
            backend: "PostgreSQL",
            scratch: None,
        });
    }
    let (dir, scratch) = match data_dir {
        Some(dir) => (dir.to_owned(), None),
        None => {
            let dir =
                std::env::temp_dir().join(format!("coffer-bench-audit-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            (dir.clone(), Some(dir))
        }
    };
    std::fs::create_dir_all(&dir)?;
    let store = SqlStore::open_sqlite(&dir.join("coffer.db"))
        .await
        .context("opening the SQLite store")?;
    Ok(Opened {
        store: Arc::new(store),
        backend: "SQLite",
        scratch,
    })
}

/// What one appender recorded.
#[derive(Default)]
struct Part {
    /// Sequence numbers of every acknowledged record, warm-up included.
    acknowledged: Vec<u64>,
    /// Acknowledged and failed records started in the measured window.
    ok: u64,
    errors: u64,
    /// Caller-seen latency of the measured window's acknowledged records, µs.
    latencies: Vec<u32>,
}

/// The fields of a wrap's entry for one caller and key.
struct Shape {
    tenant: String,
    principal: String,
    key: String,
}

impl Shape {
    fn entry(&self, request_id: String) -> AuditEntry {
        AuditEntry {
            at: SystemClock.now().millis(),
            tenant: self.tenant.clone(),
            principal: self.principal.clone(),
            op: "wrap".to_owned(),
            key: Some(self.key.clone()),
            version: Some(1),
            outcome: "ok".to_owned(),
            request_id,
            detail: None,
        }
    }
}

/// Runs `appenders` closed loops for one second of warm-up and `duration`; the
/// figures of the measured window and every acknowledged record.
async fn measure(
    log: &Arc<AuditLog>,
    commits: &Commits,
    run: u32,
    appenders: usize,
    duration: Duration,
) -> anyhow::Result<(Stats, Window, HashSet<Record>)> {
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(1);
    let deadline = measure_from + duration;
    let tenant = TenantId::generate().to_string();
    let principal = TokenId::generate().to_string();
    let tasks: Vec<_> = (0u32..)
        .take(appenders)
        .map(|appender| {
            let shape = Shape {
                tenant: tenant.clone(),
                principal: principal.clone(),
                key: KeyId::generate().to_string(),
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut part = Part::default();
                let mut seq = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break part;
                    }
                    let entry = shape.entry(ledger::request_id(run, appender, seq));
                    let outcome = log.record(entry).await;
                    let measured = sent >= measure_from;
                    match outcome {
                        Ok(()) => {
                            part.acknowledged.push(seq);
                            if measured {
                                part.ok += 1;
                                part.latencies.push(
                                    u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX),
                                );
                            }
                        }
                        Err(_) if measured => part.errors += 1,
                        Err(_) => {}
                    }
                    seq += 1;
                }
            })
        })
        .collect();
    // The writer's commits are counted by when they happen, the records by when they
    // start: both over the same measured window.
    tokio::time::sleep_until(measure_from.into()).await;
    let from = commits.mark();
    tokio::time::sleep_until(deadline.into()).await;
    let window = commits.between(&from, &commits.mark());
    let mut stats = Stats {
        elapsed: duration,
        ..Stats::default()
    };
    let mut latencies = Vec::new();
    let mut acknowledged = HashSet::new();
    for (appender, task) in (0u32..).zip(tasks) {
        let part = task.await?;
        stats.ok += part.ok;
        stats.items += part.ok;
        stats.errors += part.errors;
        latencies.extend(part.latencies);
        acknowledged.extend(part.acknowledged.into_iter().map(|seq| (appender, seq)));
    }
    latencies.sort_unstable();
    stats.latencies = vec![("record", latencies)];
    Ok((stats, window, acknowledged))
}
