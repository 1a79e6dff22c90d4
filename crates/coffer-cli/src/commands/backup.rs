//! `coffer backup`: create (the server makes the bundle), verify (offline), restore
//! (offline, into an empty store). Formats and who can open a bundle:
//! `coffer_core::backup::bundle` and docs/operations.md ("Backup and restore").

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use coffer_core::backup::bundle::{self, BundleHeader};
use coffer_server::Config;
use coffer_server::config::redacted_url;
use coffer_server::restore::{self, ToolUnseal};

use super::{Globals, print_json, print_line};

/// `coffer backup …`.
#[derive(Subcommand)]
pub enum BackupCommand {
    /// Ask the server for an encrypted bundle of its whole store (admin token with
    /// admin:backup); writes OUT and its manifest OUT.sha256 and prints the manifest.
    Create(CreateArgs),
    /// Check a bundle without a server: manifest, structure and SHA-256 trailer; with
    /// --config also its MAC, under this deployment's custody. Exit 1 if refused.
    Verify(VerifyArgs),
    /// Restore a bundle into this deployment's empty store (offline: no server runs on
    /// an empty store). The server's next start runs known-answer checks before ready.
    Restore(RestoreArgs),
}

/// `coffer backup create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Where to write the bundle (refused if it exists).
    out: PathBuf,
}

/// Custody and manifest options of verify and restore.
#[derive(Args)]
pub struct OpenArgs {
    /// The manifest (default: BUNDLE.sha256 beside the bundle).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Passphrase custody: a file (mode 0600) holding the passphrase (default: the
    /// configuration's custody.passphrase_file).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// Shamir custody: a file (mode 0600) holding one share; repeat up to the threshold.
    #[arg(long = "share-file")]
    share_files: Vec<PathBuf>,
}

/// `coffer backup verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The bundle.
    bundle: PathBuf,
    /// The deployment's configuration: also open the bundle with its custody (MAC).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    open: OpenArgs,
}

/// `coffer backup restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The bundle.
    bundle: PathBuf,
    /// The deployment's configuration (custody and database_url).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    open: OpenArgs,
}

/// Runs a `coffer backup` command.
pub async fn run(global: &Globals, command: BackupCommand) -> anyhow::Result<ExitCode> {
    match command {
        BackupCommand::Create(args) => create(global, args).await,
        BackupCommand::Verify(args) => verify(global, args).await,
        BackupCommand::Restore(args) => restore_cmd(global, args).await,
    }
}

fn manifest_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no file name", path.display()))
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn summary(header: &BundleHeader) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = header
        .counts
        .iter()
        .map(|(table, n)| (table.clone(), serde_json::json!(n)))
        .collect();
    serde_json::json!({
        "created": header.created_at.to_rfc3339(),
        "custody": header.custody,
        "audit_size": header.audit_size,
        "checkpoint_size": header.checkpoint_size,
        "counts": counts,
    })
}

fn describe(header: &BundleHeader) -> String {
    let count = |table: &str| {
        header
            .counts
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n)
    };
    format!(
        "made {} under {} custody: {} tenants, {} keys, {} key versions, {} aliases, {} tokens, {} tracked data keys, audit log of {} entries (newest checkpoint: {})",
        header.created_at.to_rfc3339(),
        header.custody,
        count("tenants"),
        count("keys"),
        count("key_versions"),
        count("aliases"),
        count("tokens"),
        count("tracked_keys"),
        header.audit_size,
        header
            .checkpoint_size
            .map_or_else(|| "none".to_owned(), |s| format!("{s} entries")),
    )
}

async fn create(global: &Globals, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let name = file_name(&args.out)?;
    let manifest_file = manifest_path(&args.out);
    if args.out.exists() || manifest_file.exists() {
        bail!(
            "{} or its manifest already exists: choose a new name",
            args.out.display()
        );
    }
    let bytes = global.client()?.backup().await?;
    // Checked before anything is written: a damaged answer leaves no file behind.
    let header = bundle::inspect(&bytes).context("the server's answer is not a sound bundle")?;
    let manifest = bundle::manifest(&bytes, &name);
    write_new(&args.out, &bytes)?;
    write_new(&manifest_file, manifest.as_bytes())?;
    if global.json {
        let mut value = summary(&header);
        value["bundle"] = serde_json::json!(args.out.display().to_string());
        value["sha256"] = serde_json::json!(bundle::file_hash(&bytes));
        value["bytes"] = serde_json::json!(bytes.len());
        print_json(&value)?;
    } else {
        print_line(manifest.trim_end())?;
        eprintln!("{}: {}", args.out.display(), describe(&header));
        eprintln!("manifest: {}", manifest_file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The bundle's bytes, checked against its manifest.
fn read_checked(bundle_path: &Path, manifest: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(bundle_path)
        .with_context(|| format!("cannot read {}", bundle_path.display()))?;
    let manifest_file = manifest.map_or_else(|| manifest_path(bundle_path), Path::to_owned);
    let text = std::fs::read_to_string(&manifest_file).with_context(|| {
        format!(
            "cannot read the manifest {} (give --manifest FILE)",
            manifest_file.display()
        )
    })?;
    bundle::check_manifest(&text, &bytes)?;
    Ok(bytes)
}

fn tool_unseal(open: &OpenArgs) -> ToolUnseal {
    ToolUnseal {
        passphrase_file: open.passphrase_file.clone(),
        share_files: open.share_files.clone(),
    }
}

async fn verify(global: &Globals, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_checked(&args.bundle, args.open.manifest.as_deref())?;
    let header = bundle::inspect(&bytes)?;
    let mac = match &args.config {
        Some(file) => {
            let config = Config::load(Some(file))?;
            let (header, snapshot) =
                restore::open_bundle(&config, &tool_unseal(&args.open), &bytes).await?;
            let (mut inside, mut said) = (snapshot.counts(), header.counts.clone());
            inside.sort();
            said.sort();
            anyhow::ensure!(
                inside == said,
                "the bundle's header and contents disagree on its row counts"
            );
            true
        }
        None => false,
    };
    if global.json {
        let mut value = summary(&header);
        value["status"] = serde_json::json!("ok");
        value["mac_checked"] = serde_json::json!(mac);
        print_json(&value)?;
    } else {
        print_line(&format!(
            "ok: manifest, structure and SHA-256 trailer check out{}",
            if mac {
                "; the MAC verifies under this deployment's custody"
            } else {
                " (MAC not checked: give --config to open it with custody)"
            }
        ))?;
        eprintln!("{}: {}", args.bundle.display(), describe(&header));
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore_cmd(global: &Globals, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_checked(&args.bundle, args.open.manifest.as_deref())?;
    let config = Config::load(args.config.as_deref())?;
    let header = restore::restore(&config, &tool_unseal(&args.open), &bytes).await?;
    if global.json {
        let mut value = summary(&header);
        value["status"] = serde_json::json!("restored");
        value["database"] = serde_json::json!(redacted_url(&config.database_url));
        print_json(&value)?;
    } else {
        print_line(&format!(
            "restored into {}: {}",
            redacted_url(&config.database_url),
            describe(&header)
        ))?;
        eprintln!("Start the server: it runs the known-answer checks before /readyz answers 200.");
    }
    Ok(ExitCode::SUCCESS)
}
