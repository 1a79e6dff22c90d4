//! AWS KMS's `Recipient` on Decrypt and GenerateDataKey through the real boto3 client
//! (`tests/aws_recipient/recipient.py`): the answer is `CiphertextForRecipient` (CMS
//! EnvelopedData to the enclave's RSA key) with no `Plaintext`, and OpenSSL's CMS opens
//! it with the enclave's private key. The documents are the Coffer test format (the
//! server trusts the test authority); the enclave key is made by `openssl genpkey`.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use coffer_attest::Measurement;
use coffer_attest::test_format::Authority;
use coffer_core::token::Token;

use super::api::create;
use super::attestation::{measurement, now_ms, server_trusting, set_policy};
use super::aws_clients::venv_python;
use super::harness::temp_dir;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The enclave's RSA-2048 key: the PEM private key's path and the SPKI (DER).
fn enclave_key(dir: &Path) -> (String, Vec<u8>) {
    let pem = dir.join("enclave.pem").display().to_string();
    let spki = dir.join("enclave.spki").display().to_string();
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &pem,
    ]);
    openssl(&[
        "pkey", "-in", &pem, "-pubout", "-outform", "DER", "-out", &spki,
    ]);
    (pem, std::fs::read(spki).unwrap())
}

fn doc(authority: &Authority, m: &Measurement, public_key: Option<&[u8]>) -> String {
    let text = authority.attest_now(m, now_ms(), public_key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_gets_a_ciphertext_for_recipient_that_openssl_cms_opens() {
    let Some(python) = venv_python() else {
        return;
    };
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let (forger, _) = Authority::generate_ed25519().unwrap();
    let server = server_trusting(&authority).await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "enclave-kek").await;
    let plain_key = create(&acme, "aes-256", "no-policy").await;
    let (m1, m3) = (measurement(1), measurement(3));
    set_policy(&acme, &key, &["unwrap", "datakey"], &[&m1]).await;
    let dir = temp_dir();
    let (pem, spki) = enclave_key(&dir);
    let credentials = Token::decode(&token).unwrap().aws_credentials();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws_recipient/recipient.py");
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("COFFER_AWS_ENDPOINT", &server.api)
        .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", credentials.expose_secret())
        .env("ENCLAVE_KEY_PEM", &pem)
        .env("COFFER_KEY", &key)
        .env("COFFER_PLAIN_KEY", &plain_key)
        .env("DOC_DECRYPT", doc(&authority, &m1, Some(&spki)))
        .env("DOC_DATAKEY", doc(&authority, &m1, Some(&spki)))
        .env("DOC_REOPEN", doc(&authority, &m1, Some(&spki)))
        .env("DOC_NOT_ALLOWED", doc(&authority, &m3, Some(&spki)))
        .env("DOC_NO_PUBLIC_KEY", doc(&authority, &m1, None))
        .env("DOC_FORGED", doc(&forger, &m1, Some(&spki)))
        .env("DOC_PLAIN", doc(&authority, &m3, Some(&spki)))
        .env("DOC_FORGED_PLAIN", doc(&forger, &m3, Some(&spki)))
        .env("DOC_UNUSED", doc(&authority, &m1, Some(&spki)));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(found["decrypt_has_plaintext"], false, "{found}");
    assert_eq!(found["decrypt_opened"], true, "{found}");
    assert!(
        found["decrypt_key_id"].as_str().unwrap().ends_with(&key),
        "{found}"
    );
    assert_eq!(found["datakey_has_plaintext"], false, "{found}");
    assert_eq!(found["datakey_len"], 32, "{found}");
    assert_eq!(found["datakey_reopened_same"], true, "{found}");
    let refused = |name: &str, expected: &str| {
        let text = found[name].as_str().unwrap();
        assert!(text.starts_with(expected), "{name}: {text}");
    };
    refused("not_allowed", "AccessDeniedException");
    refused("replayed", "AccessDeniedException");
    refused("no_public_key", "ValidationException");
    refused("forged", "AccessDeniedException");
    refused("without_recipient", "AccessDeniedException");
    refused("random", "UnsupportedOperationException");
    refused("pair", "UnsupportedOperationException");
    assert_eq!(found["plain_has_plaintext"], false, "{found}");
    assert_eq!(found["plain_opened"], true, "{found}");
    refused("plain_forged", "AccessDeniedException");

    // The audit log says which measurement received the answers.
    let log = server.admin().audit_entries(0, 10_000).await.unwrap();
    assert!(log.contains("aws recipient"), "no recipient entry");
}
