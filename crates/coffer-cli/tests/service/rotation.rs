//! The rotation saga end to end: tracked data keys rewrapped, untracked ciphertexts
//! still decrypting after the saga (the old version stays `retiring`), one saga per
//! key, rollback only before the switch, verification with anchoring — and a crash
//! (SIGKILL) at every step of a real `coffer serve`, after which a restarted server
//! finishes the saga. The preflight refusal of untracked use is in `untracked.rs`.
//!
//! The server answers a start or a resume with 202 and its rotation worker runs the
//! saga; these tests wait for it with `Client::wait_rotation` (`settle`). The worker's
//! own properties (pauses across restarts, disconnects, concurrent starts and resumes,
//! the list) are in `rotation_worker.rs`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffer_api::crypto::{DatakeyRequest, RewrapRequest};
use coffer_api::rotation::{RotationView, StartRotationRequest};
use coffer_api::{B64, ErrorCode};
use coffer_client::{Client, ClientError, Waited};
use coffer_core::saga::Step;

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::{TestServer, temp_dir};

/// `POST /v1/kms/rotations`: the 202'd view, before the worker ran anything. With
/// `retire_untracked`: these tests wrap untracked ciphertexts to show what becomes of
/// them, which preflight would otherwise refuse (`untracked.rs` shows that).
pub async fn accepted(
    client: &Client,
    key: &str,
    until: Option<&str>,
) -> Result<RotationView, ClientError> {
    client
        .start_rotation(&StartRotationRequest {
            key_id: key.into(),
            until: until.map(str::to_owned),
            retire_untracked: true,
            ..Default::default()
        })
        .await
}

/// The rotation once the server's worker settled it (finished, paused or failed).
pub async fn settle(client: &Client, view: RotationView) -> RotationView {
    match client
        .wait_rotation(&view.rotation_id, Duration::from_secs(60), |_| {})
        .await
        .unwrap()
    {
        Waited::Settled(view) => view,
        Waited::StillRunning(view) => panic!("the rotation did not settle: {view:?}"),
    }
}

/// Starts a rotation and waits for the worker to settle it.
pub async fn start(
    client: &Client,
    key: &str,
    until: Option<&str>,
) -> Result<RotationView, ClientError> {
    let view = accepted(client, key, until).await?;
    Ok(settle(client, view).await)
}

