//! Seed 001's token key and enclave allow-list rotated together through the `coffer`
//! binary: the profile's `allowed_measurements` (or `--allowed-measurements`) go in
//! with the switch, and `validate` runs the smoke checks attested (unwrap, a
//! refresh-style rewrap, sign) with documents it makes from a test authority's key: a
//! measurement on the new list must pass, the one the change removed must be refused,
//! and both outcomes are in the evidence; the enclave health URL (a local server) is
//! checked before and after.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use coffer_api::keys::CreateKeyRequest;
use coffer_attest::Measurement;
use coffer_attest::test_format::Authority;
use coffer_client::Client;

use super::attestation::{measurement, server_trusting, set_policy};
use super::harness::{TestServer, temp_dir};
use super::seed001::{HealthEndpoint, evidence, line};

const TOKEN_ENV: &str = "SEED001_ATTESTED_TOKEN";

struct Deployment {
    server: TestServer,
    token: String,
    dir: PathBuf,
}

impl Deployment {
    async fn new(authority: &Authority) -> Self {
        let server = server_trusting(authority).await;
        let token = server.tenant_token("payments").await;
        Self {
            server,
            token,
            dir: temp_dir(),
        }
    }

    fn client(&self) -> Client {
        self.server.client(&self.token)
    }

    async fn key(&self, spec: &str, alias: &str) -> String {
        self.client()
            .create_key(&CreateKeyRequest {
                spec: spec.into(),
                alias: Some(alias.into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .key_id
    }

    /// A 0600 PEM file holding the authority's PKCS #8 key.
    fn key_file(&self, name: &str, pkcs8: &[u8], mode: u32) -> PathBuf {
        let path = self.dir.join(name);
        let body = base64::engine::general_purpose::STANDARD.encode(pkcs8);
        std::fs::write(
            &path,
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn profile(&self, name: &str, extra: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[env.staging]\naddr = \"{}\"\nops_addr = \"{}\"\ntoken_env = \"{TOKEN_ENV}\"\n{extra}\n",
                self.server.api, self.server.ops
            ),
        )
        .unwrap();
        path
    }

    fn rotate(&self, profile: &Path, evidence: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(TOKEN_ENV, &self.token)
            .args(["rotate", "--env", "staging", "--profiles"])
            .arg(profile)
            .arg("--evidence-dir")
            .arg(evidence)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

fn list(ms: &[&Measurement]) -> String {
    let quoted: Vec<String> = ms.iter().map(|m| format!("\"{m}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_rotates_key_and_allow_list_and_validate_proves_the_new_list_attested() {
    let (authority, pkcs8) = Authority::generate_ed25519().unwrap();
    let d = Deployment::new(&authority).await;
    let (m1, m2) = (measurement(1), measurement(2));
    let key = d.key("aes-256", "tokens").await;
    assert_eq!(set_policy(&d.client(), &key, &["unwrap"], &[&m1]).await, 1);
    let enclave = HealthEndpoint::new(200);
    let key_file = d.key_file("authority.pem", &pkcs8, 0o600);
    let profile = d.profile(
        "attested",
        &format!(
            "enclave_healthcheck_url = \"{}\"\nallowed_measurements = {}\n\
             attestation_authority_key_file = \"{}\"\n",
            enclave.url,
            list(&[&m2]),
            key_file.display()
        ),
    );
    let ev = d.dir.join("evidence");
    let (code, out, err) = d.rotate(&profile, &ev, &["all", &key]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("attested as an allowed measurement"),
        "{out}\n{err}"
    );
    assert!(out.contains("refused (measurement_not_allowed)"), "{out}");

    let current = d
        .client()
        .attestation_policies(&key)
        .await
        .unwrap()
        .current
        .unwrap();
    assert_eq!(
        (current.version, current.measurements),
        (2, vec![m2.to_string()])
    );
    assert_eq!(d.client().show_key(&key).await.unwrap().primary_version, 2);

    let lines = evidence(&ev);
    let plan = line(&lines, "validate.attestation");
    assert_eq!(plan["outcome"], "ok", "{plan}");
    assert_eq!(plan["response"]["allowed"], m2.to_string());
    assert_eq!(plan["response"]["removed"], m1.to_string());
    assert_eq!(plan["response"]["format"], "coffer-test");
    let refused = line(&lines, "validate.attested.removed");
    assert_eq!(refused["outcome"], "ok", "{refused}");
    for step in [
        "validate.unwrap",
        "validate.rewrap",
        "validate.unwrap-rewrapped",
    ] {
        assert_eq!(line(&lines, step)["outcome"], "ok", "{step}");
    }
    let result = line(&lines, "validate.result");
    assert_eq!(result["outcome"], "ok", "{result}");
    // Before (preflight) and after (validation).
    assert_eq!(line(&lines, "health.before.enclave")["outcome"], "ok");
    assert_eq!(
        line(&lines, "health.after-validation.enclave")["outcome"],
        "ok"
    );
    assert_eq!(enclave.hits.load(Ordering::SeqCst), 2);
    let started = lines
        .iter()
        .find(|l| l["step"] == "rotation.start")
        .unwrap();
    assert_eq!(
        started["response"]["allowed_measurements"][0],
        m2.to_string(),
        "{started}"
    );
}

/// The checks can fail: documents from an authority the server does not trust are
/// refused on the allowed path too (and the removed path sees `attestation_required`,
/// not the allow-list's refusal), so validate exits 1; a key file others can read is
/// refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_fails_with_an_untrusted_authority_and_refuses_a_shared_key_file() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let d = Deployment::new(&authority).await;
    let (m1, m2) = (measurement(1), measurement(2));
    let key = d.key("ed25519", "token-signing").await;
    set_policy(&d.client(), &key, &["sign"], &[&m1, &m2]).await;
    set_policy(&d.client(), &key, &["sign"], &[&m2]).await;
    let (_, other) = Authority::generate_ed25519().unwrap();
    let untrusted = d.key_file("untrusted.pem", &other, 0o600);
    let profile = d.profile("plain", "");
    let ev = d.dir.join("untrusted");
    let file = untrusted.display().to_string();
    let (code, out, err) = d.rotate(
        &profile,
        &ev,
        &["validate", &key, "--attestation-authority-key", &file],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let lines = evidence(&ev);
    assert_eq!(line(&lines, "validate.sign")["outcome"], "failed");
    let refused = line(&lines, "validate.attested.removed");
    assert_eq!(refused["outcome"], "failed", "{refused}");
    assert!(
        refused["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("expected measurement_not_allowed"),
        "{refused}"
    );

    let shared = d.key_file("shared.pem", &other, 0o644);
    let ev = d.dir.join("shared");
    let shared = shared.display().to_string();
    let (code, _, err) = d.rotate(
        &profile,
        &ev,
        &["validate", &key, "--attestation-authority-key", &shared],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("readable by others"), "{err}");
    assert!(!evidence(&ev).iter().any(|l| l["step"] == "validate.key"));
}

/// `--allowed-measurements` on `stage`: the list is recorded with the rotation and not
/// in force before the switch; a rollback leaves the previous list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_with_allowed_measurements_changes_nothing_before_the_switch() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let d = Deployment::new(&authority).await;
    let (m1, m2, m3) = (measurement(1), measurement(2), measurement(3));
    let key = d.key("aes-256", "tokens").await;
    set_policy(&d.client(), &key, &["unwrap", "datakey"], &[&m1]).await;
    let profile = d.profile("stage", "");
    let ev = d.dir.join("stage");
    let flag = format!("{m2},{m3}");
    let (code, id, err) = d.rotate(
        &profile,
        &ev,
        &["stage", &key, "--allowed-measurements", &flag],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("allow-list:"), "{err}");
    let policies = d.client().attestation_policies(&key).await.unwrap();
    assert_eq!(policies.versions.len(), 1);
    let (code, out, err) = d.rotate(&profile, &ev, &["rollback", id.trim()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let policies = d.client().attestation_policies(&key).await.unwrap();
    assert_eq!(policies.versions.len(), 1);
    assert_eq!(policies.current.unwrap().measurements, vec![m1.to_string()]);
}
