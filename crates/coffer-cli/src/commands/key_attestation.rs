//! `coffer keys attestation-policy show|set KEY`: which operations of a key need an
//! attested caller, and which measurements may perform them (docs/attestation.md).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use coffer_api::attestation::{AttestationPolicyView, SetAttestationPolicyRequest};
use coffer_client::Client;

use super::{Globals, print_json, print_line};

/// `keys attestation-policy …`.
#[derive(Subcommand)]
pub enum AttestationCommand {
    /// The policy in force and its earlier versions.
    Show(ShowArgs),
    /// Store the policy's next version (audited; this server applies it at once, other
    /// replicas within their cache_ttl).
    Set(SetArgs),
}

/// `keys attestation-policy show`.
#[derive(Args)]
pub struct ShowArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
}

/// `keys attestation-policy set`.
#[derive(Args)]
pub struct SetArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// Operations that need an attestation: unwrap, datakey, sign, mac (comma-separated;
    /// empty lifts the requirement).
    #[arg(long, value_name = "OPS", value_delimiter = ',')]
    operations: Vec<String>,
    /// The allow-list: measurements (hex; a Nitro document's PCR0), comma-separated.
    #[arg(
        long = "allowed-measurements",
        value_name = "M1,M2",
        value_delimiter = ','
    )]
    measurements: Vec<String>,
    /// Change only if the policy in force is this version (0: none yet).
    #[arg(long, value_name = "N")]
    expect_version: Option<u32>,
}

fn line(p: &AttestationPolicyView) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            v.join(",")
        }
    };
    format!(
        "v{}  operations {}  measurements {}",
        p.version,
        list(&p.operations),
        list(&p.measurements)
    )
}

/// Runs `keys attestation-policy …`.
pub async fn run(
    global: &Globals,
    client: &Client,
    command: AttestationCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        AttestationCommand::Show(args) => {
            let policies = client.attestation_policies(&args.key).await?;
            if global.json {
                print_json(&policies)?;
            } else if policies.versions.is_empty() {
                print_line(&format!("key {}: no attestation policy", policies.key_id))?;
            } else {
                print_line(&format!("key {}", policies.key_id))?;
                for p in policies.versions.iter().rev() {
                    print_line(&line(p))?;
                }
            }
        }
        AttestationCommand::Set(args) => {
            let stored = client
                .set_attestation_policy(
                    &args.key,
                    &SetAttestationPolicyRequest {
                        operations: args
                            .operations
                            .into_iter()
                            .filter(|o| !o.is_empty())
                            .collect(),
                        measurements: args
                            .measurements
                            .into_iter()
                            .filter(|m| !m.is_empty())
                            .collect(),
                        expect_version: args.expect_version,
                    },
                )
                .await?;
            if global.json {
                print_json(&stored)?;
            } else {
                print_line(&format!("key {}: {}", stored.key_id, line(&stored)))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