async fn tracked_datakey(client: &Client, key: &str, id: &str) -> Vec<u8> {
    let request = DatakeyRequest {
        key_id: key.into(),
        track_id: Some(id.into()),
        ..Default::default()
    };
    let answer = client.datakey(&request).await.unwrap();
    answer.plaintext.unwrap().expose_secret().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_rewraps_tracked_keys_and_leaves_the_old_version_decrypt_only() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "kek").await;
    let dk1 = tracked_datakey(&acme, &key, "blob-1").await;
    let dk2 = tracked_datakey(&acme, &key, "blob-2").await;
    let untracked = acme
        .wrap(&wrap_request(&key, b"untracked", &[]))
        .await
        .unwrap();

    let done = start(&acme, "alias/kek", None).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.from_version, done.to_version),
        ("completed", 1, Some(2))
    );
    assert_eq!(done.tracked_remaining, 0);
    for (id, plaintext) in [("blob-1", &dk1), ("blob-2", &dk2)] {
        let tracked = acme.tracked(id).await.unwrap();
        assert_eq!(tracked.key_version, 2);
        let opened = acme
            .unwrap(&unwrap_request(&tracked.ciphertext, &[]))
            .await
            .unwrap();
        assert_eq!(opened.plaintext.expose_secret(), plaintext.as_slice());
    }
    // Untracked: never rewrapped, so the old version stays retiring (decrypt-only)
    // until the tracker shows it quiet.
    let opened = acme
        .unwrap(&unwrap_request(&untracked.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"untracked");
    assert_eq!(
        acme.show_key(&key).await.unwrap().versions[0].state,
        "retiring"
    );
    assert_eq!(
        acme.wrap(&wrap_request(&key, b"new", &[]))
            .await
            .unwrap()
            .key_version,
        2
    );
    let verified = acme.verify_rotation(&done.rotation_id).await.unwrap();
    assert!(verified.ok, "{verified:?}");
    assert!(verified.anchored && verified.violations.is_empty());
    let refs = acme.references(&key).await.unwrap();
    assert!(
        refs.versions
            .iter()
            .any(|v| v.version == 2 && v.tracked == 2 && !v.principals.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_saga_per_key_and_rollback_only_before_the_switch() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "kek").await;
    let sealed = acme.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();

    // Staged: up to, not past, the switch.
    let staged = start(&acme, &key, Some("stage")).await.unwrap();
    assert_eq!(
        (
            staged.status.as_str(),
            staged.step.as_str(),
            staged.switched
        ),
        ("running", "switch_pointer", false)
    );
    assert_eq!(code_of(start(&acme, &key, None).await), ErrorCode::Conflict);
    let rolled = acme.rollback_rotation(&staged.rotation_id).await.unwrap();
    assert_eq!(rolled.status, "rolled-back");
    let shown = acme.show_key(&key).await.unwrap();
    assert_eq!(shown.primary_version, 1);
    assert_eq!(
        shown.versions[1].state, "destroyed",
        "the staged version was compensated"
    );
    acme.unwrap(&unwrap_request(&sealed.ciphertext, &[]))
        .await
        .unwrap();

    // Past the switch: rollback is refused and names resume.
    let switched = start(&acme, &key, Some("switch_pointer")).await.unwrap();
    assert!(switched.switched);
    match acme.rollback_rotation(&switched.rotation_id).await {
        Err(ClientError::Api { code, message, .. }) => {
            assert_eq!(code, ErrorCode::Conflict);
            assert!(
                message.contains(&format!("coffer rotate resume {}", switched.rotation_id)),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let resumed = acme
        .resume_rotation(&switched.rotation_id, &Default::default())
        .await
        .unwrap();
    let resumed = settle(&acme, resumed).await;
    assert_eq!(
        (resumed.status.as_str(), resumed.to_version),
        ("completed", Some(3))
    );
    // Rewrap moves an untracked ciphertext forward while its version is retiring.
    let moved = acme
        .rewrap(&RewrapRequest {
            ciphertext: B64(sealed.ciphertext.0.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(moved.key_version, 3);
}

/// A `coffer serve` child process with a data directory.
pub struct Served {
    pub child: Child,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn coffer(dir: &std::path::Path, api: u16, ops: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COFFER_DATA_DIR", dir)
        .env("COFFER_API_ADDR", format!("127.0.0.1:{api}"))
        .env("COFFER_METRICS_ADDR", format!("127.0.0.1:{ops}"))
        .env("COFFER_AUDIT_CHECKPOINT_INTERVAL", "1h");
    command
}

async fn serve(dir: &std::path::Path, api: u16, ops: u16, failpoint: Option<Step>) -> Served {
    serve_with(dir, api, ops, failpoint.map(Step::as_str), &[]).await
}

/// `coffer serve` with `COFFER_FAILPOINT=rotation:<failpoint>` and `env`, once ready.
pub async fn serve_with(
    dir: &std::path::Path,
    api: u16,
    ops: u16,
    failpoint: Option<&str>,
    env: &[(&str, &str)],
) -> Served {
    let mut command = coffer(dir, api, ops);
    let log = std::fs::File::create(dir.join(format!(
        "serve-{}.log",
        failpoint.unwrap_or("clean").replace(':', "-")
    )))
    .unwrap();
    command.arg("serve").stdout(Stdio::null()).stderr(log);
    command.envs(env.iter().copied());
    if let Some(point) = failpoint {
        command.env("COFFER_FAILPOINT", format!("rotation:{point}"));
    }
    let served = Served {
        child: command.spawn().unwrap(),
    };
    let ops_url = format!("http://127.0.0.1:{ops}");
    let probe = Client::new(&format!("http://127.0.0.1:{api}"), None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(probe.readyz(&ops_url).await, Ok(true)) {
        assert!(
            Instant::now() < deadline,
            "coffer serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_is_finished_by_the_restarted_server() {
    for step in Step::ALL {
        let dir = temp_dir();
        let (api, ops) = (free_port(), free_port());
        let init = coffer(&dir, api, ops).arg("init").output().unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let stdout = String::from_utf8_lossy(&init.stdout);
        let admin_token = stdout
            .lines()
            .find_map(|l| l.strip_prefix("admin token: "))
            .unwrap()
            .to_owned();
        let url = format!("http://127.0.0.1:{api}");

        let mut first = serve(&dir, api, ops, Some(step)).await;
        let admin = Client::new(&url, Some(admin_token.clone())).unwrap();
        admin
            .create_tenant(&coffer_api::admin::CreateTenantRequest {
                name: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let minted = admin
            .mint_token(&coffer_api::admin::MintTokenRequest {
                tenant: Some("acme".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let acme = Client::new(&url, Some(minted.token.clone())).unwrap();
        let key = create(&acme, "aes-256", "kek").await;
        let data_key = tracked_datakey(&acme, &key, "row-1").await;
        let untracked = acme
            .wrap(&wrap_request(&key, b"untracked", &[]))
            .await
            .unwrap();

        // The server's worker dies (SIGKILL) as the step is about to run. The request
        // was answered 202 before, unless the kill beat the answer out.
        let _ = accepted(&acme, &key, None).await;
        let status = first.child.wait().unwrap();
        assert!(!status.success(), "{step}: killed");

        let _second = serve(&dir, api, ops, None).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        let rotation_id = loop {
            let log = admin.audit_entries(0, 10_000).await.unwrap();
            let id = log.lines().find_map(|l| {
                let e: coffer_audit::ExportedEntry = serde_json::from_str(l).ok()?;
                (e.entry.op == "rotation.start").then(|| {
                    e.entry
                        .request_id
                        .trim_start_matches("rotation:")
                        .to_owned()
                })
            });
            if let Some(id) = id {
                let view = acme.rotation(&id).await.unwrap();
                if view.status != "running" {
                    break id;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{step}: the restarted server did not finish the rotation"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let view = acme.rotation(&rotation_id).await.unwrap();
        assert_eq!(view.status, "completed", "{step}: {view:?}");
        let verified = acme.verify_rotation(&rotation_id).await.unwrap();
        assert!(verified.violations.is_empty(), "{step}: {verified:?}");
        assert!(verified.anchored, "{step}: anchored");
        let tracked = acme.tracked("row-1").await.unwrap();
        let opened = acme
            .unwrap(&unwrap_request(&tracked.ciphertext, &[]))
            .await
            .unwrap();
        assert_eq!(
            opened.plaintext.expose_secret(),
            data_key.as_slice(),
            "{step}"
        );
        let opened = acme
            .unwrap(&unwrap_request(&untracked.ciphertext, &[]))
            .await
            .unwrap();
        assert_eq!(opened.plaintext.expose_secret(), b"untracked", "{step}");
        let shown = acme.show_key(&key).await.unwrap();
        assert_eq!(
            shown.versions.iter().filter(|v| v.primary).count(),
            1,
            "{step}"
        );
    }
}

/// Seed 001's flow with the real binary against a real server: on a key with an
/// untracked ciphertext (plain `encrypt`), `coffer rotate all` refuses in preflight
/// naming the principal, and the server refuses the start itself; with
/// `--retire-untracked` it rotates and validates, leaves evidence (recording the choice)
/// with a manifest, `verify` passes, and the untracked ciphertext still decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coffer_rotate_all_and_verify_against_a_server() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "kek").await;
    let _ = tracked_datakey(&acme, &key, "row-1").await;
    let old = acme
        .wrap(&wrap_request(&key, b"made before the rotation", &[]))
        .await
        .unwrap();
    let corpus = temp_dir().join("corpus.jsonl");
    let line = serde_json::json!({ "ciphertext": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &old.ciphertext.0) });
    std::fs::write(&corpus, format!("{line}\n")).unwrap();
    let evidence = temp_dir().join("evidence");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_coffer"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("COFFER_ADDR", &server.api)
            .env("COFFER_OPS_ADDR", &server.ops)
            .env("COFFER_TOKEN", &token)
            .args(args)
            .output()
            .unwrap()
    };
    let refs = acme.references(&key).await.unwrap();
    let principal = refs.versions[0]
        .principals
        .iter()
        .find(|p| p.kind == "encrypt" && p.untracked_recent)
        .expect("the untracked wrap is tracked as encrypt use")
        .principal
        .clone();
    let refused = run(&["rotate", "all", "alias/kek"]);
    let said = String::from_utf8_lossy(&refused.stdout).to_string();
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("no recent untracked use") && said.contains("FAILED"),
        "{said}"
    );
    assert!(said.contains(&format!("{principal} encrypt 1x")), "{said}");
    assert!(
        acme.list_rotations(&Default::default())
            .await
            .unwrap()
            .rotations
            .is_empty()
    );
    // The server refuses too, whatever the client checked.
    match acme
        .start_rotation(&StartRotationRequest {
            key_id: key.clone(),
            ..Default::default()
        })
        .await
    {
        Err(ClientError::Api { code, message, .. }) => {
            assert_eq!(code, ErrorCode::UntrackedUse);
            assert_eq!(code.status(), 409);
            assert!(message.contains(&principal), "{message}");
        }
        other => panic!("expected untracked_use, got {other:?}"),
    }

    let all = run(&[
        "rotate",
        "--evidence-dir",
        evidence.to_str().unwrap(),
        "all",
        "alias/kek",
        "--retire-untracked",
    ]);
    let stdout = String::from_utf8_lossy(&all.stdout).to_string();
    assert!(
        all.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rotation:"))
        .map(|s| s.trim().to_owned())
        .expect("rotation id");
    assert!(evidence.join("evidence.jsonl").exists() && evidence.join("MANIFEST.sha256").exists());
    let verify = run(&["rotate", "verify", &id]);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out}");
    assert!(out.contains("verdict:      ok"), "{out}");
    let listed = run(&[
        "rotate",
        "list",
        "--key",
        "alias/kek",
        "--status",
        "completed",
    ]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success() && table.contains(&id), "{table}");
    let listed = run(&["--json", "rotate", "list", "--status", "running"]);
    let none: coffer_api::rotation::RotationList = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(none.rotations.is_empty(), "{none:?}");
    assert!(
        !String::from_utf8_lossy(&all.stderr).contains(&token),
        "the token never reaches output"
    );
    assert_eq!(acme.tracked("row-1").await.unwrap().key_version, 2);
    let opened = acme
        .unwrap(&unwrap_request(&old.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(
        opened.plaintext.expose_secret(),
        b"made before the rotation"
    );
    assert_eq!(
        acme.show_key(&key).await.unwrap().versions[0].state,
        "retiring"
    );
    let evidence = std::fs::read_to_string(evidence.join("evidence.jsonl")).unwrap();
    assert!(
        evidence.contains("accepted with --retire-untracked") && evidence.contains(&principal),
        "{evidence}"
    );
    assert!(
        evidence.contains("\"rotation.retire-untracked\""),
        "{evidence}"
    );
    // `all`'s validation round trip on version 2 is a probe, not untracked use: the
    // next rotation's preflight passes.
    let refs = acme.references(&key).await.unwrap();
    let v2 = refs.versions.iter().find(|v| v.version == 2).unwrap();
    let kinds: Vec<&str> = v2.principals.iter().map(|p| p.kind.as_str()).collect();
    assert!(
        kinds.contains(&"probe") && !kinds.contains(&"encrypt"),
        "{kinds:?}"
    );
    let again = run(&["rotate", "preflight", "alias/kek"]);
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{said}");
    // The start's audit entry records the choice and the use it accepted.
    let log = server.admin().audit_entries(0, 10_000).await.unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"rotation.start\"")
            && l.contains("retire-untracked")
            && l.contains(&principal)),
        "{log}"
    );
}

/// With an overlap policy the saga leaves the old version `retiring`: untracked
/// ciphertexts and old signatures keep working until the overlap ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_overlap_policy_the_old_version_keeps_decrypting() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let request = coffer_api::keys::CreateKeyRequest {
        spec: "aes-256".into(),
        alias: Some("kek".into()),
        rotation: Some(coffer_api::keys::RotationPolicyView {
            overlap: Some("14d".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let key = acme.create_key(&request).await.unwrap().key_id;
    let untracked = acme
        .wrap(&wrap_request(&key, b"untracked", &[]))
        .await
        .unwrap();
    let done = start(&acme, &key, None).await.unwrap();
    assert_eq!(done.status, "completed");
    let shown = acme.show_key(&key).await.unwrap();
    assert_eq!(shown.versions[0].state, "retiring");
    let opened = acme
        .unwrap(&unwrap_request(&untracked.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"untracked");
    let verified = acme.verify_rotation(&done.rotation_id).await.unwrap();
    assert!(verified.violations.is_empty(), "{verified:?}");
}

/// `POST /v1/sys/unseal` needs no token, so on an unsealed server it must do nothing:
/// a rotation paused with `until` stays where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unseal_call_on_an_unsealed_server_leaves_paused_rotations_alone() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "paused").await;
    let paused = start(&acme, &key, Some("stage")).await.unwrap();
    assert_eq!(
        (paused.status.as_str(), paused.step.as_str()),
        ("running", "switch_pointer")
    );
    let anonymous = server.anonymous();
    let request = coffer_api::admin::UnsealRequest {
        share: None,
        passphrase: Some(coffer_api::B64Secret::new(b"guess".to_vec())),
    };
    let status = anonymous.unseal(&request).await.unwrap();
    assert!(!status.sealed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = acme.rotation(&paused.rotation_id).await.unwrap();
    assert_eq!(
        (after.status.as_str(), after.step.as_str()),
        ("running", "switch_pointer"),
        "the unseal call drove the paused rotation on"
    );
}
