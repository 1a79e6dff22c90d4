//! Seed 004's alias move on a real server: `coffer keys alias set alias/NAME KEY` moves
//! the alias atomically while callers sign through it; every signature verifies under
//! one of the two keys' public keys, every request sent after the move signs with the
//! new key, and the move is audited with both keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use coffer_api::B64;
use coffer_api::crypto::SignRequest;
use coffer_api::keys::SetAliasRequest;
use coffer_crypto::{PqVerifyMode, PublicKey, VerifyingKey};

use super::api::create;
use super::harness::TestServer;

/// Concurrent signers through the alias.
const SIGNERS: usize = 4;

struct Signed {
    message: Vec<u8>,
    signature: Vec<u8>,
    key_id: String,
    sent: Instant,
}

/// Every public key of `key`'s versions.
async fn public_keys(client: &coffer_client::Client, key: &str) -> Vec<VerifyingKey> {
    client
        .show_key(key)
        .await
        .unwrap()
        .versions
        .iter()
        .filter_map(|v| v.public_key_pem.as_deref())
        .map(|pem| VerifyingKey::new(PublicKey::from_pem(pem).unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_moved_under_concurrent_signing_only_ever_signs_with_the_old_or_new_key() {
    let server = TestServer::start().await;
    let token = server.tenant_token("releases").await;
    let acme = server.client(&token);
    let old = create(&acme, "ed25519", "release-signer").await;
    let new = create(&acme, "ed25519", "release-signer-backup").await;
    // A key outside the move: no signature may verify under it.
    let bystander = create(&acme, "ed25519", "unrelated").await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut signers = Vec::new();
    for n in 0..SIGNERS {
        let (client, stop) = (server.client(&token), stop.clone());
        signers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let message = format!("release {n}-{i}").into_bytes();
                i += 1;
                let sent = Instant::now();
                let signed = client
                    .sign(&SignRequest {
                        attestation: None,
                        key_id: "alias/release-signer".into(),
                        message: Some(B64(message.clone())),
                        digest: None,
                        mu: None,
                        algorithm: None,
                    })
                    .await
                    .unwrap();
                out.push(Signed {
                    message,
                    signature: signed.signature.0,
                    key_id: signed.key_id,
                    sent,
                });
            }
            out
        }));
    }

    tokio::time::sleep(Duration::from_millis(400)).await;
    // A stale expectation is refused and changes nothing.
    let stale = acme
        .set_alias(&SetAliasRequest {
            alias: "alias/release-signer".into(),
            key_id: new.clone(),
            expected_key_id: Some(bystander.clone()),
        })
        .await
        .unwrap_err();
    assert!(stale.to_string().contains("not the expected"), "{stale}");

    let (code, stdout, stderr) = {
        let (server_api, token, old, new) =
            (server.api.clone(), token.clone(), old.clone(), new.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
                .env_clear()
                .env("COFFER_ADDR", server_api)
                .env("COFFER_TOKEN", token)
                .args([
                    "keys",
                    "alias",
                    "set",
                    "alias/release-signer",
                    &new,
                    "--expect",
                    &old,
                ])
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
        .await
        .unwrap()
    };
    let moved_at = Instant::now();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("alias/release-signer -> key {new} (was key {old})")
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::SeqCst);

    let mut signed = Vec::new();
    for signer in signers {
        signed.extend(signer.await.unwrap());
    }
    let (old_keys, new_keys, bystander_keys) = (
        public_keys(&acme, &old).await,
        public_keys(&acme, &new).await,
        public_keys(&acme, &bystander).await,
    );
    let verifies = |keys: &[VerifyingKey], s: &Signed| {
        keys.iter().any(|k| {
            k.verify(&s.message, &s.signature, PqVerifyMode::And)
                .is_ok()
        })
    };
    let (mut by_old, mut by_new) = (0, 0);
    for s in &signed {
        let (under_old, under_new) = (verifies(&old_keys, s), verifies(&new_keys, s));
        assert!(
            under_old || under_new,
            "a signature under neither key (named {})",
            s.key_id
        );
        assert!(!verifies(&bystander_keys, s));
        if under_old {
            assert_eq!(s.key_id, old);
            by_old += 1;
        } else {
            assert_eq!(s.key_id, new);
            by_new += 1;
        }
        if s.sent > moved_at {
            assert_eq!(
                s.key_id, new,
                "signed with the old key after the move, on the same server"
            );
        }
    }
    assert!(by_old > 0 && by_new > 0, "old {by_old}, new {by_new}");

    // Audited with both keys; both histories show it; the alias resolves to the new key.
    let log = server.admin().audit_entries(0, 100_000).await.unwrap();
    let entry = log
        .lines()
        .find(|l| l.contains("\"keys.alias.set\"") && l.contains("\"ok\""))
        .expect("the move's audit entry");
    assert!(entry.contains(&old) && entry.contains(&new), "{entry}");
    let refused = log
        .lines()
        .filter(|l| l.contains("\"keys.alias.set\"") && l.contains("\"conflict\""))
        .count();
    assert_eq!(refused, 1, "the refused move is audited too");
    for key in [&old, &new] {
        let history = acme.key_history(key).await.unwrap();
        assert!(
            history.events.iter().any(|e| e.kind == "alias.moved"),
            "{history:?}"
        );
    }
    assert_eq!(
        acme.show_key("alias/release-signer").await.unwrap().key_id,
        new
    );
}

/// Another replica follows a moved alias within its `cache_ttl` (2 s here), signing
/// only ever with the old or the new key meanwhile; the replica that moved it follows
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_follows_a_moved_alias_within_its_cache_ttl() {
    const TTL: Duration = Duration::from_secs(2);
    let Some(a) = TestServer::start_with(
        super::harness::Db::Postgres,
        coffer_server::startup::InitMethod::KeyFile,
        &[("COFFER_CACHE_TTL", "2s")],
    )
    .await
    else {
        return;
    };
    let token = a.tenant_token("releases").await;
    let on_a = a.client(&token);
    let old = create(&on_a, "ed25519", "release-signer").await;
    let new = create(&on_a, "ed25519", "release-signer-backup").await;
    // Opened after the token was minted, so it knows it at once.
    let b = a.replica().await;
    let on_b = b.client(&token);
    let sign = |client: coffer_client::Client| async move {
        client
            .sign(&SignRequest {
                attestation: None,
                key_id: "alias/release-signer".into(),
                message: Some(B64(b"release".to_vec())),
                digest: None,
                mu: None,
                algorithm: None,
            })
            .await
            .unwrap()
            .key_id
    };
    assert_eq!(sign(on_b.clone()).await, old, "replica b caches the alias");

    on_a.set_alias(&SetAliasRequest {
        alias: "alias/release-signer".into(),
        key_id: new.clone(),
        expected_key_id: Some(old.clone()),
    })
    .await
    .unwrap();
    let moved = Instant::now();
    assert_eq!(
        sign(on_a.clone()).await,
        new,
        "the replica that moved it, at once"
    );
    let followed = loop {
        let key = sign(on_b.clone()).await;
        assert!(key == old || key == new, "signed with {key}");
        if key == new {
            break moved.elapsed();
        }
        assert!(
            moved.elapsed() < TTL + Duration::from_secs(5),
            "replica b still signs with the old key after its cache_ttl"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The cache's bound, plus the time one request takes on a busy machine.
    assert!(followed <= TTL + Duration::from_secs(3), "{followed:?}");
}
