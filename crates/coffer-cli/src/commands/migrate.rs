//! `coffer migrate`: moving data keys from a legacy key provider to Coffer (seed 003 §3
//! and §9). `inventory` counts sidecars by provider, `sidecars` rewraps them with a
//! journal, `open` is the dual read path, `verify` decrypts a sample.

mod engine;
mod journal;
mod legacy_key;
mod open;
mod progress;
mod sidecar;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{Globals, pairs_to_map, parse_pair, print_json, print_line};
use engine::{Durability, Engine, Output, Settings, Tracking};
use journal::{Journal, Outcome};
use legacy_key::LegacyKey;
use open::Cutover;
use progress::Progress;
use sidecar::{FieldNames, Inputs};

/// `coffer migrate …`.
#[derive(Subcommand)]
pub enum MigrateCommand {
    /// Count sidecars by provider (legacy env/file/dpapi, Coffer key and version).
    Inventory(InventoryArgs),
    /// Wrap legacy data keys under a Coffer key and rewrap Coffer ones to the primary
    /// version, with a journal so a killed run resumes.
    Sidecars(SidecarsArgs),
    /// Open one sidecar's data key, whichever provider wrapped it (dual read).
    Open(OpenArgs),
    /// Decrypt a random sample of blobs and check their content hashes.
    Verify(verify::VerifyArgs),
}

/// Where the sidecars are and how their fields are named.
#[derive(Args)]
pub struct Source {
    /// A directory of `*.json` sidecars, or one JSON-lines file.
    #[arg(long, value_name = "DIR|FILE")]
    from: PathBuf,
    /// Another name for a sidecar field, OURS=THEIRS (repeatable): id, key_id,
    /// wrapped_dek, dek_version, legacy_alg, blob, content_sha256, track_id.
    #[arg(long = "field", value_name = "OURS=THEIRS", value_parser = parse_pair)]
    fields: Vec<(String, String)>,
}

impl Source {
    fn read(&self) -> anyhow::Result<(Inputs, FieldNames)> {
        let names = FieldNames::mapped(&self.fields)?;
        Ok((sidecar::read(&self.from, &names)?, names))
    }
}

/// The legacy provider's key and the cutover flag, for reading.
#[derive(Args)]
pub struct LegacyArgs {
    /// Environment variable holding the legacy key (hex or base64, 16 or 32 bytes).
    #[arg(long, value_name = "VAR")]
    legacy_key_env: Option<String>,
    /// File (mode 0600) holding the legacy key.
    #[arg(long, value_name = "FILE")]
    legacy_key_file: Option<PathBuf>,
    /// Encryption context KEY=VALUE (repeatable) the data keys are wrapped with at
    /// Coffer.
    #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_pair)]
    context: Vec<(String, String)>,
    /// Also bind each sidecar's id into the context, under this name (`blob` gives
    /// `blob=ID`), so a wrapped key opens only for its own sidecar.
    #[arg(long, value_name = "NAME")]
    context_id: Option<String>,
}

impl LegacyArgs {
    fn key(&self) -> anyhow::Result<Option<LegacyKey>> {
        LegacyKey::load(
            self.legacy_key_env.as_deref(),
            self.legacy_key_file.as_deref(),
        )
    }

    /// The context a sidecar's data key is wrapped with at Coffer.
    fn context_for(&self, id: &str) -> anyhow::Result<coffer_api::crypto::Context> {
        let base = pairs_to_map(self.context.clone(), "context")?;
        Ok(engine::context_for(&base, self.context_id.as_deref(), id))
    }
}

/// `inventory`.
#[derive(Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    source: Source,
    /// Also list every id.
    #[arg(long)]
    ids: bool,
}

/// `sidecars`.
#[derive(Args)]
pub struct SidecarsArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    legacy: LegacyArgs,
    /// The Coffer key legacy data keys are wrapped under (id or alias/NAME).
    #[arg(long)]
    key: Option<String>,
    /// The journal (SQLite); default: beside the input, `<from>.migrate.db`.
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// For JSON-lines input: where the migrated JSON lines go.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Items per Coffer call (at most 256).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..=256))]
    batch_size: u16,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// At most this many items per second.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rate: Option<u32>,
    /// Retries of a transiently failed batch or item (backoff 200 ms, doubling).
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Do not flush each new sidecar to disk (faster; a power cut may then lose
    /// rewrites the journal counts as done, which dual read still opens).
    #[arg(long)]
    no_fsync: bool,
    /// Register each legacy data key as a tracked data key under the sidecar's id
    /// (rotations rewrap it server side; the new sidecar gets a `track_id` field). The
    /// token needs `unwrap` too, so a resumed run gets back what a killed one
    /// registered.
    #[arg(long)]
    track: bool,
}

impl SidecarsArgs {
    fn tracking(&self) -> Tracking {
        if self.track {
            Tracking::BySidecarId
        } else {
            Tracking::Untracked
        }
    }

    fn durability(&self) -> Durability {
        if self.no_fsync {
            Durability::Cached
        } else {
            Durability::Flushed
        }
    }
}

