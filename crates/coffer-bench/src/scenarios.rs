//! The scenarios: what each run sends. Keys, ciphertexts and signatures are made once,
//! before the clock starts.

use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_api::B64;
use coffer_api::crypto::{DatakeyRequest, SignRequest, WrapRequest};
use coffer_api::keys::CreateKeyRequest;
use coffer_client::Client;

use crate::load::Request;
use crate::setup::Target;

/// Chooses the request index for worker `w` at global count `n`.
pub type Pick = Arc<dyn Fn(usize, u64) -> usize + Send + Sync>;

/// One run.
pub struct Scenario {
    pub name: &'static str,
    pub requests: Arc<Vec<Request>>,
    pub pick: Pick,
    /// Overrides `--concurrency`.
    pub concurrency: Option<usize>,
    /// Seed 002's reference capacity for this operation, if it states one.
    pub seed: Option<f64>,
    /// Compare against the no-op baseline.
    pub vs_baseline: bool,
}

fn single(name: &'static str, request: Request, seed: Option<f64>) -> Scenario {
    Scenario {
        name,
        requests: Arc::new(vec![request]),
        pick: Arc::new(|_, _| 0),
        concurrency: None,
        seed,
        vs_baseline: true,
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) async fn key(client: &Client, spec: &str) -> anyhow::Result<String> {
    let request = CreateKeyRequest {
        spec: spec.into(),
        ..Default::default()
    };
    Ok(client
        .create_key(&request)
        .await
        .with_context(|| format!("creating a {spec} key"))?
        .key_id)
}

pub(crate) async fn signature(
    client: &Client,
    key: &str,
    message: &[u8],
) -> anyhow::Result<String> {
    let request = SignRequest {
        attestation: None,
        key_id: key.into(),
        message: Some(B64(message.to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
    };
    Ok(b64(&client.sign(&request).await?.signature.0))
}

/// Every scenario against `target`, plus the baseline.
pub async fn all(target: &Target, baseline: &str) -> anyhow::Result<Vec<Scenario>> {
    let client = Client::new(&target.api, Some(target.token.clone()))?;
    let token = Some(target.token.as_str());
    let url = |path: &str| format!("{}{path}", target.api);
    let aes = key(&client, "aes-256").await?;
    let data_key = b64(&[7u8; 32]);
    let wrap_body = format!(r#"{{"key_id":"{aes}","plaintext":"{data_key}"}}"#);
    let sealed = client
        .wrap(&WrapRequest {
            key_id: aes.clone(),
            plaintext: coffer_api::B64Secret::new(vec![7u8; 32]),
            context: Default::default(),
            track_id: None,
        })
        .await?;
    let unwrap_body = format!(r#"{{"ciphertext":"{}"}}"#, b64(&sealed.ciphertext.0));
    let _ = client
        .datakey(&DatakeyRequest {
            key_id: aes.clone(),
            ..Default::default()
        })
        .await?;
    let message = [0x42u8; 64];
    let mut scenarios = vec![
        Scenario {
            vs_baseline: false,
            ..single(
                "baseline-noop",
                Request::new(format!("{baseline}/noop"), wrap_body.clone(), None, "noop"),
                None,
            )
        },
        single(
            "wrap-32B",
            Request::new(url("/v1/kms/wrap"), wrap_body.clone(), token, "wrap"),
            None,
        ),
        single(
            "unwrap-32B",
            Request::new(url("/v1/kms/unwrap"), unwrap_body.clone(), token, "unwrap"),
            None,
        ),
        single(
            "datakey",
            Request::new(
                url("/v1/kms/datakey"),
                format!(r#"{{"key_id":"{aes}"}}"#),
                token,
                "datakey",
            ),
            None,
        ),
    ];
    let mut ed25519 = (String::new(), String::new());
    for (spec, seed) in [
        ("ed25519", Some(11_500.0)),
        ("ecdsa-p256", None),
        ("ml-dsa-65", Some(1_800.0)),
        ("hybrid-ed25519-ml-dsa-65", None),
    ] {
        let id = key(&client, spec).await?;
        let sig = signature(&client, &id, &message).await?;
        let sign_body = format!(r#"{{"key_id":"{id}","message":"{}"}}"#, b64(&message));
        let verify_body = format!(
            r#"{{"key_id":"{id}","message":"{}","signature":"{sig}"}}"#,
            b64(&message)
        );
        let (sign_name, verify_name): (&'static str, &'static str) = match spec {
            "ed25519" => ("sign-ed25519", "verify-ed25519"),
            "ecdsa-p256" => ("sign-ecdsa-p256", "verify-ecdsa-p256"),
            "ml-dsa-65" => ("sign-ml-dsa-65", "verify-ml-dsa-65"),
            _ => ("sign-hybrid", "verify-hybrid"),
        };
        scenarios.push(single(
            sign_name,
            Request::new(url("/v1/kms/sign"), sign_body.clone(), token, "sign"),
            seed,
        ));
        scenarios.push(single(
            verify_name,
            Request::new(url("/v1/kms/verify"), verify_body.clone(), token, "verify"),
            None,
        ));
        if spec == "ed25519" {
            ed25519 = (sign_body, verify_body);
        }
    }
    // Seed 002's mix: 70% verify, 20% sign, 10% wrap (Ed25519 for sign and verify).
    let mix = vec![
        Request::new(url("/v1/kms/verify"), ed25519.1.clone(), token, "verify"),
        Request::new(url("/v1/kms/sign"), ed25519.0.clone(), token, "sign"),
        Request::new(url("/v1/kms/wrap"), wrap_body.clone(), token, "wrap"),
    ];
    scenarios.push(Scenario {
        name: "mix-70v-20s-10w",
        requests: Arc::new(mix),
        pick: Arc::new(|_, n| match n % 10 {
            0..=6 => 0,
            7 | 8 => 1,
            _ => 2,
        }),
        concurrency: None,
        seed: Some(6_000.0),
        vs_baseline: true,
    });
    // ML-DSA signing beside Ed25519 verification: half the connections each; the
    // report gives each kind's p99 (signing runs on its own bounded pool).
    let mldsa = key(&client, "ml-dsa-65").await?;
    let mldsa_sign = format!(r#"{{"key_id":"{mldsa}","message":"{}"}}"#, b64(&message));
    scenarios.push(Scenario {
        name: "mldsa-sign+ed25519-verify",
        requests: Arc::new(vec![
            Request::new(url("/v1/kms/sign"), mldsa_sign, token, "ml-dsa-sign"),
            Request::new(url("/v1/kms/verify"), ed25519.1.clone(), token, "verify"),
        ]),
        pick: Arc::new(|worker, _| worker % 2),
        concurrency: None,
        seed: None,
        vs_baseline: false,
    });
    // Batch wrap: 16 and 64 items per request (reported as items/s); each batch is
    // one audit commit, so its items/s is compared with wrap-32B's req/s.
    for (name, count) in [("wrap-batch-16", 16), ("wrap-batch-64", 64)] {
        let items: Vec<String> = (0..count)
            .map(|_| format!(r#"{{"key_id":"{aes}","plaintext":"{data_key}"}}"#))
            .collect();
        let mut batch = Request::new(
            url("/v1/kms/wrap"),
            format!(r#"{{"items":[{}]}}"#, items.join(",")),
            token,
            "wrap-batch",
        );
        batch.items = count;
        scenarios.push(Scenario {
            vs_baseline: false,
            ..single(name, batch, None)
        });
    }
    // Key creation, durably committed, with 32 concurrent clients.
    scenarios.push(Scenario {
        concurrency: Some(32),
        vs_baseline: false,
        ..single(
            "keys-create",
            Request::new(
                url("/v1/kms/keys"),
                r#"{"spec":"aes-256"}"#.into(),
                token,
                "create",
            ),
            None,
        )
    });
    Ok(scenarios)
}
