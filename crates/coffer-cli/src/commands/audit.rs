//! `coffer audit`: export, checkpoint, key, verify (offline or online), tail. Export,
//! tail and online verification read the whole log, page by page (`pages`).

mod pages;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use coffer_audit::checkpoint::CheckpointVerifier;
use coffer_audit::entry::ExportedEntry;
use coffer_audit::merkle::{Hash, verify_consistency};
use coffer_audit::verify::{LogVerifier, VerifiedLog, VerifyFailure, verify_log};
use coffer_core::HumanDuration;

use super::{Globals, or_dash, print_json, print_line, table};
use pages::{PageArgs, Pages};

/// `coffer audit …`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Write the log as JSON lines to stdout (admin token).
    Export(ExportArgs),
    /// Print the newest signed checkpoint (`--new` signs one now; admin token).
    Checkpoint(CheckpointArgs),
    /// Print the checkpoint verifier key.
    Key,
    /// Verify a log against a checkpoint: offline from files, or `--online` against the
    /// server. Exit 0 when it matches, 1 naming the first bad entry when it does not.
    Verify(VerifyArgs),
    /// Show recent entries, filtered (admin token).
    Tail(TailArgs),
}

/// `coffer audit export`.
#[derive(Args)]
pub struct ExportArgs {
    /// First index.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// Most entries (default: every entry to the end of the log).
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    page: PageArgs,
}

/// `coffer audit checkpoint`.
#[derive(Args)]
pub struct CheckpointArgs {
    /// Sign a new checkpoint now.
    #[arg(long)]
    new: bool,
}

/// `coffer audit verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// Exported log (JSON lines), for offline verification.
    #[arg(long, required_unless_present = "online")]
    log: Option<PathBuf>,
    /// A signed checkpoint (offline: the one to verify against; online: an older trusted
    /// one the server's newest must extend).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The verifier key (`name+hash+key`); online, default: ask the server.
    #[arg(long)]
    key: Option<String>,
    /// Verify the live log and the server's newest checkpoint.
    #[arg(long, conflicts_with = "log")]
    online: bool,
    #[command(flatten)]
    page: PageArgs,
}

/// `coffer audit tail`.
#[derive(Args)]
pub struct TailArgs {
    /// Only entries newer than this, e.g. `1h`.
    #[arg(long)]
    since: Option<HumanDuration>,
    /// Only this key (id or alias as given).
    #[arg(long)]
    key: Option<String>,
    /// Only this operation, e.g. `unwrap`.
    #[arg(long)]
    op: Option<String>,
    /// Show the last N matching entries.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    #[command(flatten)]
    page: PageArgs,
}

