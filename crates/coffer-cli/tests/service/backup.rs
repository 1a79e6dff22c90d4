//! Issue 18's backup half, end to end through the `coffer` binary: `backup create`
//! against a running server, `backup verify` and `backup restore` offline, and the
//! restored server — its known-answer checks pass before `/readyz` is 200, and every
//! ciphertext, signature and MAC made before the backup still opens or verifies.
//! Refusals: a damaged bundle (flipped byte, cut file, manifest mismatch, altered
//! contents behind a recomputed hash), a store that is not empty, another deployment's
//! custody, a token without `admin:backup`; each changes nothing.

use std::path::{Path, PathBuf};

use coffer_api::ErrorCode;
use coffer_api::admin::MintTokenRequest;
use coffer_api::b64::B64;
use coffer_api::crypto::{MacRequest, SignRequest, VerifyMacRequest, VerifyRequest};
use coffer_client::Client;

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::{Db, Stopped, TestServer, temp_dir};

/// Runs `coffer` with only `vars` in its environment: exit code, stdout, stderr.
pub fn coffer(vars: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .env_clear()
        .envs(vars.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// What a deployment made before its backup, to check after the restore.
pub struct Made {
    pub tenant_token: String,
    sealed: Vec<(B64, Vec<u8>, (String, String))>,
    signed: Vec<(String, u32, Vec<u8>, B64)>,
    macs: Vec<(String, u32, Vec<u8>, B64)>,
}

/// A tenant with an AES key (two versions, ciphertexts under both, one with a
/// context), signing keys of four specs with a signature each, and an HMAC key.
pub async fn populate(server: &TestServer) -> Made {
    let tenant_token = server.tenant_token("acme").await;
    let acme = server.client(&tenant_token);
    let aes = create(&acme, "aes-256", "payments").await;
    let mut sealed = Vec::new();
    for round in 0..2 {
        for i in 0..3 {
            let plaintext = format!("data key {round}-{i}").into_bytes();
            let ctx = ("bucket".to_owned(), format!("b{i}"));
            let out = acme
                .wrap(&wrap_request(&aes, &plaintext, &[(&ctx.0, &ctx.1)]))
                .await
                .unwrap();
            sealed.push((out.ciphertext, plaintext, ctx));
        }
        if round == 0 {
            acme.rotate_key(&aes).await.unwrap();
        }
    }
    let mut signed = Vec::new();
    for spec in [
        "ed25519",
        "ecdsa-p256",
        "ml-dsa-65",
        "hybrid-ed25519-ml-dsa-65",
    ] {
        let key = create(&acme, spec, &format!("sign-{spec}")).await;
        let message = format!("release {spec}").into_bytes();
        let out = acme
            .sign(&SignRequest {
                attestation: None,
                key_id: key.clone(),
                message: Some(B64(message.clone())),
                digest: None,
                mu: None,
                algorithm: None,
            })
            .await
            .unwrap();
        signed.push((key, out.key_version, message, out.signature));
    }
    let mac_key = create(&acme, "hmac-sha256", "webhooks").await;
    let out = acme
        .mac(&MacRequest {
            attestation: None,
            key_id: mac_key.clone(),
            message: B64(b"webhook body".to_vec()),
        })
        .await
        .unwrap();
    let macs = vec![(mac_key, out.key_version, b"webhook body".to_vec(), out.mac)];
    Made {
        tenant_token,
        sealed,
        signed,
        macs,
    }
}

/// Everything `made` holds opens or verifies through `client`.
pub async fn check_all(client: &Client, made: &Made) {
    for (ciphertext, plaintext, (k, v)) in &made.sealed {
        let opened = client
            .unwrap(&unwrap_request(ciphertext, &[(k, v)]))
            .await
            .unwrap();
        assert_eq!(opened.plaintext.expose_secret(), &plaintext[..]);
    }
    for (key, version, message, signature) in &made.signed {
        let verified = client
            .verify(&VerifyRequest {
                key_id: key.clone(),
                key_version: Some(*version),
                message: Some(B64(message.clone())),
                signature: signature.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(verified.valid, "{key}");
    }
    for (key, version, message, mac) in &made.macs {
        let verified = client
            .verify_mac(&VerifyMacRequest {
                key_id: key.clone(),
                key_version: Some(*version),
                message: B64(message.clone()),
                mac: mac.clone(),
            })
            .await
            .unwrap();
        assert!(verified.valid);
    }
}

/// `coffer backup create` against `server` into a new directory: the bundle's path.
pub fn create_bundle(server: &TestServer) -> PathBuf {
    let out = temp_dir().join("coffer.bundle");
    let path = out.display().to_string();
    let (code, stdout, stderr) = server.cli(&server.admin_token, &["backup", "create", &path]);
    assert_eq!(code, 0, "{stderr}");
    let manifest = std::fs::read_to_string(format!("{path}.sha256")).unwrap();
    assert_eq!(stdout, manifest, "the manifest is printed");
    assert!(manifest.ends_with("  coffer.bundle\n"), "{manifest}");
    assert!(stderr.contains("audit log of"), "{stderr}");
    out
}

/// A data directory holding a copy of `server`'s custody (state file and unseal key)
/// and no database: where the same custody restores.
pub fn same_custody(server: &TestServer) -> PathBuf {
    let dir = temp_dir();
    for file in ["custody.json", "unseal.key"] {
        std::fs::copy(server.dir.join(file), dir.join(file)).unwrap();
    }
    dir
}

/// The `COFFER_…` variables of a key-file deployment in `dir` (on `database_url`, or
/// SQLite in `dir`).
pub fn vars_for(dir: &Path, database_url: Option<&str>) -> Vec<(String, String)> {
    let mut vars = vec![
        ("COFFER_DATA_DIR".to_owned(), dir.display().to_string()),
        ("COFFER_CUSTODY_METHOD".to_owned(), "key-file".to_owned()),
    ];
    if let Some(url) = database_url {
        vars.push(("COFFER_DATABASE_URL".to_owned(), url.to_owned()));
    }
    vars
}

pub fn refs(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `coffer backup restore BUNDLE` into the deployment `vars` configure.
pub fn restore(vars: &[(String, String)], bundle: &Path) -> (i32, String, String) {
    coffer(
        &refs(vars),
        &["backup", "restore", &bundle.display().to_string()],
    )
}

pub async fn ready(server: &TestServer) -> (u16, String) {
    let response = reqwest::get(format!("{}/readyz", server.ops))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let metrics = reqwest::get(format!("{}/metrics", server.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (status, metrics)
}

async fn restored_server_answers(db: Db) {
    let source = TestServer::start().await;
    let made = populate(&source).await;
    // The newest checkpoint goes into the bundle with the log.
    source.admin().audit_new_checkpoint().await.unwrap();
    let bundle = create_bundle(&source);
    let (code, stdout, stderr) = coffer(&[], &["backup", "verify", &bundle.display().to_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("MAC not checked"), "{stdout}");

    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => match super::harness::postgres_url().await {
            Some(url) => Some(url),
            None => return,
        },
    };
    let dir = same_custody(&source);
    let vars = vars_for(&dir, url.as_deref());
    let (code, stdout, stderr) = restore(&vars, &bundle);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("restored into"), "{stdout}");
    // A second restore finds the store full and is refused.
    let (code, _, stderr) = restore(&vars, &bundle);
    assert_eq!(code, 1);
    assert!(stderr.contains("the store is not empty"), "{stderr}");

    let restored = Stopped::configured(&refs(&vars), &source.admin_token)
        .start()
        .await;
    let (status, metrics) = ready(&restored).await;
    assert_eq!(status, 200, "ready once the known answers passed");
    assert!(metrics.contains("kms_known_answers_ok 1"), "{metrics}");
    let coffer_core::kms::KnownAnswers::Passed(specs) = restored.state.kms.known_answer_outcome()
    else {
        panic!("known answers did not pass")
    };
    assert_eq!(
        specs,
        [
            "aes-256",
            "ecdsa-p256",
            "ed25519",
            "hmac-sha256",
            "hybrid-ed25519-ml-dsa-65",
            "ml-dsa-65"
        ]
    );
    // The tenant's token, minted before the backup, works on the restored server.
    check_all(&restored.client(&made.tenant_token), &made).await;
    // The newest checkpoint came with the log.
    let note = restored.admin().audit_checkpoint().await.unwrap();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert!(size > 0, "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_server_passes_its_known_answers_and_opens_everything_made_before_sqlite() {
    restored_server_answers(Db::Sqlite).await;
}

/// A backup taken on SQLite restores onto PostgreSQL: the bundle holds typed rows, not
/// database files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_restores_onto_postgres_and_serves() {
    restored_server_answers(Db::Postgres).await;
}

fn rewrite_manifest(bundle: &Path, bytes: &[u8]) {
    let name = bundle.file_name().unwrap().to_str().unwrap();
    std::fs::write(
        format!("{}.sha256", bundle.display()),
        coffer_core::backup::bundle::manifest(bytes, name),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_bundle_is_refused_by_verify_and_restore_and_changes_nothing() {
    let source = TestServer::start().await;
    populate(&source).await;
    let good = create_bundle(&source);
    let bytes = std::fs::read(&good).unwrap();
    let dir = same_custody(&source);
    let vars = vars_for(&dir, None);
    let config = dir.join("coffer.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[custody]\nmethod = \"key-file\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let bad = temp_dir().join("bad.bundle");
    let bad_path = bad.display().to_string();
    let verify = |with_config: bool| {
        let mut args = vec!["backup", "verify", bad_path.as_str()];
        let config = config.display().to_string();
        if with_config {
            args.extend(["--config", config.as_str()]);
            return coffer(&[], &args);
        }
        coffer(&[], &args)
    };

    // One flipped byte, manifest as made: the manifest no longer matches.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x01;
    std::fs::write(&bad, &flipped).unwrap();
    std::fs::copy(
        format!("{}.sha256", good.display()),
        format!("{bad_path}.sha256"),
    )
    .unwrap();
    let (code, _, stderr) = verify(false);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the manifest does not match the bundle"),
        "{stderr}"
    );
    let (code, _, stderr) = restore(&vars, &bad);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the manifest does not match the bundle"),
        "{stderr}"
    );

    // The same byte with a manifest made for it: the bundle's own trailer refuses it.
    rewrite_manifest(&bad, &flipped);
    for (code, _, stderr) in [verify(false), restore(&vars, &bad)] {
        assert_eq!(code, 1);
        assert!(
            stderr.contains("SHA-256 trailer does not match"),
            "{stderr}"
        );
    }

    // Cut short.
    let cut = &bytes[..bytes.len() - 100];
    std::fs::write(&bad, cut).unwrap();
    rewrite_manifest(&bad, cut);
    for (code, _, stderr) in [verify(false), restore(&vars, &bad)] {
        assert_eq!(code, 1);
        assert!(
            stderr.contains("truncated") || stderr.contains("trailer does not match"),
            "{stderr}"
        );
    }

    // Contents altered and both hashes recomputed: only the MAC, under custody, finds it.
    let mut altered = bytes.clone();
    let trailer = altered.len() - 32;
    altered[trailer - 1] ^= 0x80;
    let hash = coffer_crypto::hash::sha256(&[&altered[..trailer]]);
    altered[trailer..].copy_from_slice(&hash);
    std::fs::write(&bad, &altered).unwrap();
    rewrite_manifest(&bad, &altered);
    let (code, stdout, _) = verify(false);
    assert_eq!(code, 0, "hash and structure check out");
    assert!(stdout.contains("MAC not checked"), "{stdout}");
    for (code, _, stderr) in [verify(true), restore(&vars, &bad)] {
        assert_eq!(code, 1);
        assert!(stderr.contains("MAC does not verify"), "{stderr}");
    }

    // No manifest at all.
    std::fs::remove_file(format!("{bad_path}.sha256")).unwrap();
    let (code, _, stderr) = verify(false);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read the manifest"), "{stderr}");

    // Nothing was written by any refusal: the good bundle restores into the same place,
    // and verifies with custody.
    let (code, stdout, stderr) = coffer(
        &[],
        &[
            "backup",
            "verify",
            &good.display().to_string(),
            "--config",
            &config.display().to_string(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("the MAC verifies"), "{stdout}");
    let (code, _, stderr) = restore(&vars, &good);
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_into_a_full_store_or_under_another_custody_is_refused() {
    let source = TestServer::start().await;
    let made = populate(&source).await;
    let bundle = create_bundle(&source);

    // Into the live deployment's own store: refused before a statement runs (the
    // server owns the database file), and its keys are as they were.
    let own = vars_for(&source.dir, None);
    let (code, _, stderr) = restore(&own, &bundle);
    assert_eq!(code, 1);
    // Said once: the error's layers name themselves without repeating their cause.
    assert_eq!(
        stderr.matches("in use by another Coffer process").count(),
        1,
        "{stderr}"
    );
    check_all(&source.client(&made.tenant_token), &made).await;

    // Another deployment's custody, with an empty database: the data key does not
    // unwrap, and the database stays empty.
    let other = TestServer::start().await;
    let foreign_db = format!(
        "sqlite://{}?mode=rwc",
        temp_dir().join("empty.db").display()
    );
    let vars = vars_for(&other.dir, Some(&foreign_db));
    let (code, _, stderr) = restore(&vars, &bundle);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("does not unwrap under this deployment's custody root"),
        "{stderr}"
    );
    // The same custody restores into that very database afterwards.
    let dir = same_custody(&source);
    let (code, _, stderr) = restore(&vars_for(&dir, Some(&foreign_db)), &bundle);
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_tokens_allowed_admin_backup_get_a_bundle() {
    let server = TestServer::start().await;
    let made = populate(&server).await;
    assert_eq!(
        code_of(server.client(&made.tenant_token).backup().await),
        ErrorCode::Forbidden
    );
    let tenants_only = server
        .admin()
        .mint_token(&MintTokenRequest {
            admin: true,
            operations: vec!["admin:tenants".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    assert_eq!(
        code_of(server.client(&tenants_only).backup().await),
        ErrorCode::Forbidden
    );
    let backup_only = server
        .admin()
        .mint_token(&MintTokenRequest {
            admin: true,
            operations: vec!["admin:backup".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let bytes = server.client(&backup_only).backup().await.unwrap();
    coffer_core::backup::bundle::inspect(&bytes).unwrap();
    // Both refusals and the bundle are in the audit log.
    let outcomes = backup_entries(&server).await;
    assert_eq!(
        outcomes
            .iter()
            .map(|(_, outcome, _)| outcome.as_str())
            .collect::<Vec<_>>(),
        ["forbidden", "forbidden", "ok"]
    );
    assert!(outcomes[2].2.as_deref().unwrap().starts_with("audit_size="));
}

/// `(principal, outcome, detail)` of every `backup.create` entry in the stored log.
pub async fn backup_entries(server: &TestServer) -> Vec<(String, String, Option<String>)> {
    let store = server.state.kms.key_service().store();
    let rows = store.audit_entries(0, 100_000).await.unwrap();
    rows.iter()
        .map(|(_, leaf)| {
            serde_json::from_str::<coffer_audit::entry::ExportedEntry>(leaf)
                .unwrap()
                .entry
        })
        .filter(|e| e.op == "backup.create")
        .map(|e| (e.principal, e.outcome, e.detail))
        .collect()
}

/// A key whose stored material no longer opens fails its known-answer check at start:
/// the server stays not ready and says which key and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_known_answer_keeps_the_server_not_ready_and_says_why() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "victim").await;
    let (status, _) = ready(&server).await;
    assert_eq!(status, 200);
    let stopped = server.stop().await;
    corrupt_material(&stopped.database_url, &key).await;
    let server = stopped.start().await;
    let (status, metrics) = ready(&server).await;
    assert_eq!(status, 503);
    assert!(metrics.contains("kms_known_answers_ok 0"), "{metrics}");
    assert!(
        metrics.contains("kms_known_answer_failures_total"),
        "{metrics}"
    );
    let coffer_core::kms::KnownAnswers::Failed(reason) = server.state.kms.known_answer_outcome()
    else {
        panic!("the check passed")
    };
    assert!(reason.contains(&format!("aes-256 key {key}")), "{reason}");
}

/// Replaces every stored version's wrapped material of `key` with other bytes.
async fn corrupt_material(database_url: &str, key: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(database_url).await.unwrap();
    let done = sqlx::query("UPDATE key_versions SET wrapped_material = $1 WHERE key_id = $2")
        .bind(vec![7u8; 80])
        .bind(key)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    conn.close().await.unwrap();
}
