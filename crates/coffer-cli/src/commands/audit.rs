//! `coffer audit`: export, checkpoint, key, verify (offline or online), tail.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use coffer_audit::checkpoint::CheckpointVerifier;
use coffer_audit::entry::ExportedEntry;
use coffer_audit::merkle::{Hash, verify_consistency};
use coffer_audit::verify::verify_log;
use coffer_core::HumanDuration;

use super::{Globals, or_dash, print_json, print_line, table};

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
    /// Most entries.
    #[arg(long, default_value_t = 100_000)]
    limit: u64,
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
}

/// Runs `coffer audit …`.
pub async fn run(global: &Globals, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    match command {
        AuditCommand::Export(args) => {
            super::print_bytes(
                client
                    .audit_entries(args.from, args.limit)
                    .await?
                    .as_bytes(),
            )?;
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
    let (log, note) = if args.online {
        // The checkpoint first: entries read after it cover at least its size, so a
        // checkpoint signed in between cannot look like a cut tail.
        let note = client.audit_checkpoint().await?;
        (client.audit_entries(0, 100_000).await?, note)
    } else {
        let log = read(args.log.as_ref().context("--log is required offline")?)?;
        let note = read(
            args.checkpoint
                .as_ref()
                .context("--checkpoint is required offline")?,
        )?;
        (log, note)
    };
    let outcome = verify_log(&log, &note, &verifier);
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
    let log = global.client()?.audit_entries(0, 100_000).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let since = args.since.map(|d| now - d.get().as_millis() as i64);
    let entries: Vec<ExportedEntry> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<ExportedEntry>(line).ok())
        .filter(|e| since.is_none_or(|t| e.entry.at >= t))
        .filter(|e| {
            args.key
                .as_ref()
                .is_none_or(|k| e.entry.key.as_ref() == Some(k))
        })
        .filter(|e| args.op.as_ref().is_none_or(|op| &e.entry.op == op))
        .collect();
    let shown = &entries[entries.len().saturating_sub(args.lines)..];
    if global.json {
        return print_json(&shown.iter().collect::<Vec<_>>());
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
