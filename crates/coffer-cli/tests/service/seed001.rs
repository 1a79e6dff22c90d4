//! Seed 001's inputs and hooks through the `coffer` binary against a real server:
//! `--expect-version` and `--next-version`, the profile's stage, validate and rollback
//! hooks (run at their points, killed at their timeout, captured into the evidence
//! with credentials masked) and its health-check URLs (recorded before the change,
//! after validation and after a rollback; a failing one before the change stops it).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coffer_api::ErrorCode;
use coffer_api::keys::CreateKeyRequest;
use coffer_api::rotation::{ListRotationsQuery, StartRotationRequest};
use coffer_client::ClientError;
use serde_json::Value;

use super::harness::{TestServer, temp_dir};

/// The variable the profile names for the token; hooks must not see it.
const TOKEN_ENV: &str = "SEED001_TOKEN";
/// Secrets a hook prints; the evidence must mask them.
const PASSWORD: &str = "hunter2-0xBEEF";
const LEAKED_TOKEN: &str = "coffer_v1_LEAKED-BY-A-HOOK";
/// A health endpoint's body; the evidence must not keep it.
const BODY_MARKER: &str = "HEALTH-BODY-MARKER-77";

struct Deployment {
    server: TestServer,
    token: String,
    key: String,
    dir: PathBuf,
}

