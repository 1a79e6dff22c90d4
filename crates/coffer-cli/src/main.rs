//! `coffer`: the operator's command-line tool for Coffer's native API.
//!
//! Layout:
//! - `main.rs` — the [`Cli`] (global flags + one [`Command`]), and [`run`], the one
//!   dispatcher. A new command is an enum variant here and a module under
//!   `commands/`: the server's `serve`, `dev` and `init` join the same way
//!   (`commands/server.rs`).
//! - `commands.rs` — the global flags ([`commands::Globals`]) and what every command
//!   shares: `k=v` pairs, input from a file / argument / stdin, JSON and table output.
//! - `commands/*.rs` — one file per command group: `keys`, `envelope` (encrypt,
//!   decrypt, datakey, rewrap), `signing` (sign, verify, mac, verify-mac), `tenant`,
//!   `token`, `sys` (status, unseal), `rotate` (the rotation saga for operators, with
//!   its own submodules under `commands/rotate/`), `migrate` (legacy sidecars, under
//!   `commands/migrate/`), `backup` (create, verify, restore).
//!
//! Output contract: stdout carries the result only (a ciphertext, a signature, a
//! table), so scripts can capture it; metadata such as `key_version=…` goes to stderr.
//! `--json` prints the API's answer instead. A failure is one `error: …` line on stderr
//! and exit code 1 (2 for usage errors, as clap does).

mod commands;

/// mimalloc rather than glibc's malloc: the service allocates and frees many small
/// buffers per request on every worker thread, and glibc's free-list work
/// (`malloc_consolidate`, `unlink_chunk`, `_int_free`) stood out in profiles of the
/// request path (PERFORMANCE.md, issue 15). Secrets do not live in this heap: key
/// material has its own locked pages (`coffer_crypto::secret::locked`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{
    Globals, audit, backup, config, doctor, envelope, keys, migrate, rotate, server, signing, sys,
    tenant, token,
};

/// Coffer key management service: operator's tool.
#[derive(Parser)]
#[command(name = "coffer", version, about)]
struct Cli {
    #[command(flatten)]
    global: Globals,
    #[command(subcommand)]
    command: Command,
}

/// Every top-level command.
#[derive(Subcommand)]
enum Command {
    /// Create, list, show, rotate, enable, disable and delete keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Encrypt up to 4 KiB under a key (or RSA-OAEP with --algorithm); prints the
    /// ciphertext (base64).
    Encrypt(envelope::EncryptArgs),
    /// Decrypt a ciphertext; writes the raw plaintext to stdout.
    Decrypt(envelope::DecryptArgs),
    /// Generate a data key, wrapped under a key (and in plaintext unless told not to).
    Datakey(envelope::DatakeyArgs),
    /// Re-encrypt a ciphertext under another key or the key's primary version.
    Rewrap(envelope::RewrapArgs),
    /// Sign a message, a digest or an ML-DSA μ; prints the signature (base64).
    Sign(signing::SignArgs),
    /// Verify a signature; prints valid or invalid.
    Verify(signing::VerifyArgs),
    /// Compute an HMAC tag; prints it (base64).
    Mac(signing::MacArgs),
    /// Verify an HMAC tag; prints valid or invalid.
    VerifyMac(signing::VerifyMacArgs),
    /// Create, list, show, set and shred tenants (admin token).
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Mint, attenuate (offline) and revoke tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Show seal status and readiness.
    Status(sys::StatusArgs),
    /// Submit an unseal share or the passphrase.
    Unseal(sys::UnsealArgs),
    /// Audit log: export, checkpoints, offline and online verification, tail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Health checks: key expiry, store, custody, clock skew, audit (exit 0/1/2).
    Doctor(doctor::DoctorArgs),
    /// Legacy migration: inventory, rewrap sidecars with a journal, dual read, verify.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Encrypted backups: create (from the server), verify and restore (offline).
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Rotation saga: preflight, stage, validate, all, rollback, resume, status, verify.
    Rotate(rotate::RotateArgs),
    /// Start everything locally on the embedded default, ready to use.
    Dev(server::DevArgs),
    /// Run the server from a configuration file.
    Serve(server::ServeArgs),
    /// Initialise a new deployment (custody, schema, first admin token).
    Init(server::InitArgs),
    /// A configuration file checked, or the values a running server uses.
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Before anything holds a secret (unseal keys, plaintexts, tokens): no core dumps.
    if let Err(error) = coffer_server::hardening::forbid_core_dumps() {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    // Usage errors exit here with clap's message and code 2.
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` puts the whole cause chain on one line.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command. Commands answer their own exit code (`verify` exits 1 on an
/// invalid signature without it being an error).
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = &cli.global;
    match cli.command {
        Command::Keys(command) => keys::run(global, command).await,
        Command::Encrypt(args) => envelope::encrypt(global, args).await,
        Command::Decrypt(args) => envelope::decrypt(global, args).await,
        Command::Datakey(args) => envelope::datakey(global, args).await,
        Command::Rewrap(args) => envelope::rewrap(global, args).await,
        Command::Sign(args) => signing::sign(global, args).await,
        Command::Verify(args) => signing::verify(global, args).await,
        Command::Mac(args) => signing::mac(global, args).await,
        Command::VerifyMac(args) => signing::verify_mac(global, args).await,
        Command::Tenant(command) => tenant::run(global, command).await,
        Command::Token(command) => token::run(global, command).await,
        Command::Status(args) => sys::status(global, args).await,
        Command::Unseal(args) => sys::unseal(global, args).await,
        Command::Audit(command) => audit::run(global, command).await,
        Command::Doctor(args) => doctor::run(global, args).await,
        Command::Migrate(command) => migrate::run(global, command).await,
        Command::Rotate(args) => rotate::run(global, args).await,
        Command::Backup(command) => backup::run(global, command).await,
        Command::Dev(args) => server::dev(args).await,
        Command::Serve(args) => server::serve(args).await,
        Command::Init(args) => server::init(global, args).await,
        Command::Config(command) => config::run(global, command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Parses a command line the way `main` does, for the command modules' tests.
    pub(crate) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("coffer").chain(args.iter().copied()))
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let cli = parse(&["keys", "list", "--json", "--addr", "http://h:1"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.addr, "http://h:1");
        let cli = parse(&["--json", "tenant", "list"]).unwrap();
        assert!(cli.global.json);
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        let err = parse(&["keys", "create"]).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(
            parse(&["token", "mint"]).is_err(),
            "--tenant or --admin is required"
        );
        assert!(parse(&["token", "mint", "--tenant", "t", "--admin"]).is_err());
        assert!(parse(&["encrypt", "--key", "k", "--in", "f", "--plaintext", "p"]).is_err());
    }
}
