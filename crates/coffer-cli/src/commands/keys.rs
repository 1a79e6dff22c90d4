//! `coffer keys …`: create, list, show, rotate, enable, disable, schedule and cancel
//! deletion (`alias set`: `key_alias.rs`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use coffer_api::keys::{CreateKeyRequest, KeyView, ListKeysQuery, RotationPolicyView};
use coffer_core::HumanDuration;

use super::{Globals, or_dash, pairs_to_map, parse_pair, print_json, print_line, table};

/// Key management.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key.
    Create(CreateArgs),
    /// List keys with their primary version and its expiry.
    List(ListArgs),
    /// Show one key and its versions (--details: public keys and certificates too).
    Show(ShowArgs),
    /// Make a new primary version.
    Rotate(KeyArg),
    /// Enable a disabled key.
    Enable(KeyArg),
    /// Disable a key (it refuses every operation until enabled).
    Disable(KeyArg),
    /// Schedule a key's destruction after a waiting period.
    ScheduleDeletion(ScheduleDeletionArgs),
    /// Cancel a scheduled deletion (the key returns disabled).
    CancelDeletion(KeyArg),
    /// Add a spare (inactive) version: a backup to activate later.
    AddSpare(KeyArg),
    /// Make a version (a spare) active and primary in one step.
    Activate(super::key_lifecycle::ActivateArgs),
    /// Move a retired version back to retiring: it decrypts and verifies again (it never
    /// encrypts or signs again) until the quiet period retires it once more.
    Reactivate(super::key_lifecycle::ActivateArgs),
    /// Register a purpose on a key, e.g. attestation-signing.
    Register(super::key_lifecycle::RegisterArgs),
    /// Publish a signing key's public keys in its tenant's JWKS (GET /v1/jwks/TENANT).
    Publish(KeyArg),
    /// The key's lifecycle and rotation history.
    History(KeyArg),
    /// Aliases: move one to another key (`keys alias set alias/NAME KEY`).
    #[command(subcommand)]
    Alias(super::key_alias::AliasCommand),
    /// Which operations need an attested caller, and the measurement allow-list.
    #[command(subcommand)]
    AttestationPolicy(super::key_attestation::AttestationCommand),
    /// Change the rotation policy (auto-rotation, overlap) and the validity of new versions.
    SetPolicy(super::key_lifecycle::PolicyArgs),
    /// Sign and verify a test message with the primary version (exit 1 on failure,
    /// e.g. an expired signing key).
    TestSign(KeyArg),
    /// Import an X.509 certificate chain (PEM, leaf first) for a version.
    ImportChain(super::certificates::ImportChainArgs),
    /// Issue a certificate for the key's primary version from a CA key of the tenant.
    IssueCertificate(super::certificates::IssueCertificateArgs),
    /// Check every link of the key's certificate chain: validity now and signature
    /// (exit 1 when a link is expired or a signature fails).
    VerifyChain(super::certificates::VerifyChainArgs),
}

/// `keys show`.
#[derive(Args)]
pub struct ShowArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// Also print each version's public key PEM and certificate subject and expiry.
    #[arg(long)]
    details: bool,
}

/// One key.
#[derive(Args)]
pub struct KeyArg {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    pub key: String,
}

