//! A server whose HSM flaps under load (seed 002 §4, §6.2): the token's directory is
//! moved away while clients sign, verify and wrap, then moved back. The server stays
//! up, `/readyz` turns 503 and back, reconnects are counted in `/metrics`, with
//! `custody.failover = "verify-only"` verification goes on while signing and wrapping
//! answer `backend_unavailable`, and afterwards everything is served again.
//!
//! Without a failover policy, keys in memory keep serving and what needs the token (a
//! new tenant's key) answers `backend_unavailable` until it is back.
//!
//! A binary of its own: the flap reloads the process's SoftHSM module, which would
//! disturb other tests' tokens; the two flaps here take turns. Skipped without SoftHSM
//! unless `COFFER_REQUIRE_SOFTHSM=1`.

#[path = "service/harness.rs"]
#[allow(
    dead_code,
    reason = "shared with the service suite, which uses the rest"
)]
mod harness;

#[path = "../../coffer-custody-pkcs11/tests/pkcs11/softhsm.rs"]
#[allow(dead_code, reason = "the custody crate's helper, used here in part")]
mod softhsm;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use coffer_api::admin::CreateTenantRequest;
use coffer_api::crypto::{SignRequest, UnwrapRequest, VerifyRequest, WrapRequest};
use coffer_api::keys::CreateKeyRequest;
use coffer_api::{B64, B64Secret, ErrorCode};
use coffer_client::{Client, ClientError};
use coffer_server::startup::InitMethod;
use harness::{Db, TestServer, temp_dir};

