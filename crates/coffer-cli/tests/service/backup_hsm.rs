//! Backup and restore under PKCS#11 custody (SoftHSM2): a bundle made by a server whose
//! root key is in a token restores into an empty store with the same token, the
//! restored server passes its known-answer checks before `/readyz` is 200, and what was
//! sealed before the backup (software keys under the token's root, and a key resident
//! in the token) opens. A bundle restored across custody kinds (sealed into PKCS#11, and
//! the reverse) or into another token is refused with the reason and writes nothing.
//! Skipped without SoftHSM unless `COFFER_REQUIRE_SOFTHSM=1`.

use std::path::Path;

use coffer_api::keys::CreateKeyRequest;

use super::api::{create, unwrap_request, wrap_request};
use super::backup::{
    check_all, create_bundle, populate, ready, refs, restore, same_custody, vars_for,
};
use super::harness::{Stopped, TestServer, temp_dir};
use super::hsm::hsm_server;

/// The variables of a PKCS#11 deployment on `server`'s token, with its data (and
/// SQLite database) in `dir` or on `database_url`; `SOFTHSM2_CONF` too, since the
/// `coffer` process starts with an empty environment.
fn pkcs11_vars(
    server: &TestServer,
    dir: &Path,
    database_url: Option<&str>,
) -> Vec<(String, String)> {
    let mut vars = vec![("COFFER_DATA_DIR".to_owned(), dir.display().to_string())];
    vars.extend(
        server
            .vars()
            .iter()
            .filter(|(k, _)| k.starts_with("COFFER_CUSTODY_"))
            .cloned(),
    );
    if let Ok(conf) = std::env::var("SOFTHSM2_CONF") {
        vars.push(("SOFTHSM2_CONF".to_owned(), conf));
    }
    if let Some(url) = database_url {
        vars.push(("COFFER_DATABASE_URL".to_owned(), url.to_owned()));
    }
    vars
}

fn empty_sqlite() -> String {
    format!(
        "sqlite://{}?mode=rwc",
        temp_dir().join("empty.db").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkcs11_backup_restores_with_the_same_token_and_opens_what_was_sealed_before() {
    let Some(source) = hsm_server().await else {
        return;
    };
    let made = populate(&source).await;
    let acme = source.client(&made.tenant_token);
    let resident = acme
        .create_key(&CreateKeyRequest {
            spec: "aes-256".into(),
            alias: Some("in-token".into()),
            protection: Some("hsm".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let sealed_by_token = acme
        .wrap(&wrap_request(&resident.key_id, b"sealed by the token", &[]))
        .await
        .unwrap();
    assert_eq!(sealed_by_token.ciphertext.0[0], 0x02);
    let bundle = create_bundle(&source);
    let header = coffer_core::backup::bundle::inspect(&std::fs::read(&bundle).unwrap()).unwrap();
    assert_eq!(header.custody, "pkcs11");

    let dir = temp_dir();
    let vars = pkcs11_vars(&source, &dir, None);
    let admin_token = source.admin_token.clone();
    // The source is gone; only its token and the bundle remain.
    let _stopped = source.stop().await;
    let (code, stdout, stderr) = restore(&vars, &bundle);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("restored into"), "{stdout}");

    let restored = Stopped::configured(&refs(&vars), &admin_token)
        .start()
        .await;
    let (status, metrics) = ready(&restored).await;
    assert_eq!(status, 200, "ready once the known answers passed");
    assert!(metrics.contains("kms_known_answers_ok 1"), "{metrics}");
    let coffer_core::kms::KnownAnswers::Passed(specs) = restored.state.kms.known_answer_outcome()
    else {
        panic!("known answers did not pass")
    };
    assert!(specs.iter().any(|s| s == "aes-256"), "{specs:?}");
    let client = restored.client(&made.tenant_token);
    check_all(&client, &made).await;
    let opened = client
        .unwrap(&unwrap_request(&sealed_by_token.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"sealed by the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_across_custody_kinds_or_tokens_is_refused_and_writes_nothing() {
    let Some(hsm_source) = hsm_server().await else {
        return;
    };
    let acme = hsm_source.tenant("acme").await;
    let key = create(&acme, "aes-256", "kek").await;
    acme.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();
    let hsm_bundle = create_bundle(&hsm_source);
    let sealed_source = TestServer::start().await;
    let other = sealed_source.tenant("acme").await;
    create(&other, "aes-256", "kek").await;
    let sealed_bundle = create_bundle(&sealed_source);

    // A sealed bundle into a PKCS#11 deployment (the very token above), empty store.
    let into_pkcs11 = pkcs11_vars(&hsm_source, &temp_dir(), Some(&empty_sqlite()));
    let (code, _, stderr) = restore(&into_pkcs11, &sealed_bundle);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("made under sealed custody and this deployment has pkcs11 custody"),
        "{stderr}"
    );
    // A PKCS#11 bundle into a key-file deployment, empty store.
    let sealed_dir = same_custody(&sealed_source);
    let into_sealed = vars_for(&sealed_dir, Some(&empty_sqlite()));
    let (code, _, stderr) = restore(&into_sealed, &hsm_bundle);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("made under pkcs11 custody and this deployment has sealed custody"),
        "{stderr}"
    );
    // A PKCS#11 bundle into another token's deployment, empty store: its root does not
    // unwrap the bundle's key.
    let Some(other_token) = hsm_server().await else {
        return;
    };
    let into_other = pkcs11_vars(&other_token, &temp_dir(), Some(&empty_sqlite()));
    let (code, _, stderr) = restore(&into_other, &hsm_bundle);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("does not unwrap under this deployment's custody root"),
        "{stderr}"
    );

    // Each refused target is still empty: the matching custody restores into exactly
    // that database (a restore refuses any store with a row).
    let database = |vars: &[(String, String)]| {
        vars.iter()
            .find(|(k, _)| k == "COFFER_DATABASE_URL")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let hsm_dir = temp_dir();
    for target in [&into_pkcs11, &into_other] {
        let vars = pkcs11_vars(&hsm_source, &hsm_dir, Some(&database(target)));
        let (code, _, stderr) = restore(&vars, &hsm_bundle);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, _, stderr) = restore(&into_sealed, &sealed_bundle);
    assert_eq!(code, 0, "{stderr}");
}
