//! `coffer rotate …`: the rotation saga for operators (seed 000: recovery of a saga
//! that fails mid-way; seed 001: a rotation script with preflight, stage, validate,
//! rollback and all, named environments, production confirmation, dry runs and
//! evidence).
//!
//! Layout:
//! - `rotate.rs` — the flags, the production gate, and the dispatcher.
//! - `rotate/profile.rs` — `--env`: named environments from the profiles file.
//! - `rotate/session.rs` — every request goes through one place that prints it
//!   (redacted), records it as evidence and, unless `--dry-run`, performs it.
//! - `rotate/evidence.rs` — `evidence.jsonl` and `MANIFEST.sha256`.
//! - `rotate/checks.rs` — `preflight` and `references`.
//! - `rotate/saga.rs` — `stage`, `all`, `resume`, `rollback`, `status`, `verify`,
//!   `list`. The server runs a saga in its rotation worker and answers a start or
//!   resume with 202; these commands then poll the rotation until it settles.
//! - `rotate/watch.rs` — `status --watch`: the rewrap's progress bar.
//! - `rotate/smoke.rs` — `validate` (`rotate/attested.rs`: its attested checks);
//!   `rotate/corpus.rs` — `dual-unwrap`.
//! - `rotate/health.rs`, `rotate/hooks.rs` (with `hook_process.rs` and `scrub.rs`) —
//!   the profile's health-check URLs and hook commands (seed 001), run at their points
//!   of `preflight`, `stage`, `all`, `validate` and `rollback`.
//!
//! Exit status: 0 success (and a dry run whose local inputs are valid); 1 a failed
//! check, a failed step, a refused rollback, a violated invariant; 2 a usage error,
//! including a production change without `--confirm-production`.

mod attested;
mod checks;
mod corpus;
mod evidence;
mod health;
mod hook_process;
mod hooks;
mod profile;
mod saga;
mod scrub;
mod session;
mod smoke;
mod verification;
mod versions;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use coffer_client::Client;
use coffer_core::HumanDuration;

use self::evidence::Evidence;
use self::profile::Environment;
use self::session::{Disclosure, EvidenceLine, Mode, Outcome, Session, evidence_line};
use super::Globals;

/// `rotate`: the flags shared by every rotate command, and the command.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 on success and for a --dry-run whose local inputs \
                  (profiles, corpus) are valid; 1 when a check, step or invariant fails; \
                  2 for usage errors, including a production change without \
                  --confirm-production."
)]
pub struct RotateArgs {
    #[command(flatten)]
    options: RotateOptions,
    #[command(subcommand)]
    command: RotateCommand,
}

/// Flags of every `rotate` command, before or after its name.
#[derive(Args)]
pub struct RotateOptions {
    /// Target a named environment from the profiles file: its addr, ops_addr, and the
    /// token in the variable its token_env names. --addr, --token and --ops-addr are
    /// then not used.
    #[arg(long, value_enum, global = true)]
    env: Option<Environment>,
    /// The profiles file (default: ~/.config/coffer/cli.toml).
    #[arg(long, value_name = "FILE", global = true, requires = "env")]
    profiles: Option<PathBuf>,
    /// Required with --env production for stage, all, rollback and resume (dry runs
    /// included, so the rehearsed command is the one that runs).
    #[arg(long, global = true)]
    confirm_production: bool,
    /// Print each step and its request; perform none (no network call at all).
    #[arg(long, global = true)]
    dry_run: bool,
    /// Append one JSON line per step to DIR/evidence.jsonl and write
    /// DIR/MANIFEST.sha256 at the end.
    #[arg(long, value_name = "DIR", global = true)]
    evidence_dir: Option<PathBuf>,
    /// Show request bodies in printed commands and evidence (tokens never are).
    #[arg(long, global = true)]
    show_commands: bool,
    /// How long stage, all and resume wait for the server to run the saga (it answers
    /// at once and runs it in the background), e.g. 90s, 10m.
    #[arg(long, value_name = "DURATION", default_value = "10m", global = true)]
    wait_timeout: HumanDuration,
    /// Address of the operations port (readiness), without --env.
    #[arg(
        long,
        env = "COFFER_OPS_ADDR",
        default_value = "http://127.0.0.1:9909",
        global = true
    )]
    ops_addr: String,
}