/// `open`.
#[derive(Args)]
pub struct OpenArgs {
    /// The sidecar (a JSON file).
    sidecar: PathBuf,
    /// The sidecar's id when it has no `id` field (default: the file name without
    /// `.json`, as `sidecars` names the files of a directory).
    #[arg(long)]
    id: Option<String>,
    /// Another name for a sidecar field, OURS=THEIRS (repeatable).
    #[arg(long = "field", value_name = "OURS=THEIRS", value_parser = parse_pair)]
    fields: Vec<(String, String)>,
    #[command(flatten)]
    legacy: LegacyArgs,
    /// Refuse legacy sidecars (seed 003 step 3, after the migration).
    #[arg(long, env = "COFFER_MIGRATE_CUTOVER")]
    cutover: bool,
    /// Decrypt this blob (AES-GCM, nonce first) with the data key and write the
    /// plaintext to stdout, instead of printing the data key.
    #[arg(long, value_name = "FILE")]
    blob: Option<PathBuf>,
}

pub async fn run(global: &Globals, command: MigrateCommand) -> anyhow::Result<ExitCode> {
    match command {
        MigrateCommand::Inventory(args) => inventory(global, args),
        MigrateCommand::Sidecars(args) => sidecars(global, args).await,
        MigrateCommand::Open(args) => open_one(global, args).await,
        MigrateCommand::Verify(args) => verify::run(global, args).await,
    }
}

#[derive(Serialize)]
struct Inventory {
    total: usize,
    by_provider: std::collections::BTreeMap<String, u64>,
    unreadable: Vec<Problem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ids: Vec<String>,
}

#[derive(Serialize)]
struct Problem {
    id: String,
    reason: String,
}

fn inventory(global: &Globals, args: InventoryArgs) -> anyhow::Result<ExitCode> {
    let (inputs, _) = args.source.read()?;
    let report = Inventory {
        total: inputs.sidecars.len() + inputs.unreadable.len(),
        by_provider: sidecar::count_by_provider(&inputs.sidecars),
        unreadable: inputs
            .unreadable
            .iter()
            .map(|u| Problem {
                id: u.origin.to_string(),
                reason: u.reason.clone(),
            })
            .collect(),
        ids: if args.ids {
            inputs.sidecars.iter().map(|s| s.id.clone()).collect()
        } else {
            Vec::new()
        },
    };
    if global.json {
        print_json(&report)?;
    } else {
        print_line(&format!("{} sidecars", report.total))?;
        for (provider, count) in &report.by_provider {
            print_line(&format!("  {count:>8}  {provider}"))?;
        }
        print_line(&format!("  {:>8}  unreadable", report.unreadable.len()))?;
        for problem in &report.unreadable {
            print_line(&format!("    {}: {}", problem.id, problem.reason))?;
        }
        for id in &report.ids {
            print_line(id)?;
        }
    }
    Ok(if report.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Serialize)]
struct RunReport {
    this_run: progress::Counts,
    journal: journal::Totals,
    seconds: f64,
    failures: Vec<Problem>,
}

