//! `coffer keys add-spare|activate|reactivate|register|publish|history|test-sign` and
//! `keys list --show-expiration`: the commands of seed 004's runbook.

use std::process::ExitCode;

use clap::Args;
use coffer_api::B64;
use coffer_api::crypto::{SignRequest, VerifyRequest};
use coffer_api::keys::KeyView;
use coffer_client::Client;

use super::keys::KeysCommand;
use super::{Globals, or_dash, print_json, print_line, table};

/// `keys activate` and `keys reactivate`.
#[derive(Args)]
pub struct ActivateArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// The version (activate: the spare to make primary; reactivate: the retired one).
    #[arg(value_name = "VERSION")]
    version: u32,
}

/// `keys register`.
#[derive(Args)]
pub struct RegisterArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// The purpose, e.g. attestation-signing.
    #[arg(long)]
    purpose: String,
}

/// `keys set-policy`.
#[derive(Args)]
pub struct PolicyArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// Rotate every D (e.g. 90d).
    #[arg(long, value_name = "D")]
    rotation_period: Option<coffer_core::HumanDuration>,
    /// Rotate automatically this long before the primary expires (e.g. 30d).
    #[arg(long, value_name = "D")]
    rotate_before_expiry: Option<coffer_core::HumanDuration>,
    /// Keep a replaced version usable this long, then retire it (e.g. 14d).
    #[arg(long, value_name = "D")]
    overlap: Option<coffer_core::HumanDuration>,
    /// Validity of versions created from now on (e.g. 365d).
    #[arg(long, value_name = "D")]
    validity: Option<coffer_core::HumanDuration>,
}

fn show(global: &Globals, key: &KeyView) -> anyhow::Result<ExitCode> {
    if global.json {
        print_json(key)?;
    } else {
        let versions: Vec<String> = key
            .versions
            .iter()
            .map(|v| {
                format!(
                    "v{} {}{}",
                    v.version,
                    v.state,
                    if v.primary { " (primary)" } else { "" }
                )
            })
            .collect();
        print_line(&format!("key {}: {}", key.key_id, versions.join(", ")))?;
        if !key.registered_purposes.is_empty() {
            print_line(&format!(
                "registered purposes: {}",
                key.registered_purposes.join(", ")
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the lifecycle subcommands.
pub async fn run(
    global: &Globals,
    client: &Client,
    command: KeysCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::AddSpare(arg) => show(global, &client.add_spare(&arg.key).await?),
        KeysCommand::Activate(args) => show(
            global,
            &client.activate_version(&args.key, args.version).await?,
        ),
        KeysCommand::Reactivate(args) => show(
            global,
            &client.reactivate_version(&args.key, args.version).await?,
        ),
        KeysCommand::Register(args) => show(
            global,
            &client.register_purpose(&args.key, &args.purpose).await?,
        ),
        KeysCommand::Publish(arg) => show(global, &client.publish_key(&arg.key).await?),
        KeysCommand::SetPolicy(args) => {
            let text = |d: Option<coffer_core::HumanDuration>| d.map(|d| d.to_string());
            let request = coffer_api::keys::SetPolicyRequest {
                rotation: Some(coffer_api::keys::RotationPolicyView {
                    period: text(args.rotation_period),
                    before_expiry: text(args.rotate_before_expiry),
                    overlap: text(args.overlap),
                }),
                validity: text(args.validity),
            };
            let key = client.set_policy(&args.key, &request).await?;
            if global.json {
                print_json(&key)?;
            } else {
                let p = &key.rotation;
                let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                print_line(&format!(
                    "key {}: rotation period {}, before expiry {}, overlap {}; validity {}",
                    key.key_id,
                    or(&p.period),
                    or(&p.before_expiry),
                    or(&p.overlap),
                    or(&key.validity)
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::History(arg) => {
            let history = client.key_history(&arg.key).await?;
            if global.json {
                print_json(&history)?;
            } else {
                let rows: Vec<Vec<String>> = history
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            e.at.clone(),
                            e.kind.clone(),
                            e.version.map_or_else(|| "-".into(), |v| v.to_string()),
                            e.detail.clone(),
                        ]
                    })
                    .collect();
                print_line(&table(&["AT", "EVENT", "VERSION", "DETAIL"], &rows))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::TestSign(arg) => test_sign(global, client, &arg.key).await,
        _ => unreachable!("dispatched by keys::run"),
    }
}

/// Signs a test message and verifies it: the check seed 004 runs before releases.
async fn test_sign(global: &Globals, client: &Client, key: &str) -> anyhow::Result<ExitCode> {
    let message = B64(b"coffer test-sign".to_vec());
    let signed = client
        .sign(&SignRequest {
            attestation: None,
            key_id: key.to_owned(),
            message: Some(message.clone()),
            digest: None,
            mu: None,
            algorithm: None,
        })
        .await?;
    let verified = client
        .verify(&VerifyRequest {
            key_id: key.to_owned(),
            key_version: Some(signed.key_version),
            message: Some(message),
            digest: None,
            mu: None,
            algorithm: None,
            signature: signed.signature.clone(),
        })
        .await?;
    if global.json {
        print_json(
            &serde_json::json!({ "key_id": signed.key_id, "key_version": signed.key_version, "algorithm": signed.algorithm, "valid": verified.valid }),
        )?;
    } else {
        print_line(&format!(
            "test-sign: key {} version {} ({}): {}",
            signed.key_id,
            signed.key_version,
            signed.algorithm,
            if verified.valid {
                "signed and verified"
            } else {
                "SIGNATURE DID NOT VERIFY"
            }
        ))?;
    }
    Ok(if verified.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn days_left(not_after: &str) -> String {
    let parsed =
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339);
    match parsed {
        Ok(when) => {
            let seconds = (when - time::OffsetDateTime::now_utc()).whole_seconds();
            if seconds < 0 {
                "EXPIRED".to_owned()
            } else {
                (seconds / 86_400).to_string()
            }
        }
        Err(_) => "?".to_owned(),
    }
}

/// One row per version with validity and days left; `state` filters versions.
pub fn expiration_table(
    global: &Globals,
    keys: &[KeyView],
    state: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for key in keys {
        for v in key
            .versions
            .iter()
            .filter(|v| state.is_none_or(|s| v.state == s))
        {
            let left = v.not_after.as_deref().map(days_left);
            json.push(serde_json::json!({
                "key_id": key.key_id, "aliases": key.aliases, "version": v.version, "state": v.state,
                "primary": v.primary, "not_before": v.not_before, "not_after": v.not_after, "days_left": left,
            }));
            rows.push(vec![
                key.key_id.clone(),
                if key.aliases.is_empty() {
                    "-".into()
                } else {
                    key.aliases.join(",")
                },
                v.version.to_string(),
                v.state.clone(),
                if v.primary {
                    "yes".into()
                } else {
                    String::new()
                },
                or_dash(v.not_after.as_deref()),
                left.unwrap_or_else(|| "-".into()),
            ]);
        }
    }
    if global.json {
        print_json(&json)?;
    } else {
        print_line(&table(
            &[
                "KEY ID",
                "ALIASES",
                "VERSION",
                "STATE",
                "PRIMARY",
                "NOT AFTER",
                "DAYS LEFT",
            ],
            &rows,
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
