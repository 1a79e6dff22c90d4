//! `coffer migrate` beyond the happy path: dual read and cutover, sampled verify,
//! per-item failures and their retry, JSON-lines input with mapped field names.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_api::B64;
use coffer_api::crypto::UnwrapRequest;
use coffer_crypto::{SecretBytes, legacy};
use serde_json::{Value, json};

use super::harness::{TestServer, temp_dir};
use super::migrate::{coffer, encryption_key, journal_rows, legacy_key, output};

/// A directory of `n` legacy blobs: `ID` (AES-GCM under its data key) and `ID.json`
/// (the data key under the legacy key, and the blob's SHA-256).
fn legacy_blobs(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let dek = SecretBytes::random(32).unwrap();
        let content = format!("blob number {i}").repeat(50);
        let blob = legacy::seal_aes_gcm(&dek, content.as_bytes(), b"").unwrap();
        std::fs::write(dir.join(format!("b{i}")), blob).unwrap();
        let hash = hex::encode(coffer_crypto::hash::sha256(&[content.as_bytes()]));
        let wrapped = legacy::seal_aes_gcm(&legacy_key(), dek.expose_secret(), b"").unwrap();
        let sidecar = json!({"key_id": "env", "wrapped_dek": STANDARD.encode(wrapped), "content_sha256": hash});
        std::fs::write(dir.join(format!("b{i}.json")), sidecar.to_string()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_read_cutover_and_sampled_verify_follow_the_migration() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    encryption_key(&server.client(&token), "blobs").await;
    let dir = temp_dir().join("blobs");
    legacy_blobs(&dir, 8);
    let from = dir.display().to_string();
    let run = |args: &[&str]| output(coffer(&server, &token, args));
    let sidecar = dir.join("b3.json").display().to_string();
    let blob = dir.join("b3").display().to_string();

    // Before: the legacy path opens, cutover refuses it, and verify needs the key.
    let (code, plain, err) = run(&[
        "migrate",
        "open",
        &sidecar,
        "--legacy-key-env",
        "BLOB_KEY",
        "--blob",
        &blob,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(plain.starts_with("blob number 3"), "{plain}");
    let (code, _, err) = run(&[
        "migrate",
        "open",
        &sidecar,
        "--legacy-key-env",
        "BLOB_KEY",
        "--cutover",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("cutover refuses the legacy path"), "{err}");
    let (code, out, _) = run(&[
        "migrate",
        "verify",
        "--from",
        &from,
        "--sample",
        "8",
        "--legacy-key-env",
        "BLOB_KEY",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("sampled 8: 8 ok, 0 mismatched, 0 failed"),
        "{out}"
    );
    let (code, out, _) = run(&["migrate", "verify", "--from", &from, "--sample", "8"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("8 failed") && out.contains("--legacy-key-env"),
        "{out}"
    );

    // Migrate, binding each sidecar's id into the context.
    let journal = dir.with_file_name("j.db").display().to_string();
    let (code, out, err) = run(&[
        "migrate",
        "sidecars",
        "--from",
        &from,
        "--legacy-key-env",
        "BLOB_KEY",
        "--key",
        "alias/blobs",
        "--context-id",
        "blob",
        "--journal",
        &journal,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("this run: 8 migrated"), "{out}");

    // After: cutover opens every blob through Coffer, with the id in the context only.
    let (code, out, _) = run(&[
        "migrate",
        "verify",
        "--from",
        &from,
        "--sample",
        "5",
        "--cutover",
        "--context-id",
        "blob",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sampled 5: 5 ok"), "{out}");
    let (code, plain, _) = run(&[
        "migrate",
        "open",
        &sidecar,
        "--cutover",
        "--context-id",
        "blob",
        "--blob",
        &blob,
    ]);
    assert_eq!(code, 0);
    assert!(plain.starts_with("blob number 3"));
    let (code, _, err) = run(&[
        "migrate",
        "open",
        &sidecar,
        "--cutover",
        "--context-id",
        "blob",
        "--id",
        "b4",
    ]);
    assert_eq!(code, 1, "another sidecar's id is another context");
    assert!(err.contains("invalid_ciphertext"), "{err}");

    // A damaged blob is a mismatch (the GCM tag fails) and exits 1; so does a wrong hash.
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let mut other: Value =
        serde_json::from_slice(&std::fs::read(dir.join("b5.json")).unwrap()).unwrap();
    other["content_sha256"] = json!(hex::encode([0u8; 32]));
    std::fs::write(dir.join("b5.json"), other.to_string()).unwrap();
    let (code, out, _) = run(&[
        "--json",
        "migrate",
        "verify",
        "--from",
        &from,
        "--sample",
        "100",
        "--context-id",
        "blob",
    ]);
    assert_eq!(code, 1, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["sampled"].as_u64(), report["ok"].as_u64()),
        (Some(8), Some(6)),
        "{report}"
    );
    assert_eq!(report["mismatched"], 1, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_reported_with_reasons_exit_1_and_are_retried_by_the_next_run() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let client = server.client(&token);
    encryption_key(&client, "blobs").await;
    let dir = temp_dir().join("mixed");
    legacy_blobs(&dir, 3);
    // Under another legacy key; DPAPI; not JSON; a Coffer key that does not exist.
    let foreign = legacy::seal_aes_gcm(&SecretBytes::new(vec![9; 32]), &[1; 32], b"").unwrap();
    std::fs::write(
        dir.join("foreign.json"),
        json!({"key_id": "env", "wrapped_dek": STANDARD.encode(&foreign)}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("windows.json"),
        json!({"key_id": "dpapi:CurrentUser", "wrapped_dek": "AAAA"}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("broken.json"), "{not json").unwrap();
    std::fs::write(
        dir.join("gone.json"),
        json!({"key_id": "alias/nope", "wrapped_dek": "AAAA", "dek_version": 1}).to_string(),
    )
    .unwrap();
    let from = dir.display().to_string();

    let (code, out, _) = output(coffer(
        &server,
        &token,
        &["migrate", "inventory", "--from", &from, "--ids"],
    ));
    assert_eq!(code, 1, "an unreadable sidecar exits 1: {out}");
    for line in [
        "7 sidecars",
        "4  legacy env",
        "1  legacy dpapi",
        "1  coffer alias/nope v1",
        "1  unreadable",
        "broken.json: not JSON",
        "foreign",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }

    let journal = dir.with_file_name("j.db").display().to_string();
    let args = [
        "migrate",
        "sidecars",
        "--from",
        &from,
        "--legacy-key-env",
        "BLOB_KEY",
        "--key",
        "alias/blobs",
        "--journal",
        &journal,
        "--retries",
        "1",
    ];
    let (code, out, _) = output(coffer(&server, &token, &args));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("this run: 3 migrated, 0 skipped, 4 failed"),
        "{out}"
    );
    assert!(
        out.contains("failed foreign: legacy unwrap: decryption failed"),
        "{out}"
    );
    assert!(out.contains("failed windows: wrapped by DPAPI"), "{out}");
    assert!(out.contains("failed broken: not JSON"), "{out}");
    assert!(
        out.contains("failed gone: key alias/nope: not_found"),
        "{out}"
    );

    // Fix two; the next run migrates exactly those and leaves the three done alone.
    std::fs::remove_file(dir.join("broken.json")).unwrap();
    let good = legacy::seal_aes_gcm(&legacy_key(), &[2; 32], b"").unwrap();
    std::fs::write(
        dir.join("foreign.json"),
        json!({"key_id": "env", "wrapped_dek": STANDARD.encode(&good)}).to_string(),
    )
    .unwrap();
    let (code, out, _) = output(coffer(&server, &token, &args));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("this run: 1 migrated, 0 skipped, 2 failed"),
        "{out}"
    );
    let rows = journal_rows(Path::new(&journal)).await;
    let state = |id: &str| {
        rows.iter()
            .find(|r| r.0 == id)
            .map(|r| (r.1.clone(), r.2))
            .unwrap()
    };
    assert_eq!(
        state("foreign"),
        ("done".into(), 2),
        "the second attempt migrated it"
    );
    assert_eq!(state("b0"), ("done".into(), 1));
    assert_eq!(
        state("broken").0,
        "failed",
        "a removed file keeps its failed row"
    );

    // Another target key with this journal is refused.
    let mut other = args.to_vec();
    other[7] = "alias/other";
    let (code, _, err) = output(coffer(&server, &token, &other));
    assert_eq!(code, 1);
    assert!(
        err.contains("this journal belongs to a migration with key `alias/blobs`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_sidecars_are_rewritten_to_out_with_mapped_field_names() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let client = server.client(&token);
    let key_id = encryption_key(&client, "blobs").await;
    let dir = temp_dir();
    let mut lines = Vec::new();
    let mut keys = HashMap::new();
    for i in 0..10 {
        let dek = SecretBytes::random(32).unwrap();
        let wrapped = legacy::wrap_aes_kw(&legacy_key(), &dek).unwrap();
        lines.push(json!({"name": format!("n{i}"), "kid": "env:BLOB_KEY", "edk": STANDARD.encode(wrapped), "legacy_alg": "aes-kw"}).to_string());
        keys.insert(format!("n{i}"), dek.expose_secret().to_vec());
    }
    let input = dir.join("sidecars.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.join("migrated.jsonl");
    let (input_arg, out_arg) = (input.display().to_string(), out.display().to_string());
    let fields = [
        "--field",
        "id=name",
        "--field",
        "key_id=kid",
        "--field",
        "wrapped_dek=edk",
    ];
    let mut args = vec![
        "migrate",
        "sidecars",
        "--from",
        &input_arg,
        "--legacy-key-env",
        "BLOB_KEY",
        "--key",
        "alias/blobs",
    ];
    let (code, _, err) = output(coffer(&server, &token, &args));
    assert_eq!(code, 1);
    assert!(err.contains("needs --out"), "{err}");
    args.extend(["--out", &out_arg]);
    args.extend(fields);
    let (code, stdout, err) = output(coffer(&server, &token, &args));
    assert_eq!(code, 0, "{stdout}{err}");
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        lines.join("\n"),
        "the input is left alone"
    );
    let migrated: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(migrated.len(), 10);
    for line in &migrated {
        assert_eq!(line["kid"], key_id.as_str());
        assert_eq!(line["dek_version"], 1);
        assert!(line.get("legacy_alg").is_none());
        let wrapped = STANDARD.decode(line["edk"].as_str().unwrap()).unwrap();
        let answer = client
            .unwrap(&UnwrapRequest {
                attestation: None,
                ciphertext: B64(wrapped),
                context: Default::default(),
            })
            .await
            .unwrap();
        assert_eq!(
            answer.plaintext.expose_secret(),
            keys[line["name"].as_str().unwrap()].as_slice()
        );
    }
}
