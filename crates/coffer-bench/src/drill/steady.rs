//! One open-loop phase of seed 002's mix (70 % verify, 20 % sign, 10 % wrap; Ed25519
//! and AES-256). The network-jitter drill (`scripts/drills/network-jitter`) runs it
//! in a network namespace twice, before and after adding `tc netem` delay and loss to
//! the namespace's loopback, and compares the two.

use std::sync::Arc;
use std::time::Duration;

use coffer_client::Client;

use super::{Common, Metrics, openloop, snapshot};
use crate::load::Request;
use crate::scenarios;
use crate::setup::Target;

#[derive(clap::Args)]
pub struct SteadyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 200.0, value_parser = super::positive)]
    rate: f64,
    /// Seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

pub async fn run(target: &Target, args: SteadyArgs) -> anyhow::Result<serde_json::Value> {
    let client = Client::new(&target.api, Some(target.token.clone()))?;
    let message = [0x42u8; 64];
    let signer = scenarios::key(&client, "ed25519").await?;
    let signature = scenarios::signature(&client, &signer, &message).await?;
    let aes = scenarios::key(&client, "aes-256").await?;
    let url = |path: &str| format!("{}{path}", target.api);
    let token = Some(target.token.as_str());
    let mut verify = Request::new(
        url("/v1/kms/verify"),
        format!(
            r#"{{"key_id":"{signer}","message":"{}","signature":"{signature}"}}"#,
            scenarios::b64(&message)
        ),
        token,
        "verify",
    );
    verify.expect_valid = true;
    let requests = vec![
        verify,
        Request::new(
            url("/v1/kms/sign"),
            format!(
                r#"{{"key_id":"{signer}","message":"{}"}}"#,
                scenarios::b64(&message)
            ),
            token,
            "sign",
        ),
        Request::new(
            url("/v1/kms/wrap"),
            format!(
                r#"{{"key_id":"{aes}","plaintext":"{}"}}"#,
                scenarios::b64(&[7u8; 32])
            ),
            token,
            "wrap",
        ),
    ];
    let out = &args.common.out;
    let before = snapshot(target, out, "metrics-before.txt").await?;
    let outcome = openloop::run(
        Arc::new(requests),
        Arc::new(|_, n| match n % 10 {
            0..=6 => 0,
            7 | 8 => 1,
            _ => 2,
        }),
        args.rate,
        Duration::from_secs(args.seconds.max(1)),
        args.common.max_requests,
        args.common.max_outstanding,
    )
    .await;
    let after = snapshot(target, out, "metrics-after.txt").await?;
    Ok(serde_json::json!({
        "drill": "steady",
        "mix": "70% verify, 20% sign (Ed25519), 10% wrap (AES-256)",
        "phase": outcome.json("steady"),
        "metrics_delta": Metrics::deltas(&before, &after, &["rejected_total", "kms_reject_total", "kms_ops_total"]),
    }))
}