/// `keys create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Key spec.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        coffer_crypto::KeySpec::ALL.map(coffer_crypto::KeySpec::as_str)
    ))]
    spec: String,
    /// Purpose (default: the spec's; RSA keys sign by default, or encrypt).
    #[arg(long, value_parser = ["encrypt", "sign", "mac"])]
    purpose: Option<String>,
    /// An alias, alias/NAME or NAME.
    #[arg(long, value_name = "NAME")]
    alias: Option<String>,
    /// A label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair)]
    labels: Vec<(String, String)>,
    /// A registered purpose such as attestation-signing (repeatable).
    #[arg(long = "registered-purpose", value_name = "PURPOSE")]
    registered_purposes: Vec<String>,
    /// Rotate every D (e.g. 90d).
    #[arg(long, value_name = "D")]
    rotation_period: Option<HumanDuration>,
    /// Rotate this long before the primary version expires.
    #[arg(long, value_name = "D")]
    rotate_before_expiry: Option<HumanDuration>,
    /// Keep a replaced version usable this long.
    #[arg(long, value_name = "D")]
    overlap: Option<HumanDuration>,
    /// Validity of each version (e.g. 365d).
    #[arg(long, value_name = "D")]
    validity: Option<HumanDuration>,
    /// Where the versions live: software (default) or hsm (each version a
    /// non-extractable key in the HSM token; custody pkcs11 only).
    #[arg(long, value_parser = ["software", "hsm"])]
    protection: Option<String>,
    /// With --protection hsm: the slot of the token (must be the configured token's).
    #[arg(long, value_name = "N", requires = "protection")]
    hsm_slot: Option<u64>,
}

/// `keys list`.
#[derive(Args)]
pub struct ListArgs {
    /// Only this purpose.
    #[arg(long, value_parser = ["encrypt", "sign", "mac"])]
    purpose: Option<String>,
    /// Only this spec.
    #[arg(long)]
    spec: Option<String>,
    /// Only keys in this state; a version state (active, inactive, pending, retiring,
    /// retired) lists the keys with a version in it (`inactive`: keys with a spare),
    /// and with --show-expiration only versions in this state.
    #[arg(long, value_parser = ["enabled", "disabled", "pending-deletion", "destroyed", "active", "inactive", "pending", "retiring", "retired"])]
    state: Option<String>,
    /// One row per version with its validity and days left (seed 004).
    #[arg(long)]
    show_expiration: bool,
}

/// `keys schedule-deletion`.
#[derive(Args)]
pub struct ScheduleDeletionArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// Waiting period in days, 7–30 (default 30).
    #[arg(long, value_parser = clap::value_parser!(u32).range(7..=30))]
    days: Option<u32>,
}