async fn sidecars(global: &Globals, args: SidecarsArgs) -> anyhow::Result<ExitCode> {
    let (inputs, names) = args.source.read()?;
    let out = match (inputs.lines, &args.out) {
        (true, None) => bail!("a JSON-lines input needs --out FILE for the migrated lines"),
        (false, Some(_)) => {
            bail!("--out is for JSON-lines input; a directory is rewritten in place")
        }
        (_, out) => out.clone(),
    };
    let has_legacy = inputs
        .sidecars
        .iter()
        .any(|s| matches!(s.provider, sidecar::Provider::Legacy { .. }));
    if has_legacy && args.key.is_none() {
        bail!("legacy sidecars need --key, the Coffer key to wrap their data keys under");
    }
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&args.source.from));
    let journal = Journal::open(&journal_path).await?;
    let from = std::fs::canonicalize(&args.source.from)?;
    journal.bind("from", &from.display().to_string()).await?;
    journal
        .bind("key", args.key.as_deref().unwrap_or("-"))
        .await?;
    // A journal's sidecars are all tracked or none: a resume cannot change that.
    let tracking = match args.tracking() {
        Tracking::Untracked => "untracked",
        Tracking::BySidecarId => "tracked by sidecar id",
    };
    journal.bind("tracking", tracking).await?;

    // A previous run's committed rewrites are finished first, without Coffer.
    let pending = journal.wrapped().await?;
    if !pending.is_empty() && !inputs.lines {
        let files = inputs
            .sidecars
            .iter()
            .filter_map(|s| match (&s.origin, pending.get(&s.id)) {
                (sidecar::Origin::File(path), Some(text)) => {
                    Some((s.id.clone(), path.clone(), text.clone()))
                }
                _ => None,
            })
            .collect();
        let ids = engine::write_sidecars(files, args.durability()).await?;
        journal.record_done(&ids).await?;
    }
    let finished = journal.finished().await?;
    let unreadable: Vec<_> = inputs
        .unreadable
        .iter()
        .filter(|u| !finished.contains(&u.id))
        .map(|u| (u.id.clone(), u.origin.to_string(), u.reason.clone()))
        .collect();
    let todo: Vec<_> = inputs
        .sidecars
        .into_iter()
        .filter(|s| !finished.contains(&s.id) && !pending.contains_key(&s.id))
        .collect();
    let progress = Arc::new(Progress::new(todo.len() + unreadable.len()));
    journal.record_outcome(Outcome::Failed, &unreadable).await?;
    progress.add_failed(unreadable.len());
    eprintln!(
        "migrating {} sidecars ({} already final in {})",
        todo.len(),
        finished.len(),
        journal_path.display()
    );

    let settings = Settings {
        target_key: args.key.clone(),
        context: pairs_to_map(args.legacy.context.clone(), "context")?,
        context_id: args.legacy.context_id.clone(),
        batch_size: usize::from(args.batch_size),
        concurrency: usize::from(args.concurrency),
        rate: args.rate,
        retries: args.retries,
        durability: args.durability(),
        tracking: args.tracking(),
    };
    let engine = Arc::new(Engine::new(
        global.client()?,
        journal,
        names.clone(),
        args.legacy.key()?,
        settings,
        Arc::clone(&progress),
        if inputs.lines {
            Output::Lines
        } else {
            Output::InPlace
        },
    ));
    let ticker = tokio::spawn(Arc::clone(&progress).report_every());
    let outcome = engine.run(todo).await;
    ticker.abort();
    eprintln!("\r{}", progress.line());
    outcome?;
    if let Some(out) = out {
        write_lines(&engine.journal, &args.source.from, &names, &out).await?;
    }

    let totals = engine.journal.totals().await?;
    let failures = engine.journal.failures().await?;
    let report = RunReport {
        this_run: progress.counts(),
        seconds: progress.elapsed().as_secs_f64(),
        failures: failures
            .into_iter()
            .map(|(id, reason)| Problem { id, reason })
            .collect(),
        journal: totals,
    };
    if global.json {
        print_json(&report)?;
    } else {
        let run = report.this_run;
        print_line(&format!(
            "this run: {} migrated, {} skipped, {} failed ({} retries) in {:.1}s",
            run.migrated, run.skipped, run.failed, run.retries, report.seconds
        ))?;
        let total = &report.journal;
        print_line(&format!(
            "journal: {} migrated, {} skipped, {} failed",
            total.done, total.skipped, total.failed
        ))?;
        for problem in &report.failures {
            print_line(&format!("failed {}: {}", problem.id, problem.reason))?;
        }
    }
    Ok(if report.journal.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn default_journal(from: &Path) -> PathBuf {
    let mut name = from
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "sidecars".into());
    name.push(".migrate.db");
    from.with_file_name(name)
}

/// Writes the JSON-lines output: each input line, replaced by its migrated sidecar where
/// the journal has one; then the journal counts those as done.
async fn write_lines(
    journal: &Journal,
    from: &Path,
    names: &FieldNames,
    out: &Path,
) -> anyhow::Result<()> {
    let mut migrated = journal.migrated().await?;
    let wrapped = journal.wrapped().await?;
    let newly: Vec<String> = wrapped.keys().cloned().collect();
    migrated.extend(wrapped);
    let text =
        std::fs::read_to_string(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut output = String::with_capacity(text.len());
    for line in text.lines() {
        let replaced = sidecar::parse(line.as_bytes(), names, None)
            .ok()
            .and_then(|s| migrated.get(&s.id).cloned());
        output.push_str(replaced.as_deref().unwrap_or(line));
        output.push('\n');
    }
    output.pop();
    engine::replace_file(out, output.as_bytes(), Durability::Flushed)?;
    journal.record_done(&newly).await
}

async fn open_one(global: &Globals, args: OpenArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.sidecar)
        .with_context(|| format!("cannot read {}", args.sidecar.display()))?;
    let id = args.id.clone().unwrap_or_else(|| {
        args.sidecar
            .with_extension("")
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let sidecar = sidecar::parse(&bytes, &FieldNames::mapped(&args.fields)?, Some(id))
        .map_err(anyhow::Error::msg)?;
    let cutover = if args.cutover {
        Cutover::CofferOnly
    } else {
        Cutover::DualRead
    };
    let context = args.legacy.context_for(&sidecar.id)?;
    let key = open::data_key(
        &global.client()?,
        &sidecar,
        args.legacy.key()?.as_ref(),
        cutover,
        &context,
    )
    .await?;
    match args.blob {
        Some(blob) => {
            let sealed =
                std::fs::read(&blob).with_context(|| format!("cannot read {}", blob.display()))?;
            let plaintext = coffer_crypto::legacy::open_aes_gcm(&key, &sealed, b"")
                .with_context(|| format!("cannot decrypt {}", blob.display()))?;
            super::print_bytes(plaintext.expose_secret())?;
        }
        None => print_line(&zeroize::Zeroizing::new(super::encode_b64(
            key.expose_secret(),
        )))?,
    }
    Ok(ExitCode::SUCCESS)
}