/// The rotate commands.
#[derive(Subcommand)]
pub enum RotateCommand {
    /// Check the server is ready, the key enabled and its primary not recently used for
    /// untracked material; show its versions and users.
    Preflight(StartArgs),
    /// Start a rotation and run it up to, not past, the switch; prints its id.
    Stage(StageArgs),
    /// Smoke-test the key's primary version (wrap+unwrap, sign+verify, mac+verify).
    Validate(ValidateArgs),
    /// Preflight, then a rotation through every step, then validate.
    All(AllArgs),
    /// Undo a rotation that has not switched (after the switch: resume it).
    Rollback(IdArg),
    /// Run a rotation on from its next step.
    Resume(ResumeArgs),
    /// Show a rotation (--watch: a progress bar of its rewrap until it is past it).
    Status(StatusArgs),
    /// List the tenant's rotations, newest first.
    List(ListArgs),
    /// Check a rotation's invariants and audit anchoring; exit 0 only when all hold.
    Verify(IdArg),
    /// Who uses which version of a key: in flight, tracked, principals.
    References(KeyArg),
    /// Unwrap every ciphertext of a corpus; count per key version; exit 1 on a failure.
    DualUnwrap(CorpusArgs),
}

/// One key.
#[derive(Args)]
pub struct KeyArg {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
}

/// `preflight`.
#[derive(Args)]
pub struct StartArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    #[command(flatten)]
    untracked: UntrackedArg,
}

/// `--retire-untracked`.
#[derive(Args)]
pub struct UntrackedArg {
    /// Rotate even though the primary version was used for untracked material (plain
    /// encrypt/decrypt, data keys without --track-id) within the server's
    /// rotation.untracked_window. Rotation never rewraps such ciphertexts; the old
    /// version stays retiring (decrypt-only) until unused for rotation.retire_after_quiet.
    /// Recorded in the evidence and in the rotation's audit entry.
    #[arg(long)]
    retire_untracked: bool,
}

impl UntrackedArg {
    fn policy(&self) -> checks::Untracked {
        if self.retire_untracked {
            checks::Untracked::Retire
        } else {
            checks::Untracked::Refuse
        }
    }
}

/// One rotation.
#[derive(Args)]
pub struct IdArg {
    /// Rotation id.
    #[arg(value_name = "ID")]
    id: String,
}

/// `status`.
#[derive(Args)]
pub struct StatusArgs {
    /// Rotation id.
    #[arg(value_name = "ID")]
    id: String,
    /// Redraw the rewrap's progress (bar, rate, ETA) every second until the rotation
    /// leaves the `rewrap_tracked` step, finishes or waits for `resume`.
    #[arg(long)]
    watch: bool,
}

/// `validate` and `all`.
#[derive(Args)]
pub struct ValidateArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// Also unwrap every ciphertext of this corpus (see dual-unwrap).
    #[arg(long, value_name = "FILE")]
    corpus: Option<PathBuf>,
    /// A test attestation authority's signing key (PKCS #8 PEM or DER, Ed25519 or P-256,
    /// mode 0600) the server trusts: the smoke test then carries a Coffer test-format
    /// document for a measurement on the key's allow-list, and a measurement the
    /// policy's last change removed must be refused (default: the profile's
    /// attestation_authority_key_file).
    #[arg(long, value_name = "FILE")]
    attestation_authority_key: Option<PathBuf>,
}

/// `stage`.
#[derive(Args)]
pub struct StageArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    #[command(flatten)]
    versions: VersionChecks,
    #[command(flatten)]
    untracked: UntrackedArg,
    #[command(flatten)]
    allow_list: AllowListArg,
}

/// `all`.
#[derive(Args)]
pub struct AllArgs {
    #[command(flatten)]
    validate: ValidateArgs,
    #[command(flatten)]
    versions: VersionChecks,
    #[command(flatten)]
    untracked: UntrackedArg,
    #[command(flatten)]
    allow_list: AllowListArg,
}

/// Seed 001's `KMS_ALLOWED_MEASUREMENTS`.
#[derive(Args)]
pub struct AllowListArg {
    /// The key's enclave allow-list from the switch on (hex measurements, comma
    /// separated): stored with the new primary in one transaction, by compare-and-set on
    /// the attestation policy version in force at the start (default: the profile's
    /// allowed_measurements; without either, the list is left alone).
    #[arg(long, value_name = "M1,M2", value_delimiter = ',')]
    allowed_measurements: Option<Vec<String>>,
}

impl AllowListArg {
    /// The flag, else the profile's list.
    fn or_profile(self, s: &Session) -> Option<Vec<String>> {
        self.allowed_measurements
            .or_else(|| s.runbook.allowed_measurements.clone())
    }
}

/// Seed 001's `KMS_KEY_VERSION` and `NEXT_KMS_KEY_VERSION`, as checks.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct VersionChecks {
    /// Start only if the key's primary version is N (the server checks it as the
    /// rotation starts, so a concurrent rotation cannot slip in); otherwise exit 1
    /// with nothing changed.
    #[arg(long, value_name = "N")]
    pub expect_version: Option<u32>,
    /// Fail the run unless the switch makes version M the primary (stage, which stops
    /// before the switch: unless the staged version is M).
    #[arg(long, value_name = "M")]
    pub next_version: Option<u32>,
}

