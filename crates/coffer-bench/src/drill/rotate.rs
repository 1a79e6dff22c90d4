//! Rotate flood (seed 002 §9: "simulate PQ migration; verify cache miss ratio and
//! staleness alerts; no pq_policy rejects"): hybrid ML-DSA-65 + Ed25519 keys, one
//! signature each, verified (open loop, naming the signing version) while the keys
//! are rotated round robin. Every rotation moves the key's epoch, so its cached
//! verdicts turn stale and are verified again.
//!
//! Figures: the verify cache's hits, misses and stale verdicts over the drill (from
//! `/metrics` before and after), the miss ratio, the oldest verdict served against
//! twice the TTL (`CofferVerifyCacheStale`'s threshold), `pq_policy` rejects (must be
//! 0: every signature is a valid composite) and verifications answered `valid: false`
//! (must be 0).

use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_client::Client;

use super::{Common, Metrics, openloop, snapshot};
use crate::load::Request;
use crate::scenarios;
use crate::setup::Target;

#[derive(clap::Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Hybrid keys to rotate.
    #[arg(long, default_value_t = 20)]
    keys: usize,
    /// Verifications per second (open loop).
    #[arg(long, default_value_t = 300.0, value_parser = super::positive)]
    rate: f64,
    /// Seconds of verifications.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Milliseconds between two rotations.
    #[arg(long, default_value_t = 200)]
    rotate_every_ms: u64,
    /// Rotations at most.
    #[arg(long, default_value_t = 200)]
    max_rotations: u64,
}

pub async fn run(target: &Target, args: RotateArgs) -> anyhow::Result<serde_json::Value> {
    let client = Client::new(&target.api, Some(target.token.clone()))?;
    let message = [0x5au8; 64];
    let mut keys = Vec::new();
    let mut requests = Vec::new();
    for _ in 0..args.keys.max(1) {
        let key = scenarios::key(&client, "hybrid-ed25519-ml-dsa-65").await?;
        let signature = scenarios::signature(&client, &key, &message).await?;
        let body = format!(
            r#"{{"key_id":"{key}","key_version":1,"message":"{}","signature":"{signature}"}}"#,
            scenarios::b64(&message)
        );
        let mut verify = Request::new(
            format!("{}/v1/kms/verify", target.api),
            body,
            Some(&target.token),
            "verify",
        );
        verify.expect_valid = true;
        requests.push(verify);
        keys.push(key);
    }
    let out = &args.common.out;
    let before = snapshot(target, out, "metrics-before.txt").await?;
    let duration = Duration::from_secs(args.seconds.max(1));
    // The rotator: round robin over the keys until the verifications end.
    let rotator = {
        let client = client.clone();
        let keys = keys.clone();
        let (every, max) = (
            Duration::from_millis(args.rotate_every_ms.max(1)),
            args.max_rotations,
        );
        tokio::spawn(async move {
            let until = Instant::now() + duration;
            let (mut done, mut failed) = (0u64, 0u64);
            let mut tick = tokio::time::interval(every);
            while Instant::now() < until && done + failed < max {
                tick.tick().await;
                let key = &keys[usize::try_from(done + failed).unwrap_or(0) % keys.len()];
                match client.rotate_key(key).await {
                    Ok(_) => done += 1,
                    Err(error) => {
                        failed += 1;
                        eprintln!("rotation of {key} failed: {error}");
                    }
                }
            }
            (done, failed)
        })
    };
    let count = requests.len();
    let verifies = openloop::run(
        Arc::new(requests),
        Arc::new(move |_, n| usize::try_from(n).unwrap_or(0) % count),
        args.rate,
        duration,
        args.common.max_requests,
        args.common.max_outstanding,
    )
    .await;
    let (rotations, rotations_failed) = rotator.await?;
    let after = snapshot(target, out, "metrics-after.txt").await?;
    let moved = |name: &str| after.total(name) - before.total(name);
    let (hits, misses, stale) = (
        moved("verify_cache_hit_total"),
        moved("verify_cache_miss_total"),
        moved("verify_cache_stale_total"),
    );
    let lookups = hits + misses + stale;
    let miss_ratio = if lookups > 0.0 {
        (misses + stale) / lookups
    } else {
        0.0
    };
    let stale_max_ms = after.total("verify_cache_stale_max_ms");
    let ttl_ms = after.total("verify_cache_ttl_ms");
    let pq_rejects = after.series("kms_reject_total{reason=\"pq_policy\"}")
        - before.series("kms_reject_total{reason=\"pq_policy\"}");
    Ok(serde_json::json!({
        "drill": "rotate-flood",
        "keys": keys.len(),
        "key_spec": "hybrid-ed25519-ml-dsa-65",
        "rotations": rotations,
        "rotations_failed": rotations_failed,
        "verify": verifies.json("verify"),
        "verify_cache": {
            "hits": hits,
            "misses": misses,
            "stale": stale,
            "miss_ratio": miss_ratio,
            "stale_max_ms": stale_max_ms,
            "ttl_ms": ttl_ms,
        },
        "pq_policy_rejects": pq_rejects,
        "checks": {
            "no_pq_policy_rejects": pq_rejects == 0.0,
            "no_invalid_verdicts": verifies.invalid == 0,
            "staleness_within_twice_the_ttl": stale_max_ms <= 2.0 * ttl_ms,
            "stale_verdicts_seen_after_rotations": rotations == 0 || stale > 0.0,
        },
        "metrics_delta": Metrics::deltas(&before, &after, &[
            "verify_cache_hit_total", "verify_cache_miss_total", "verify_cache_stale_total",
            "kms_reject_total", "rejected_total",
        ]),
    }))
}