fn code_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn create(client: &Client, spec: &str) -> String {
    client
        .create_key(&CreateKeyRequest {
            spec: spec.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key_id
}

fn sign(key: &str) -> SignRequest {
    SignRequest {
        attestation: None,
        key_id: key.into(),
        message: Some(B64(b"release 1.2.3".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
    }
}

fn wrap(key: &str) -> WrapRequest {
    WrapRequest {
        key_id: key.into(),
        plaintext: B64Secret::new(b"data key".to_vec()),
        context: Default::default(),
        track_id: None,
    }
}

async fn status(url: String) -> u16 {
    reqwest::get(url)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn wait_for_status(url: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(url.to_owned()).await != want {
        assert!(Instant::now() < deadline, "{url} never answered {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One flap at a time: both move the process's whole token directory.
static FLAP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server on a fresh token with `custody.failover = failover`.
async fn hsm_server(hsm: &softhsm::SoftHsm, failover: &str) -> TestServer {
    let label = hsm.new_token();
    let dir = temp_dir();
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, softhsm::PIN).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (module, pin) = (
        hsm.module.display().to_string(),
        pin_file.display().to_string(),
    );
    TestServer::start_in(
        dir,
        Db::Sqlite,
        InitMethod::Pkcs11,
        &[
            ("COFFER_CUSTODY_MODULE", module.as_str()),
            ("COFFER_CUSTODY_TOKEN_LABEL", label.as_str()),
            ("COFFER_CUSTODY_PIN_FILE", pin.as_str()),
            ("COFFER_CUSTODY_FAILOVER", failover),
        ],
    )
    .await
    .unwrap()
}

/// Moves every token away (leaving an empty directory); the returned closure brings
/// them back.
fn take_tokens_away(hsm: &softhsm::SoftHsm) -> impl FnOnce() {
    let root = hsm.conf.parent().unwrap().to_owned();
    let (tokens, aside) = (root.join("tokens"), root.join("tokens-away"));
    std::fs::rename(&tokens, &aside).unwrap();
    std::fs::create_dir(&tokens).unwrap();
    move || {
        std::fs::remove_dir(&tokens).unwrap();
        std::fs::rename(&aside, &tokens).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_failover_keys_in_memory_serve_and_the_token_is_waited_for() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let _turn = FLAP.lock().await;
    let server = hsm_server(hsm, "none").await;
    let acme = server.client(&server.tenant_token("acme").await);
    let signing = create(&acme, "ed25519").await;
    acme.sign(&sign(&signing)).await.unwrap();
    let readyz = format!("{}/readyz", server.ops);

    let bring_back = take_tokens_away(hsm);
    wait_for_status(&readyz, 503).await;
    // The signing key is in memory: it still signs (no failover policy forbids it).
    acme.sign(&sign(&signing)).await.unwrap();
    // A new tenant's key must be wrapped by the token.
    let beta = CreateTenantRequest {
        name: "beta".into(),
        aws_account_id: None,
    };
    match server.admin().create_tenant(&beta).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code), (503, ErrorCode::BackendUnavailable));
        }
        other => panic!("expected backend_unavailable, got {other:?}"),
    }

    bring_back();
    wait_for_status(&readyz, 200).await;
    server.admin().create_tenant(&beta).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_hsm_fails_over_to_verify_only_and_recovers() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let _turn = FLAP.lock().await;
    let server = hsm_server(hsm, "verify-only").await;
    let acme = server.client(&server.tenant_token("acme").await);
    let signing = create(&acme, "ecdsa-p256").await;
    let kek = create(&acme, "aes-256").await;
    let signed = acme.sign(&sign(&signing)).await.unwrap();
    let signed_key = signing.clone();
    let verify = move || VerifyRequest {
        key_id: signed_key.clone(),
        key_version: Some(signed.key_version),
        message: Some(B64(b"release 1.2.3".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
        signature: signed.signature.clone(),
    };
    acme.wrap(&wrap(&kek)).await.unwrap();
    let (readyz, healthz, metrics) = (
        format!("{}/readyz", server.ops),
        format!("{}/healthz", server.ops),
        format!("{}/metrics", server.ops),
    );
    assert_eq!(status(readyz.clone()).await, 200);

    // Load through the flap: verification must never fail; the rest may only fail
    // with backend_unavailable.
    let load = {
        let acme = acme.clone();
        let (signing, kek, verify) = (signing.clone(), kek.clone(), verify.clone());
        tokio::spawn(async move {
            let mut refused = 0;
            for _ in 0..200 {
                assert!(acme.verify(&verify()).await.unwrap().valid);
                for result in [
                    acme.sign(&sign(&signing)).await.map(|_| ()),
                    acme.wrap(&wrap(&kek)).await.map(|_| ()),
                ] {
                    match result {
                        Ok(()) => {}
                        Err(ClientError::Api {
                            code: ErrorCode::BackendUnavailable,
                            status: 503,
                            ..
                        }) => refused += 1,
                        Err(other) => panic!("unexpected failure during the flap: {other:?}"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            refused
        })
    };

    // The token goes away.
    let bring_back = take_tokens_away(hsm);
    wait_for_status(&readyz, 503).await;
    assert_eq!(status(healthz.clone()).await, 200, "the server stays up");
    assert!(
        acme.verify(&verify()).await.unwrap().valid,
        "verify-only verifies"
    );
    assert_eq!(
        code_of(acme.sign(&sign(&signing)).await),
        ErrorCode::BackendUnavailable
    );
    assert_eq!(
        code_of(acme.wrap(&wrap(&kek)).await),
        ErrorCode::BackendUnavailable
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The token comes back.
    bring_back();
    wait_for_status(&readyz, 200).await;
    let refused = load.await.unwrap();
    assert!(refused > 0, "the load saw the flap");
    acme.sign(&sign(&signing)).await.unwrap();
    acme.wrap(&wrap(&kek)).await.unwrap();
    let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
    let reconnects: f64 = text
        .lines()
        .find(|l| l.starts_with("backend_reconnects_total{backend=\"pkcs11\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no backend_reconnects_total in\n{text}"));
    assert!(reconnects >= 1.0, "{reconnects}");
}

async fn create_in_hsm(client: &Client, spec: &str) -> String {
    client
        .create_key(&CreateKeyRequest {
            spec: spec.into(),
            protection: Some("hsm".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .key_id
}

/// HSM-resident keys while the token is away: signing, wrapping and unwrapping with
/// them answer `backend_unavailable` (the token makes them, even with the key's entry
/// in memory), verification goes on with the stored public key, a software key in
/// memory keeps signing; once the token is back the HSM keys serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_keys_refuse_while_the_token_is_away_and_work_after() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let _turn = FLAP.lock().await;
    let server = hsm_server(hsm, "none").await;
    let acme = server.client(&server.tenant_token("acme").await);
    let in_hsm = create_in_hsm(&acme, "ecdsa-p256").await;
    let kek = create_in_hsm(&acme, "aes-256").await;
    let software = create(&acme, "ed25519").await;
    let signed = acme.sign(&sign(&in_hsm)).await.unwrap();
    let sealed = acme.wrap(&wrap(&kek)).await.unwrap();
    acme.sign(&sign(&software)).await.unwrap();
    let unwrap = || UnwrapRequest {
        ciphertext: sealed.ciphertext.clone(),
        context: Default::default(),
        attestation: None,
    };
    let verify = || VerifyRequest {
        key_id: in_hsm.clone(),
        key_version: Some(signed.key_version),
        message: Some(B64(b"release 1.2.3".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
        signature: signed.signature.clone(),
    };
    let readyz = format!("{}/readyz", server.ops);

    let bring_back = take_tokens_away(hsm);
    wait_for_status(&readyz, 503).await;
    assert_eq!(
        code_of(acme.sign(&sign(&in_hsm)).await),
        ErrorCode::BackendUnavailable
    );
    assert_eq!(
        code_of(acme.wrap(&wrap(&kek)).await),
        ErrorCode::BackendUnavailable
    );
    assert_eq!(
        code_of(acme.unwrap(&unwrap()).await),
        ErrorCode::BackendUnavailable
    );
    assert!(
        acme.verify(&verify()).await.unwrap().valid,
        "verification goes on"
    );
    acme.sign(&sign(&software)).await.unwrap();

    bring_back();
    wait_for_status(&readyz, 200).await;
    let again = acme.sign(&sign(&in_hsm)).await.unwrap();
    assert_eq!(again.key_version, 1);
    let opened = acme.unwrap(&unwrap()).await.unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"data key");
    acme.wrap(&wrap(&kek)).await.unwrap();
}

/// A restart while the token is away: without a failover policy the start fails (the
/// service's secrets need the token); with `custody.failover = "verify-only"` the
/// server starts, healthy and not ready, refuses requests with 503, and serves fully
/// once the token is back, HSM-resident keys included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_without_its_token_under_verify_only_and_serves_once_it_is_back() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let _turn = FLAP.lock().await;
    let server = hsm_server(hsm, "none").await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let in_hsm = create_in_hsm(&acme, "ecdsa-p256").await;
    let software = create(&acme, "ed25519").await;
    let signed = acme.sign(&sign(&in_hsm)).await.unwrap();
    let stopped = server.stop().await;

    let bring_back = take_tokens_away(hsm);
    let refused = match stopped.try_start().await {
        Err(error) => error.to_string(),
        Ok(_) => panic!("started without the token and without a failover policy"),
    };
    assert!(refused.contains("unavailable"), "{refused}");

    let stopped = stopped.with_var("COFFER_CUSTODY_FAILOVER", "verify-only");
    let server = stopped.try_start().await.expect("starts without the token");
    let (readyz, healthz) = (
        format!("{}/readyz", server.ops),
        format!("{}/healthz", server.ops),
    );
    assert_eq!(status(readyz.clone()).await, 503);
    assert_eq!(status(healthz).await, 200);
    let acme = server.client(&token);
    match acme.sign(&sign(&software)).await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 503),
        other => panic!("expected 503 before the token is back, got {other:?}"),
    }

    bring_back();
    wait_for_status(&readyz, 200).await;
    acme.sign(&sign(&software)).await.unwrap();
    let again = acme.sign(&sign(&in_hsm)).await.unwrap();
    assert_eq!(again.key_version, signed.key_version);
    let verify = VerifyRequest {
        key_id: in_hsm.clone(),
        key_version: Some(signed.key_version),
        message: Some(B64(b"release 1.2.3".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
        signature: signed.signature.clone(),
    };
    assert!(acme.verify(&verify).await.unwrap().valid);
}