/// `list`.
#[derive(Args)]
pub struct ListArgs {
    /// Only this key's rotations (id or alias/NAME).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Only rotations in this status.
    #[arg(long, value_name = "STATUS", value_parser = ["running", "completed", "rolled-back"])]
    status: Option<String>,
}

/// `resume`.
#[derive(Args)]
pub struct ResumeArgs {
    /// Rotation id.
    #[arg(value_name = "ID")]
    id: String,
    /// Stop after this step (default: run to the end).
    #[arg(long, value_name = "STEP", value_parser = saga::STEPS)]
    until: Option<String>,
}

/// `dual-unwrap`.
#[derive(Args)]
#[command(
    after_help = "FILE holds one JSON object per line: {\"ciphertext\": BASE64, \
                        \"context\": {...}, \"plaintext_sha256\": HEX}; context and \
                        plaintext_sha256 are optional."
)]
pub struct CorpusArgs {
    /// The corpus: JSON lines of ciphertexts.
    #[arg(long, value_name = "FILE")]
    corpus: PathBuf,
}

impl RotateCommand {
    fn name(&self) -> &'static str {
        match self {
            Self::Preflight(_) => "preflight",
            Self::Stage(_) => "stage",
            Self::Validate(_) => "validate",
            Self::All(_) => "all",
            Self::Rollback(_) => "rollback",
            Self::Resume(_) => "resume",
            Self::Status(_) => "status",
            Self::List(_) => "list",
            Self::Verify(_) => "verify",
            Self::References(_) => "references",
            Self::DualUnwrap(_) => "dual-unwrap",
        }
    }

    /// Moves a rotation (validate's test wrap and sign leave no state behind).
    fn changes_state(&self) -> bool {
        matches!(
            self,
            Self::Stage(_) | Self::All(_) | Self::Rollback(_) | Self::Resume(_)
        )
    }
}

/// What a rotate command concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything passed.
    Passed,
    /// Something failed; it was said.
    Failed,
    /// Dry run: nothing was performed.
    Planned,
}

/// Runs a `rotate` command.
pub async fn run(global: &Globals, args: RotateArgs) -> anyhow::Result<ExitCode> {
    let RotateArgs { options, command } = args;
    let name = command.name();
    if options.env == Some(Environment::Production)
        && command.changes_state()
        && !options.confirm_production
    {
        return refuse_unconfirmed(&options, name);
    }
    let target = profile::resolve(
        global,
        options.env,
        options.profiles.as_deref(),
        &options.ops_addr,
    )?;
    let mode = if options.dry_run {
        Mode::DryRun
    } else {
        Mode::Execute
    };
    if mode == Mode::Execute && options.env.is_some() && target.token.is_none() {
        anyhow::bail!("no token: {} is not set", target.token_source);
    }
    let evidence = options
        .evidence_dir
        .as_deref()
        .map(Evidence::open)
        .transpose()?;
    let client = Client::new(&target.api, target.token)?;
    let mut hook_env = std::collections::BTreeMap::new();
    if let Some(env) = options.env {
        hook_env.insert("COFFER_ENV", env.name().to_owned());
    }
    let session = Session {
        runbook: target.runbook,
        hook_env,
        reentry: reentry(&options, client.base_url()),
        client,
        ops: target.ops,
        env: options.env,
        mode,
        disclosure: if options.show_commands {
            Disclosure::Bodies
        } else {
            Disclosure::Redacted
        },
        command: name,
        evidence,
        json: global.json,
        wait: options.wait_timeout.get(),
    };
    let (session, result) = dispatch(session, command).await;
    let (outcome, error) = match &result {
        Ok(Verdict::Passed) => (Outcome::Ok, None),
        Ok(Verdict::Planned) => (Outcome::Planned, None),
        Ok(Verdict::Failed) => (Outcome::Failed, None),
        Err(error) => (Outcome::Failed, Some(format!("{error:#}"))),
    };
    // The manifest is written whatever happened: a failed run is evidence too.
    let manifest = session.close(outcome, error);
    let verdict = result?;
    if let Some(path) = manifest? {
        eprintln!("evidence sealed: {}", path.display());
    }
    if verdict == Verdict::Planned {
        eprintln!("dry run: nothing was sent");
    }
    Ok(match verdict {
        Verdict::Passed | Verdict::Planned => ExitCode::SUCCESS,
        Verdict::Failed => ExitCode::FAILURE,
    })
}

