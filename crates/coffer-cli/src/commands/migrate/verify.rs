//! `coffer migrate verify` (seed 003 §9): decrypts a random sample of blobs through dual
//! read and checks each plaintext's SHA-256 against the sidecar's content hash.
//!
//! A sidecar `NAME.json` describes the blob `NAME` beside it, unless its `blob` field
//! names another path (relative to the sidecar's directory). Blobs are AES-GCM under
//! the data key, `nonce(12) ‖ ciphertext ‖ tag(16)`, no associated data.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::open::{self, Cutover};
use super::sidecar::{Origin, Sidecar};
use super::{LegacyArgs, Source};
use crate::commands::{Globals, print_json, print_line};

/// `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    source: Source,
    #[command(flatten)]
    legacy: LegacyArgs,
    /// How many sidecars to check, chosen at random (all of them if fewer).
    #[arg(long, value_name = "N")]
    sample: usize,
    /// The sidecar field holding the blob's SHA-256 (hex).
    #[arg(long, value_name = "FIELD", default_value = "content_sha256")]
    content_hash_field: String,
    /// Refuse legacy sidecars (after cutover every one should be Coffer's).
    #[arg(long, env = "COFFER_MIGRATE_CUTOVER")]
    cutover: bool,
}

#[derive(Serialize)]
struct Checked {
    id: String,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize)]
struct VerifyReport {
    sampled: usize,
    ok: usize,
    mismatched: usize,
    failed: usize,
    problems: Vec<Checked>,
}

/// Exit 0: every sampled blob decrypted and matched; 1: a hash mismatched or a blob
/// could not be opened (the report says which).
pub async fn run(global: &Globals, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (inputs, _) = args.source.read()?;
    let client = global.client()?;
    let legacy = args.legacy.key()?;
    let cutover = if args.cutover {
        Cutover::CofferOnly
    } else {
        Cutover::DualRead
    };
    let sample = choose(inputs.sidecars, args.sample)?;
    let mut report = VerifyReport {
        sampled: sample.len(),
        ok: 0,
        mismatched: 0,
        failed: 0,
        problems: Vec::new(),
    };
    for sidecar in &sample {
        let context = args.legacy.context_for(&sidecar.id)?;
        let outcome = check(
            &client,
            sidecar,
            legacy.as_ref(),
            cutover,
            &context,
            &args.content_hash_field,
        )
        .await;
        match outcome {
            Ok(true) => report.ok += 1,
            Ok(false) => {
                report.mismatched += 1;
                report.problems.push(Checked {
                    id: sidecar.id.clone(),
                    outcome: "mismatch",
                    reason: None,
                });
            }
            Err(error) => {
                report.failed += 1;
                report.problems.push(Checked {
                    id: sidecar.id.clone(),
                    outcome: "failed",
                    reason: Some(format!("{error:#}")),
                });
            }
        }
    }
    if global.json {
        print_json(&report)?;
    } else {
        print_line(&format!(
            "sampled {}: {} ok, {} mismatched, {} failed",
            report.sampled, report.ok, report.mismatched, report.failed
        ))?;
        for problem in &report.problems {
            let reason = problem.reason.as_deref().unwrap_or("content hash differs");
            print_line(&format!("{} {}: {reason}", problem.outcome, problem.id))?;
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `n` sidecars chosen uniformly (a partial Fisher–Yates shuffle on OS randomness).
fn choose(mut sidecars: Vec<Sidecar>, n: usize) -> anyhow::Result<Vec<Sidecar>> {
    let n = n.min(sidecars.len());
    for i in 0..n {
        let mut bytes = [0u8; 8];
        coffer_crypto::rng::fill(&mut bytes)?;
        let span = (sidecars.len() - i) as u64;
        let j = i + usize::try_from(u64::from_le_bytes(bytes) % span)?;
        sidecars.swap(i, j);
    }
    sidecars.truncate(n);
    Ok(sidecars)
}

async fn check(
    client: &coffer_client::Client,
    sidecar: &Sidecar,
    legacy: Option<&super::legacy_key::LegacyKey>,
    cutover: Cutover,
    context: &coffer_api::crypto::Context,
    hash_field: &str,
) -> anyhow::Result<bool> {
    let expected = sidecar
        .text(hash_field)
        .ok_or_else(|| anyhow::anyhow!("no `{hash_field}` field"))?;
    let expected =
        hex::decode(expected).map_err(|_| anyhow::anyhow!("`{hash_field}` is not hex"))?;
    let blob = blob_path(sidecar)?;
    let key = open::data_key(client, sidecar, legacy, cutover, context).await?;
    let sealed =
        std::fs::read(&blob).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", blob.display()))?;
    let plaintext = coffer_crypto::legacy::open_aes_gcm(&key, &sealed, b"")
        .map_err(|e| anyhow::anyhow!("cannot decrypt {}: {e}", blob.display()))?;
    let actual = coffer_crypto::hash::sha256(&[plaintext.expose_secret()]);
    Ok(actual.as_slice() == expected.as_slice())
}

fn blob_path(sidecar: &Sidecar) -> anyhow::Result<PathBuf> {
    let Origin::File(path) = &sidecar.origin else {
        anyhow::bail!("blobs are found beside sidecar files; a JSON-lines sidecar names none");
    };
    Ok(match sidecar.text("blob") {
        Some(name) => path.parent().unwrap_or(path).join(name),
        None => path.with_extension(""),
    })
}
