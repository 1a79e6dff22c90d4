//! `coffer keys import-chain|issue-certificate|verify-chain` and `keys show --details`:
//! certificate chains of signing keys (seed 004: "check certificate chain validity").

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use coffer_api::ErrorCode;
use coffer_api::keys::{ChainLinkView, ChainView, IssueCertificateRequest, KeyView};
use coffer_client::{Client, ClientError};
use coffer_core::HumanDuration;

use super::keys::KeysCommand;
use super::{Globals, print_json, print_line, table};

/// `keys import-chain`.
#[derive(Args)]
pub struct ImportChainArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// PEM file of CERTIFICATE blocks, leaf first.
    #[arg(long, value_name = "FILE")]
    pem: PathBuf,
    /// The version the leaf certifies (default: the primary).
    #[arg(long, value_name = "N")]
    version: Option<u32>,
}

/// `keys issue-certificate`.
#[derive(Args)]
pub struct IssueCertificateArgs {
    /// Key id or alias/NAME: its primary version gets the certificate.
    #[arg(value_name = "KEY")]
    key: String,
    /// The CA key (another signing key of the tenant; the key itself: self-signed).
    #[arg(long = "ca", value_name = "CA_KEY")]
    ca: String,
    /// The subject's common name.
    #[arg(long, value_name = "CN")]
    subject: String,
    /// Validity from now (e.g. 365d).
    #[arg(long, value_name = "D")]
    validity: HumanDuration,
}

/// `keys verify-chain`.
#[derive(Args)]
pub struct VerifyChainArgs {
    /// Key id or alias/NAME.
    #[arg(value_name = "KEY")]
    key: String,
    /// The version (default: the primary).
    #[arg(long, value_name = "N")]
    version: Option<u32>,
}

fn links_table(links: &[ChainLinkView]) -> String {
    let rows: Vec<Vec<String>> = links
        .iter()
        .enumerate()
        .map(|(i, l)| {
            vec![
                i.to_string(),
                l.subject.clone(),
                l.issuer.clone(),
                l.not_before.clone(),
                l.not_after.clone(),
                if l.valid_now { "yes" } else { "NO" }.to_owned(),
                l.signature.clone(),
            ]
        })
        .collect();
    table(
        &[
            "LINK",
            "SUBJECT",
            "ISSUER",
            "NOT BEFORE",
            "NOT AFTER",
            "VALID NOW",
            "SIGNATURE",
        ],
        &rows,
    )
}

fn show_chain(global: &Globals, chain: &ChainView) -> anyhow::Result<ExitCode> {
    if global.json {
        print_json(chain)?;
    } else {
        print_line(&format!(
            "key {} version {}: {} certificate(s)",
            chain.key_id,
            chain.version,
            chain.links.len()
        ))?;
        print_line(&links_table(&chain.links))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the certificate subcommands.
pub async fn run(
    global: &Globals,
    client: &Client,
    command: KeysCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::ImportChain(args) => {
            let pem = std::fs::read_to_string(&args.pem)
                .with_context(|| format!("reading {}", args.pem.display()))?;
            let chain = client.import_chain(&args.key, &pem, args.version).await?;
            show_chain(global, &chain)
        }
        KeysCommand::IssueCertificate(args) => {
            let request = IssueCertificateRequest {
                ca_key: args.ca,
                subject: args.subject,
                validity: args.validity.to_string(),
            };
            let chain = client.issue_certificate(&args.key, &request).await?;
            show_chain(global, &chain)
        }
        KeysCommand::VerifyChain(args) => {
            let report = client.verify_chain(&args.key, args.version).await?;
            if global.json {
                print_json(&report)?;
            } else {
                print_line(&format!(
                    "key {} version {}: certificate chain of {} link(s)",
                    report.key_id,
                    report.version,
                    report.links.len()
                ))?;
                print_line(&links_table(&report.links))?;
                if let Some(i) = report.first_expired {
                    let link = &report.links[i];
                    print_line(&format!(
                        "first expired: link {i} ({}), not after {}",
                        link.subject, link.not_after
                    ))?;
                }
                print_line(if report.ok {
                    "chain ok"
                } else {
                    "CHAIN NOT VALID"
                })?;
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        _ => unreachable!("dispatched by keys::run"),
    }
}

/// `keys show --details`: each version's public key PEM and certificate, after the
/// summary.
pub async fn details(client: &Client, key: &KeyView) -> anyhow::Result<String> {
    let mut text = String::new();
    for v in &key.versions {
        text.push_str(&format!("\nversion {} ({}):\n", v.version, v.state));
        let Some(pem) = &v.public_key_pem else {
            text.push_str("  no public key\n");
            continue;
        };
        text.push_str(pem);
        if !pem.ends_with('\n') {
            text.push('\n');
        }
        match client.certificate_chain(&key.key_id, Some(v.version)).await {
            Ok(chain) => {
                for (i, link) in chain.links.iter().enumerate() {
                    text.push_str(&format!(
                        "  certificate {i}: subject {}, not after {}{}\n",
                        link.subject,
                        link.not_after,
                        if link.valid_now {
                            ""
                        } else {
                            " (NOT VALID NOW)"
                        }
                    ));
                }
            }
            Err(ClientError::Api {
                code: ErrorCode::NotFound,
                ..
            }) => text.push_str("  certificate: -\n"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(text)
}
