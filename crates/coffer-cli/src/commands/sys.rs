//! `coffer status` and `coffer unseal`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use coffer_api::B64Secret;
use coffer_api::admin::{SealStatusView, UnsealRequest};
use zeroize::Zeroizing;

use super::{Globals, print_json, print_line};

/// `status`.
#[derive(Args)]
#[command(after_help = "Exit status: 0 when the server is unsealed and ready, 1 otherwise.")]
pub struct StatusArgs {
    /// Address of the operations port (health, readiness, metrics).
    #[arg(long, env = "COFFER_OPS_ADDR", default_value = "http://127.0.0.1:9909")]
    ops_addr: String,
}

/// `unseal`.
#[derive(Args)]
#[command(
    after_help = "With neither flag, the share is read from stdin (without echo \
                        on a terminal)."
)]
pub struct UnsealArgs {
    /// A Shamir share, coffer-share-v1:… (visible in `ps` and shell history; prefer
    /// stdin).
    #[arg(long, conflicts_with = "passphrase_file")]
    share: Option<String>,
    /// A file (mode 0600) holding the passphrase; one trailing newline is dropped.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// A file (mode 0600) holding the unseal token, for a server configured with
    /// `unseal.token_file`.
    #[arg(long, value_name = "FILE", env = "COFFER_UNSEAL_TOKEN_FILE")]
    unseal_token_file: Option<PathBuf>,
}

/// Prints seal status and readiness.
pub async fn status(global: &Globals, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let seal = client.seal_status().await?;
    // Readiness is reported even when the operations port cannot be reached: the seal
    // status is still worth showing.
    let ready = client.readyz(&args.ops_addr).await;
    let healthy = !seal.sealed && matches!(ready, Ok(true));
    if let Err(error) = &ready {
        eprintln!(
            "warning: readiness check on {} failed: {error}",
            args.ops_addr
        );
    }
    if global.json {
        let ready = ready.as_ref().ok().copied();
        print_json(&serde_json::json!({ "seal_status": seal, "ready": ready }))?;
    } else {
        print_line(&seal_lines(&seal))?;
        match ready {
            Ok(ready) => print_line(&format!("ready:     {}", yes_no(ready)))?,
            // The warning was printed above.
            Err(_) => print_line("ready:     unknown")?,
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Submits a share or the passphrase; prints the seal status after it.
pub async fn unseal(global: &Globals, args: UnsealArgs) -> anyhow::Result<ExitCode> {
    let request = match (args.share, args.passphrase_file) {
        (Some(share), _) => UnsealRequest {
            share: Some(share_secret(Zeroizing::new(share))?),
            passphrase: None,
        },
        (None, Some(path)) => UnsealRequest {
            share: None,
            passphrase: Some(read_passphrase(&path)?),
        },
        (None, None) => UnsealRequest {
            share: Some(share_secret(read_share_from_stdin()?)?),
            passphrase: None,
        },
    };
    let unseal_token = match &args.unseal_token_file {
        Some(path) => Some(read_secret_text(path, "unseal token")?),
        None => None,
    };
    let seal = global
        .client()?
        .unseal_with_token(&request, unseal_token.as_deref().map(String::as_str))
        .await?;
    if global.json {
        print_json(&seal)?;
    } else {
        print_line(&seal_lines(&seal))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn seal_lines(seal: &SealStatusView) -> String {
    let mut text = format!(
        "sealed:    {}\nmethod:    {}",
        yes_no(seal.sealed),
        seal.method
    );
    if seal.sealed && seal.threshold > 0 {
        text.push_str(&format!(
            "\nprogress:  {}/{}",
            seal.progress, seal.threshold
        ));
    }
    text
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// The share's text (`coffer-share-v1:…`), trimmed, as UTF-8 bytes.
fn share_secret(text: Zeroizing<String>) -> anyhow::Result<B64Secret> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("no share given");
    }
    Ok(B64Secret::new(trimmed.as_bytes().to_vec()))
}

/// One line from stdin. On a terminal, echo is turned off with `stty` for the read so
/// the share does not stay on screen (no extra dependency for a one-line prompt).
fn read_share_from_stdin() -> anyhow::Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let _echo = if stdin.is_terminal() {
        eprint!("unseal share: ");
        std::io::stderr().flush().ok();
        EchoOff::new()
    } else {
        None
    };
    let mut line = Zeroizing::new(String::new());
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read stdin")?;
    Ok(line)
}

/// Terminal echo off until dropped.
struct EchoOff;

impl EchoOff {
    fn new() -> Option<Self> {
        stty("-echo").then_some(Self)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        stty("echo");
        eprintln!();
    }
}

fn stty(setting: &str) -> bool {
    std::process::Command::new("stty")
        .arg(setting)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// Reads the passphrase file, refusing one that others can read (house rule for
/// secret files).
fn read_passphrase(path: &Path) -> anyhow::Result<B64Secret> {
    check_private(path)?;
    let mut bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    for ending in [&b"\r\n"[..], b"\n"] {
        if bytes.ends_with(ending) {
            let keep = bytes.len() - ending.len();
            bytes.truncate(keep);
            break;
        }
    }
    if bytes.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(B64Secret::new(bytes.to_vec()))
}

/// Refuses a secret file others can read (mode 0600 or stricter).
#[cfg(unix)]
pub(crate) fn check_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_private(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// A secret file's text (mode 0600, one trailing newline dropped).
fn read_secret_text(path: &Path, what: &str) -> anyhow::Result<Zeroizing<String>> {
    let secret = read_passphrase(path)?;
    let text = std::str::from_utf8(secret.expose_secret())
        .with_context(|| format!("the {what} in {} is not UTF-8", path.display()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_passphrase_file_must_be_private_and_loses_its_newline() {
        let dir = std::env::temp_dir().join(format!("coffer-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passphrase");
        std::fs::write(&path, b"correct horse\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_passphrase(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_passphrase(&path).unwrap().expose_secret(),
            b"correct horse"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
