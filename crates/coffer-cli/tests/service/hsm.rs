//! A server whose root key is in a SoftHSM2 token (PKCS#11 custody): init, keys and
//! envelopes through the API, a restart that finds the root again, readiness and the
//! seal status. Skipped without SoftHSM unless `COFFER_REQUIRE_SOFTHSM=1`.

use std::os::unix::fs::PermissionsExt;

use coffer_api::keys::CreateKeyRequest;
use coffer_server::startup::InitMethod;

use super::api::{unwrap_request, wrap_request};
use super::harness::{Db, TestServer, temp_dir};

#[allow(dead_code, reason = "the custody crate's helper, used here in part")]
#[path = "../../../coffer-custody-pkcs11/tests/pkcs11/softhsm.rs"]
pub(super) mod softhsm;

/// A server on a fresh token; `None` when SoftHSM is absent and not required.
pub(super) async fn hsm_server() -> Option<TestServer> {
    let hsm = softhsm::softhsm()?;
    let label = hsm.new_token();
    let dir = temp_dir();
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, format!("{}\n", softhsm::PIN)).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let module = hsm.module.display().to_string();
    let pin = pin_file.display().to_string();
    TestServer::start_in(
        dir,
        Db::Sqlite,
        InitMethod::Pkcs11,
        &[
            ("COFFER_CUSTODY_MODULE", module.as_str()),
            ("COFFER_CUSTODY_TOKEN_LABEL", label.as_str()),
            ("COFFER_CUSTODY_PIN_FILE", pin.as_str()),
            ("COFFER_CUSTODY_POOL_SIZE", "2"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_keeps_its_root_in_the_hsm() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = acme
        .create_key(&CreateKeyRequest {
            spec: "aes-256".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let sealed = acme
        .wrap(&wrap_request(&key.key_id, b"kept under an HSM root", &[]))
        .await
        .unwrap();
    let status = server.anonymous().seal_status().await.unwrap();
    assert!(!status.sealed);
    assert_eq!(status.method, "pkcs11");
    let ready = reqwest::get(format!("{}/readyz", server.ops))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    // A restart opens the same token and finds the root: old envelopes still open.
    let server = server.restart().await;
    let opened = server
        .client(&token)
        .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"kept under an HSM root");
}

/// `coffer init --custody pkcs11` makes the root in the configured token; a second
/// init on the same token is refused rather than making a second root.
#[tokio::test]
async fn coffer_init_sets_up_pkcs11_custody() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let label = hsm.new_token();
    let dir = temp_dir();
    let pin_file = dir.join("pin");
    std::fs::write(&pin_file, softhsm::PIN).unwrap();
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("coffer.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[custody]\nmethod = \"pkcs11\"\nmodule = {:?}\ntoken_label = {label:?}\npin_file = {:?}\n",
            dir.join("data"),
            hsm.module,
            pin_file
        ),
    )
    .unwrap();
    let init = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
            .env_clear()
            .env("SOFTHSM2_CONF", &hsm.conf)
            .args(["init", "--config"])
            .arg(&config)
            .args(["--custody", "pkcs11"])
            .output()
            .unwrap()
    };
    let first = init();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.starts_with("admin token: "), "{stdout}");
    assert!(!stdout.contains("unseal share"));
    let second = init();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already holds a root key"), "{stderr}");
}