impl Deployment {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let token = server.tenant_token("payments").await;
        let key = server
            .client(&token)
            .create_key(&CreateKeyRequest {
                spec: "aes-256".into(),
                alias: Some("tokens".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .key_id;
        Self {
            server,
            token,
            key,
            dir: temp_dir(),
        }
    }

    /// A profiles file for `[env.staging]` aimed at this server, with `extra` lines.
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

    /// `coffer rotate --env staging --profiles PROFILE --evidence-dir EVIDENCE ARGS`,
    /// with a clean environment: PATH and the token's variable only.
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

    async fn versions(&self) -> Vec<(u32, String, bool)> {
        let view = self
            .server
            .client(&self.token)
            .show_key(&self.key)
            .await
            .unwrap();
        view.versions
            .iter()
            .map(|v| (v.version, v.state.clone(), v.primary))
            .collect()
    }

    async fn rotations(&self) -> usize {
        self.server
            .client(&self.token)
            .list_rotations(&ListRotationsQuery::default())
            .await
            .unwrap()
            .rotations
            .len()
    }
}

/// The evidence log's lines.
pub fn evidence(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("evidence.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The one line of `step` (panics unless there is exactly one).
pub fn line<'a>(lines: &'a [Value], step: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["step"] == step).collect();
    assert_eq!(found.len(), 1, "{step} in {lines:#?}");
    found[0]
}

fn position(lines: &[Value], step: &str) -> usize {
    lines
        .iter()
        .position(|l| l["step"] == step)
        .unwrap_or_else(|| panic!("no {step} in {lines:#?}"))
}

/// A tiny HTTP server answering every request with `status` and a marker body;
/// counts the requests.
pub struct HealthEndpoint {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl HealthEndpoint {
    pub fn new(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    request.push(byte[0]);
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY_MARKER}",
                    BODY_MARKER.len()
                );
            }
        });
        Self { url, hits }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_version_refuses_a_mismatch_and_changes_nothing() {
    let d = Deployment::new().await;
    let profile = d.profile("plain", "");
    let ev = d.dir.join("refused");
    for command in ["stage", "all"] {
        let (code, out, err) = d.rotate(&profile, &ev, &[command, &d.key, "--expect-version", "2"]);
        assert_eq!(code, 1, "{command}: {out}\n{err}");
        assert!(err.contains("expect-version check: FAILED"), "{err}");
        assert!(err.contains("primary version is 1, not 2"), "{err}");
    }
    assert_eq!(d.versions().await, [(1, "active".to_owned(), true)]);
    assert_eq!(d.rotations().await, 0, "no rotation was recorded");
    let lines = evidence(&ev);
    let refusals: Vec<&Value> = lines
        .iter()
        .filter(|l| l["step"] == "check.expect-version")
        .collect();
    assert_eq!(refusals.len(), 2);
    for refusal in refusals {
        assert_eq!(refusal["outcome"], "failed");
        assert_eq!(refusal["response"]["expected"], 2);
    }
    // The API answers the same refusal with its own code.
    let refused = d
        .server
        .client(&d.token)
        .start_rotation(&StartRotationRequest {
            key_id: d.key.clone(),
            expect_version: Some(7),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ClientError::Api {
                status: 409,
                code: ErrorCode::VersionMismatch,
                ..
            }
        ),
        "{refused:?}"
    );

    // The right version starts it; both checks pass and are recorded.
    let ev = d.dir.join("accepted");
    let (code, out, err) = d.rotate(
        &profile,
        &ev,
        &[
            "stage",
            &d.key,
            "--expect-version",
            "1",
            "--next-version",
            "2",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let lines = evidence(&ev);
    let expect = line(&lines, "check.expect-version");
    assert_eq!(
        (&expect["outcome"], &expect["response"]["primary"]),
        (&"ok".into(), &1.into())
    );
    let next = line(&lines, "check.next-version");
    assert_eq!(
        (&next["outcome"], &next["response"]["staged"]),
        (&"ok".into(), &2.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_version_mismatch_fails_the_run_before_the_old_version_retires() {
    let d = Deployment::new().await;
    let profile = d.profile("plain", "");
    let ev = d.dir.join("evidence");
    let (code, out, err) = d.rotate(&profile, &ev, &["all", &d.key, "--next-version", "5"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("next-version check: FAILED: after the switch the primary is v2, not v5"),
        "{err}"
    );
    assert!(err.contains("resume"), "says how to finish: {err}");
    let next = line(&evidence(&ev), "check.next-version").clone();
    assert_eq!(next["outcome"], "failed");
    assert_eq!(
        (&next["response"]["expected"], &next["response"]["primary"]),
        (&5.into(), &2.into())
    );
    // Switched, and the old version not retired: it still decrypts.
    let versions = d.versions().await;
    assert_eq!(versions[1], (2, "active".to_owned(), true), "{versions:?}");
    assert_ne!(versions[0].1, "retired", "{versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_at_their_points_and_land_in_the_evidence_masked() {
    let d = Deployment::new().await;
    // The stage hook proves where it runs (staged: v2 exists, v1 still primary) and
    // that the token's variable is not in its environment.
    let stage = format!(
        "echo \"staging $KMS_KEY_ID v$KMS_KEY_VERSION to v$NEXT_KMS_KEY_VERSION in $COFFER_ENV\"; \
         echo password={PASSWORD}; echo \"auth {LEAKED_TOKEN}\" >&2; test -z \"${TOKEN_ENV}\""
    );
    let profile = d.profile(
        "hooks",
        &format!(
            "stage_cmd = '{stage}'\nvalidate_cmd = 'echo validated $NEXT_KMS_KEY_VERSION'\n\
             rollback_cmd = 'echo rolled back $COFFER_ROTATION_ID'\n"
        ),
    );
    let ev = d.dir.join("all");
    let (code, out, err) = d.rotate(&profile, &ev, &["all", &d.key]);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines = evidence(&ev);
    let staged = line(&lines, "hook.stage");
    assert_eq!(staged["outcome"], "ok", "{staged}");
    assert_eq!(staged["response"]["exit_code"], 0);
    assert_eq!(staged["response"]["command"], "<redacted>");
    assert_eq!(
        staged["response"]["stdout"],
        format!(
            "staging {} v1 to v2 in staging\npassword=<redacted>\n",
            d.key
        )
    );
    assert_eq!(staged["response"]["stderr"], "auth <redacted>\n");
    assert!(staged["response"]["duration_ms"].is_u64());
    // The stage hook ran between the start and the switch (the resume that switches).
    assert!(position(&lines, "rotation.start") < position(&lines, "hook.stage"));
    assert!(position(&lines, "hook.stage") < position(&lines, "resume"));
    let validated = line(&lines, "hook.validate");
    assert_eq!(validated["response"]["stdout"], "validated 2\n");
    let text = std::fs::read_to_string(ev.join("evidence.jsonl")).unwrap();
    for secret in [PASSWORD, LEAKED_TOKEN, &d.token] {
        assert!(!text.contains(secret), "{secret} in the evidence");
        assert!(!err.contains(secret), "{secret} printed");
    }
    let versions = d.versions().await;
    assert_eq!(versions[1], (2, "active".to_owned(), true), "{versions:?}");

    // Stage, then roll back: the rollback hook runs after the server rolled it back.
    let ev = d.dir.join("rollback");
    let (code, id, err) = d.rotate(&profile, &ev, &["stage", &d.key]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_owned();
    let (code, out, err) = d.rotate(&profile, &ev, &["rollback", &id]);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines = evidence(&ev);
    let rolled = line(&lines, "hook.rollback");
    assert_eq!(rolled["response"]["stdout"], format!("rolled back {id}\n"));
    assert!(position(&lines, "rollback") < position(&lines, "hook.rollback"));

    // --show-commands shows the command line and the output as they are.
    let ev = d.dir.join("shown");
    let (code, _, err) = d.rotate(&profile, &ev, &["stage", &d.key, "--show-commands"]);
    assert_eq!(code, 0, "{err}");
    let lines = evidence(&ev);
    let staged = line(&lines, "hook.stage");
    assert_eq!(staged["response"]["command"], stage.as_str());
    assert!(
        staged["response"]["stdout"]
            .as_str()
            .unwrap()
            .contains(PASSWORD)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_validate_hook_fails_all_before_the_old_version_retires() {
    let d = Deployment::new().await;
    let profile = d.profile(
        "failing",
        "validate_cmd = 'echo smoke failed >&2; exit 3'\n",
    );
    let ev = d.dir.join("evidence");
    let (code, out, err) = d.rotate(&profile, &ev, &["all", &d.key]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("hook.validate: exited 3"), "{err}");
    assert!(err.contains("validation failed after the switch"), "{err}");
    let lines = evidence(&ev);
    let hook = line(&lines, "hook.validate");
    assert_eq!(hook["outcome"], "failed");
    assert_eq!(hook["response"]["exit_code"], 3);
    assert_eq!(hook["response"]["stderr"], "smoke failed\n");
    let versions = d.versions().await;
    assert_ne!(versions[0].1, "retired", "{versions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_hangs_is_killed_at_its_timeout() {
    let d = Deployment::new().await;
    let marker = d.dir.join("late");
    let profile = d.profile(
        "hang",
        &format!(
            "hook_timeout = \"1s\"\nvalidate_cmd = 'echo started; (sleep 5; touch {}) & sleep 60'\n",
            marker.display()
        ),
    );
    let ev = d.dir.join("evidence");
    let started = Instant::now();
    let (code, out, err) = d.rotate(&profile, &ev, &["validate", &d.key]);
    let took = started.elapsed();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(
        err.contains("hook.validate: killed at its timeout (1s)"),
        "{err}"
    );
    let hook = line(&evidence(&ev), "hook.validate").clone();
    assert_eq!(hook["outcome"], "failed");
    assert_eq!(hook["response"]["timed_out"], true);
    assert_eq!(hook["response"]["signal"], 9);
    assert_eq!(hook["response"]["stdout"], "started\n");
    // Its background child was in its process group: killed too, it never wrote.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!marker.exists(), "the hook's child outlived the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_recorded_and_a_failing_one_stops_the_run() {
    let d = Deployment::new().await;
    let enclave = HealthEndpoint::new(200);
    let profile = d.profile(
        "health",
        &format!(
            "api_healthcheck_url = \"{}/healthz\"\nenclave_healthcheck_url = \"{}\"\n\
             healthcheck_timeout = \"2s\"\n",
            d.server.ops, enclave.url
        ),
    );
    let ev = d.dir.join("evidence");
    let (code, id, err) = d.rotate(&profile, &ev, &["stage", &d.key]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("enclave health (before): ok"), "{err}");
    let (code, out, err) = d.rotate(&profile, &ev, &["rollback", id.trim()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = d.rotate(&profile, &ev, &["validate", &d.key]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = d.rotate(&profile, &ev, &["preflight", &d.key]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("enclave health"), "{out}");
    assert_eq!(enclave.hits.load(Ordering::SeqCst), 4);
    let lines = evidence(&ev);
    for moment in ["after-rollback", "after-validation"] {
        for name in ["api", "enclave"] {
            let checked = line(&lines, &format!("health.{moment}.{name}"));
            assert_eq!(checked["outcome"], "ok", "{checked}");
            assert_eq!(checked["response"]["status"], 200);
            assert!(checked["response"]["latency_ms"].is_u64(), "{checked}");
            assert_eq!(
                checked["request"]["authorization"],
                Value::Null,
                "no token sent"
            );
        }
    }
    let before = lines
        .iter()
        .filter(|l| l["step"] == "health.before.enclave")
        .count();
    assert_eq!(before, 2, "stage and preflight");
    let text = std::fs::read_to_string(ev.join("evidence.jsonl")).unwrap();
    assert!(!text.contains(BODY_MARKER), "a body was stored");

    // A failing health check before the change: no rotation starts.
    let down = HealthEndpoint::new(503);
    let profile = d.profile(
        "down",
        &format!("enclave_healthcheck_url = \"{}\"\n", down.url),
    );
    let rotations = d.rotations().await;
    for command in ["stage", "all"] {
        let ev = d.dir.join(format!("down-{command}"));
        let (code, out, err) = d.rotate(&profile, &ev, &[command, &d.key]);
        assert_eq!(code, 1, "{command}: {out}\n{err}");
        let checked = line(&evidence(&ev), "health.before.enclave").clone();
        assert_eq!(checked["response"]["status"], 503);
    }
    assert_eq!(d.rotations().await, rotations, "no rotation started");
    assert_eq!(down.hits.load(Ordering::SeqCst), 2);
}