async fn dispatch(
    mut session: Session,
    command: RotateCommand,
) -> (Session, anyhow::Result<Verdict>) {
    let s = &mut session;
    let result = match command {
        RotateCommand::Preflight(args) => {
            checks::preflight(s, &args.key, args.untracked.policy()).await
        }
        RotateCommand::References(KeyArg { key }) => checks::references(s, &key).await,
        RotateCommand::Stage(StageArgs {
            key,
            versions,
            untracked,
            allow_list,
        }) => {
            let allow_list = allow_list.or_profile(s);
            saga::stage(s, &key, versions, untracked.policy(), allow_list).await
        }
        RotateCommand::All(AllArgs {
            validate,
            versions,
            untracked,
            allow_list,
        }) => {
            if let Some(file) = validate.attestation_authority_key.clone() {
                s.runbook.attestation_authority_key = Some(file);
            }
            let policy = untracked.policy();
            let allow_list = allow_list.or_profile(s);
            saga::all(
                s,
                &validate.key,
                validate.corpus.as_deref(),
                versions,
                policy,
                allow_list,
            )
            .await
        }
        RotateCommand::Resume(args) => saga::resume(s, &args.id, args.until).await,
        RotateCommand::Rollback(IdArg { id }) => saga::rollback(s, &id).await,
        RotateCommand::Status(StatusArgs { id, watch }) => saga::status(s, &id, watch).await,
        RotateCommand::List(ListArgs { key, status }) => saga::list(s, key, status).await,
        RotateCommand::Verify(IdArg { id }) => verification::verify(s, &id).await,
        RotateCommand::Validate(args) => {
            if let Some(file) = args.attestation_authority_key {
                s.runbook.attestation_authority_key = Some(file);
            }
            smoke::validate(s, &args.key, args.corpus.as_deref()).await
        }
        RotateCommand::DualUnwrap(args) => corpus::dual_unwrap(s, &args.corpus).await,
    };
    (session, result)
}

/// Exit 2 before anything is read or sent; the refusal is itself evidence.
fn refuse_unconfirmed(options: &RotateOptions, command: &str) -> anyhow::Result<ExitCode> {
    let message = format!(
        "`coffer rotate {command}` changes production: add --confirm-production to \
         proceed (required for dry runs too, so the rehearsed command is the one that runs)"
    );
    if let Some(dir) = &options.evidence_dir {
        let mut evidence = Evidence::open(dir)?;
        evidence.append(&evidence_line(EvidenceLine {
            env: options.env,
            addr: "",
            command,
            step: "confirm-production",
            dry_run: options.dry_run,
            request: None,
            response: serde_json::Value::Null,
            outcome: Outcome::Refused,
            error: Some(message.clone()),
        }))?;
        evidence.seal().context("cannot seal the evidence")?;
    }
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

/// The flags another command needs to reach the same server under the same rules.
fn reentry(options: &RotateOptions, api: &str) -> String {
    let mut flags = String::new();
    match options.env {
        Some(env) => {
            flags.push_str(&format!(" --env {}", env.name()));
            if env == Environment::Production {
                flags.push_str(" --confirm-production");
            }
            if let Some(path) = &options.profiles {
                flags.push_str(&format!(
                    " --profiles {}",
                    shell_word(&path.to_string_lossy())
                ));
            }
        }
        None => flags.push_str(&format!(" --addr {}", shell_word(api))),
    }
    if let Some(dir) = &options.evidence_dir {
        flags.push_str(&format!(
            " --evidence-dir {}",
            shell_word(&dir.to_string_lossy())
        ));
    }
    flags
}

/// `text` as one shell word: bare when it is plainly safe, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::tests::parse;

    fn rotate(args: &[&str]) -> RotateArgs {
        let mut line = vec!["rotate"];
        line.extend_from_slice(args);
        match parse(&line).unwrap().command {
            Command::Rotate(args) => args,
            _ => panic!("not rotate"),
        }
    }

    #[test]
    fn rotate_flags_go_before_or_after_the_command() {
        let args = rotate(&["--dry-run", "stage", "k", "--env", "production"]);
        assert!(args.options.dry_run);
        assert_eq!(args.options.env, Some(Environment::Production));
        assert!(args.command.changes_state());
        assert!(!rotate(&["verify", "r"]).command.changes_state());
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["rotate", "stage", "k", "--env", "dev"]).is_err());
        assert!(parse(&["rotate", "resume", "r", "--until", "nowhere"]).is_err());
        assert!(parse(&["rotate", "dual-unwrap"]).is_err());
        assert!(
            parse(&["rotate", "stage", "k", "--profiles", "f"]).is_err(),
            "--profiles needs --env"
        );
    }

    #[test]
    fn reentry_repeats_the_target_never_the_token() {
        let args = rotate(&[
            "--env",
            "production",
            "--profiles",
            "/p/my file.toml",
            "all",
            "k",
        ]);
        assert_eq!(
            reentry(&args.options, "http://ignored"),
            " --env production --confirm-production --profiles '/p/my file.toml'"
        );
        let args = rotate(&["--evidence-dir", "ev", "all", "k"]);
        assert_eq!(
            reentry(&args.options, "http://h:1"),
            " --addr http://h:1 --evidence-dir ev"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