/// Runs a `keys` command.
pub async fn run(global: &Globals, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let client = global.client()?;
    let key = match command {
        KeysCommand::Alias(command) => {
            return super::key_alias::run(global, &client, command).await;
        }
        KeysCommand::AttestationPolicy(command) => {
            return super::key_attestation::run(global, &client, command).await;
        }
        KeysCommand::Create(args) => client.create_key(&create_request(args)?).await?,
        KeysCommand::AddSpare(_)
        | KeysCommand::Activate(_)
        | KeysCommand::Reactivate(_)
        | KeysCommand::Register(_)
        | KeysCommand::Publish(_)
        | KeysCommand::History(_)
        | KeysCommand::SetPolicy(_)
        | KeysCommand::TestSign(_) => {
            return super::key_lifecycle::run(global, &client, command).await;
        }
        KeysCommand::ImportChain(_)
        | KeysCommand::IssueCertificate(_)
        | KeysCommand::VerifyChain(_) => {
            return super::certificates::run(global, &client, command).await;
        }
        KeysCommand::Show(ShowArgs { key, details: true }) if !global.json => {
            let key = client.show_key(&key).await?;
            let details = super::certificates::details(&client, &key).await?;
            print_line(&format!("{}{details}", summary(&key)))?;
            return Ok(ExitCode::SUCCESS);
        }
        KeysCommand::List(args) if args.show_expiration => {
            let query = ListKeysQuery {
                purpose: args.purpose,
                spec: args.spec,
                state: None,
            };
            let answer = client.list_keys(&query).await?;
            return super::key_lifecycle::expiration_table(
                global,
                &answer.keys,
                args.state.as_deref(),
            );
        }
        KeysCommand::List(args) => {
            // A version state (`inactive`: the spares) filters keys by their versions
            // here; the server's `state` filter is the key's own state.
            let version_state = args
                .state
                .clone()
                .filter(|s| VERSION_STATES.contains(&s.as_str()));
            let query = ListKeysQuery {
                purpose: args.purpose,
                spec: args.spec,
                state: args.state.filter(|_| version_state.is_none()),
            };
            let mut answer = client.list_keys(&query).await?;
            if let Some(state) = &version_state {
                answer
                    .keys
                    .retain(|key| key.versions.iter().any(|v| &v.state == state));
                if !global.json {
                    print_line(&versions_in_state_table(&answer.keys, state))?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            if global.json {
                print_json(&answer)?;
            } else {
                print_line(&key_table(&answer.keys))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        KeysCommand::Rotate(KeyArg { key }) => {
            let answer = client.rotate_key(&key).await?;
            if global.json {
                print_json(&answer)?;
            } else {
                print_line(&format!(
                    "key_id={} primary_version={}",
                    answer.key_id, answer.version
                ))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        KeysCommand::Show(ShowArgs { key, .. }) => client.show_key(&key).await?,
        KeysCommand::Enable(KeyArg { key }) => client.enable_key(&key).await?,
        KeysCommand::Disable(KeyArg { key }) => client.disable_key(&key).await?,
        KeysCommand::ScheduleDeletion(args) => {
            client.schedule_deletion(&args.key, args.days).await?
        }
        KeysCommand::CancelDeletion(KeyArg { key }) => client.cancel_deletion(&key).await?,
    };
    if global.json {
        print_json(&key)?;
    } else {
        print_line(&summary(&key))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn create_request(args: CreateArgs) -> anyhow::Result<CreateKeyRequest> {
    let text = |d: Option<HumanDuration>| d.map(|d| d.to_string());
    let rotation = RotationPolicyView {
        period: text(args.rotation_period),
        before_expiry: text(args.rotate_before_expiry),
        overlap: text(args.overlap),
    };
    Ok(CreateKeyRequest {
        spec: args.spec,
        purpose: args.purpose,
        alias: args.alias,
        labels: pairs_to_map(args.labels, "label")?,
        registered_purposes: args.registered_purposes.into_iter().collect(),
        rotation: (rotation != RotationPolicyView::default()).then_some(rotation),
        validity: text(args.validity),
        protection: args.protection,
        hsm_slot: args.hsm_slot,
    })
}

/// States of versions rather than keys, for `keys list --state`.
const VERSION_STATES: [&str; 5] = ["active", "inactive", "pending", "retiring", "retired"];

/// Keys with a version in `state`, and which versions.
fn versions_in_state_table(keys: &[KeyView], state: &str) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let versions: Vec<String> = key
                .versions
                .iter()
                .filter(|v| v.state == state)
                .map(|v| format!("v{}", v.version))
                .collect();
            vec![
                key.key_id.clone(),
                if key.aliases.is_empty() {
                    "-".into()
                } else {
                    key.aliases.join(",")
                },
                key.spec.clone(),
                key.primary_version.to_string(),
                versions.join(","),
            ]
        })
        .collect();
    let header = format!("{} VERSIONS", state.to_uppercase());
    table(
        &["KEY ID", "ALIASES", "SPEC", "PRIMARY", header.as_str()],
        &rows,
    )
}

fn key_table(keys: &[KeyView]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|key| {
            let primary = key.versions.iter().find(|v| v.primary);
            vec![
                key.key_id.clone(),
                if key.aliases.is_empty() {
                    "-".into()
                } else {
                    key.aliases.join(",")
                },
                key.spec.clone(),
                key.state.clone(),
                key.primary_version.to_string(),
                or_dash(primary.and_then(|v| v.not_after.as_deref())),
            ]
        })
        .collect();
    table(
        &["KEY ID", "ALIASES", "SPEC", "STATE", "PRIMARY", "NOT AFTER"],
        &rows,
    )
}

/// The human form of one key: fields, then its versions.
fn summary(key: &KeyView) -> String {
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    let labels: Vec<String> = key.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let rotation = &key.rotation;
    let mut state = key.state.clone();
    if let Some(due) = &key.deletion_due {
        state.push_str(&format!(" (deletion due {due})"));
    }
    let fields = [
        ("key id", key.key_id.clone()),
        ("aliases", list(&key.aliases)),
        ("spec", key.spec.clone()),
        ("purpose", key.purpose.clone()),
        ("state", state),
        ("primary version", key.primary_version.to_string()),
        ("labels", list(&labels)),
        ("registered purposes", list(&key.registered_purposes)),
        (
            "rotation",
            format!(
                "period {}, before expiry {}, overlap {}",
                or_dash(rotation.period.as_deref()),
                or_dash(rotation.before_expiry.as_deref()),
                or_dash(rotation.overlap.as_deref()),
            ),
        ),
        ("validity", or_dash(key.validity.as_deref())),
        ("protection", key.protection.clone()),
        ("created", key.created_at.clone()),
    ];
    let mut text: String = fields
        .iter()
        .map(|(name, value)| format!("{:<20} {value}\n", format!("{name}:")))
        .collect();
    text.push('\n');
    text.push_str(&versions_table(key));
    text
}

/// One row per version: number, state, primary, validity window, where it lives.
pub(crate) fn versions_table(key: &KeyView) -> String {
    let rows: Vec<Vec<String>> = key
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.state.clone(),
                if v.primary { "yes" } else { "" }.into(),
                v.not_before.clone(),
                or_dash(v.not_after.as_deref()),
                location(v),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "STATE",
            "PRIMARY",
            "NOT BEFORE",
            "NOT AFTER",
            "LOCATION",
        ],
        &rows,
    )
}

/// `software`, or `hsm slot N label L id HEX` for an HSM-resident version.
fn location(version: &coffer_api::keys::VersionView) -> String {
    match &version.hsm {
        Some(at) => format!(
            "hsm slot {} token {} label {} id {}",
            at.slot, at.token, at.label, at.id
        ),
        None => version.location.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::tests::parse;

    fn create_args(args: &[&str]) -> Result<CreateArgs, clap::Error> {
        let mut line = vec!["keys", "create"];
        line.extend_from_slice(args);
        match parse(&line)?.command {
            Command::Keys(KeysCommand::Create(args)) => Ok(args),
            _ => panic!("not keys create"),
        }
    }

    #[test]
    fn create_builds_the_request() {
        let args = create_args(&[
            "--spec",
            "ed25519",
            "--alias",
            "signer",
            "--label",
            "team=pay",
            "--label",
            "env=prod",
            "--registered-purpose",
            "attestation-signing",
            "--rotation-period",
            "90d",
            "--overlap",
            "168h",
            "--validity",
            "365d",
        ])
        .unwrap();
        let request = create_request(args).unwrap();
        assert_eq!(request.spec, "ed25519");
        assert_eq!(request.alias.as_deref(), Some("signer"));
        assert_eq!(request.labels.len(), 2);
        assert_eq!(request.labels["team"], "pay");
        let rotation = request.rotation.unwrap();
        assert_eq!(rotation.period.as_deref(), Some("90d"));
        assert_eq!(rotation.overlap.as_deref(), Some("1w"), "normalized");
        assert_eq!(rotation.before_expiry, None);
        assert_eq!(request.validity.as_deref(), Some("365d"));
    }

    #[test]
    fn no_rotation_flags_means_no_rotation_policy() {
        let request = create_request(create_args(&["--spec", "aes-256"]).unwrap()).unwrap();
        assert_eq!(request.rotation, None);
    }

    #[test]
    fn bad_labels_and_durations_are_usage_errors() {
        assert!(create_args(&["--spec", "aes-256", "--label", "no-equals"]).is_err());
        assert!(create_args(&["--spec", "aes-256", "--validity", "forever"]).is_err());
        assert!(create_args(&["--spec", "rot13"]).is_err());
        let twice = create_args(&["--spec", "aes-256", "--label", "a=1", "--label", "a=2"]);
        assert!(create_request(twice.unwrap()).is_err());
    }

    #[test]
    fn deletion_days_are_bounded() {
        assert!(parse(&["keys", "schedule-deletion", "k", "--days", "6"]).is_err());
        assert!(parse(&["keys", "schedule-deletion", "k", "--days", "7"]).is_ok());
    }
}