/// Runs `coffer audit …`.
pub async fn run(global: &Globals, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        AuditCommand::Export(args) => {
            // Each page is written as it arrives: the export never holds the whole log.
            let mut pages = Pages::new(&client, args.from, args.limit, args.page);
            while let Some(page) = pages.next().await? {
                super::print_bytes(page.as_bytes())?;
            }
        }
        AuditCommand::Checkpoint(args) => {
            let note = if args.new {
                client.audit_new_checkpoint().await?
            } else {
                client.audit_checkpoint().await?
            };
            super::print_bytes(note.as_bytes())?;
        }
        AuditCommand::Key => print_line(&client.audit_key().await?)?,
        AuditCommand::Verify(args) => return verify(global, args).await,
        AuditCommand::Tail(args) => tail(global, args).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn verify(global: &Globals, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let key = match (&args.key, args.online) {
        (Some(key), _) => key.clone(),
        (None, true) => client.audit_key().await?,
        (None, false) => bail!("--key is required offline (get it once with `coffer audit key`)"),
    };
    let verifier = CheckpointVerifier::parse(&key).context("the verifier key does not parse")?;
    let outcome = if args.online {
        // The checkpoint first: entries read after it cover at least its size, so a
        // checkpoint signed in between cannot look like a cut tail.
        let note = client.audit_checkpoint().await?;
        verify_pages(Pages::new(&client, 0, None, args.page), &note, &verifier).await?
    } else {
        let log = read(args.log.as_ref().context("--log is required offline")?)?;
        let note = read(
            args.checkpoint
                .as_ref()
                .context("--checkpoint is required offline")?,
        )?;
        verify_log(&log, &note, &verifier)
    };
    let consistency = match (args.online, &args.checkpoint, &outcome) {
        (true, Some(old), Ok(verified)) => {
            Some(check_extends(&client, &verifier, &read(old)?, verified.checkpoint.size).await)
        }
        _ => None,
    };
    let report = match (&outcome, &consistency) {
        (Err(failure), _) => {
            serde_json::json!({"valid": false, "first_bad_index": failure.first_bad_index, "reason": failure.reason})
        }
        (Ok(_), Some(Err(reason))) => {
            serde_json::json!({"valid": false, "first_bad_index": null, "reason": reason})
        }
        (Ok(v), _) => {
            serde_json::json!({"valid": true, "entries": v.entries, "checkpoint_size": v.checkpoint.size})
        }
    };
    if global.json {
        print_json(&report)?;
    } else if report["valid"] == true {
        print_line(&format!(
            "ok: {} entries; the checkpoint of {} entries matches",
            report["entries"], report["checkpoint_size"]
        ))?;
    } else {
        let index = report["first_bad_index"]
            .as_u64()
            .map_or_else(|| "unknown".to_owned(), |i| i.to_string());
        print_line(&format!(
            "TAMPERED: first bad entry {index}: {}",
            report["reason"].as_str().unwrap_or("")
        ))?;
    }
    Ok(if report["valid"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Verifies the whole live log against `note`, a page at a time. The outer error is a
/// failed request; the inner one a log that does not match.
async fn verify_pages(
    mut pages: Pages<'_>,
    note: &str,
    verifier: &CheckpointVerifier,
) -> anyhow::Result<Result<VerifiedLog, VerifyFailure>> {
    let mut reader = match LogVerifier::new(note, verifier) {
        Ok(reader) => reader,
        Err(failure) => return Ok(Err(failure)),
    };
    while let Some(page) = pages.next().await? {
        for line in page.lines() {
            if let Err(failure) = reader.push(line) {
                return Ok(Err(failure));
            }
        }
    }
    Ok(reader.finish())
}

/// Checks that the server's tree of `new_size` extends an older trusted checkpoint.
async fn check_extends(
    client: &coffer_client::Client,
    verifier: &CheckpointVerifier,
    old_note: &str,
    new_size: u64,
) -> Result<(), String> {
    let old = verifier
        .verify(old_note)
        .map_err(|e| format!("the older checkpoint: {e}"))?;
    if old.size > new_size {
        return Err(format!(
            "the server's log ({new_size}) is shorter than the older checkpoint ({}): truncated",
            old.size
        ));
    }
    let proof = client
        .audit_consistency(old.size, new_size)
        .await
        .map_err(|e| e.to_string())?;
    let hash = |v: &serde_json::Value| -> Option<Hash> { hex_decode(v.as_str()?) };
    let new_root = hash(&proof["new_root"]).ok_or("malformed proof")?;
    let hashes: Option<Vec<Hash>> = proof["proof"]
        .as_array()
        .ok_or("malformed proof")?
        .iter()
        .map(hash)
        .collect();
    verify_consistency(
        old.size,
        new_size,
        &old.root,
        &new_root,
        &hashes.ok_or("malformed proof")?,
    )
    .map_err(|_| {
        format!(
            "the log is not an extension of the checkpoint of {} entries: rewritten",
            old.size
        )
    })
}

fn hex_decode(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

async fn tail(global: &Globals, args: TailArgs) -> anyhow::Result<()> {
    let client = global.client()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let since = args.since.map(|d| now - d.get().as_millis() as i64);
    let wanted = |e: &ExportedEntry| {
        since.is_none_or(|t| e.entry.at >= t)
            && args
                .key
                .as_ref()
                .is_none_or(|k| e.entry.key.as_ref() == Some(k))
            && args.op.as_ref().is_none_or(|op| &e.entry.op == op)
    };
    // The newest entries are at the end of the log: read it all, keeping only the last
    // `lines` matches.
    let mut shown: VecDeque<ExportedEntry> = VecDeque::with_capacity(args.lines);
    let mut pages = Pages::new(&client, 0, None, args.page);
    while let Some(page) = pages.next().await? {
        let matches = page
            .lines()
            .filter_map(|line| serde_json::from_str::<ExportedEntry>(line).ok())
            .filter(|e| wanted(e));
        for entry in matches {
            if shown.len() == args.lines {
                shown.pop_front();
            }
            if args.lines > 0 {
                shown.push_back(entry);
            }
        }
    }
    if global.json {
        return print_json(&shown);
    }
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|e| {
            vec![
                e.index.to_string(),
                e.entry.at.to_string(),
                e.entry.op.clone(),
                or_dash(e.entry.key.as_deref()),
                e.entry
                    .version
                    .map_or_else(|| "-".to_owned(), |v| v.to_string()),
                e.entry.outcome.clone(),
                e.entry.principal.clone(),
                e.entry.request_id.clone(),
            ]
        })
        .collect();
    print_line(&table(
        &[
            "INDEX",
            "AT (ms)",
            "OP",
            "KEY",
            "VERSION",
            "OUTCOME",
            "PRINCIPAL",
            "REQUEST",
        ],
        &rows,
    ))
}
