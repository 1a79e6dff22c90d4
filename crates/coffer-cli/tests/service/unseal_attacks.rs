//! The unseal route attacked: guessed passphrases in parallel, forged Shamir shares,
//! and callers without the unseal token.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use coffer_api::admin::UnsealRequest;
use coffer_api::{B64Secret, ErrorCode};
use coffer_core::SealStatus;
use coffer_custody_sealed::{Passphrase, SHARE_PREFIX};
use coffer_server::startup::InitMethod;

use super::api::code_of;
use super::harness::{Db, TestServer};

const PASSPHRASE: &str = "correct horse battery staple";

fn passphrase(text: &str) -> UnsealRequest {
    UnsealRequest {
        share: None,
        passphrase: Some(B64Secret::new(text.as_bytes().to_vec())),
    }
}

fn share(text: &str) -> UnsealRequest {
    UnsealRequest {
        share: Some(B64Secret::new(text.as_bytes().to_vec())),
        passphrase: None,
    }
}

/// This process's resident set (the server runs in it), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn seal(server: &TestServer) {
    server
        .state
        .custody
        .sealed()
        .expect("these tests run sealed custody")
        .seal();
    server.state.kms.forget_secrets();
}

/// One raw unseal call: the status and the `Retry-After` header, if any.
async fn unseal_raw(server: &TestServer, body: &UnsealRequest) -> (u16, Option<u64>) {
    coffer_client::install_tls_provider();
    let response = reqwest::Client::new()
        .post(format!("{}{}", server.api, coffer_api::paths::UNSEAL))
        .json(body)
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (response.status().as_u16(), retry_after)
}

async fn passphrase_server() -> TestServer {
    TestServer::start_with(
        Db::Sqlite,
        InitMethod::Passphrase(Passphrase::new(PASSPHRASE.into())),
        &[],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_parallel_wrong_passphrases_run_one_argon2_leave_no_memory_and_back_off() {
    let server = passphrase_server().await;
    seal(&server);
    let before = rss_kib();
    let guesses = (0..64).map(|i| {
        let client = server.anonymous();
        async move { code_of(client.unseal(&passphrase(&format!("guess {i}"))).await) }
    });
    let codes = futures_join_all(guesses).await;
    let ran = codes
        .iter()
        .filter(|c| **c == ErrorCode::InvalidRequest)
        .count();
    let refused = codes
        .iter()
        .filter(|c| **c == ErrorCode::TooManyRequests)
        .count();
    // One guess ran Argon2id; every other one was refused (busy, then backing off)
    // without deriving anything.
    assert_eq!((ran, refused), (1, 63), "{codes:?}");
    let grown_kib = rss_kib().saturating_sub(before);
    eprintln!("RSS grew by {grown_kib} KiB over 64 parallel wrong passphrases");
    assert!(
        grown_kib < 48 * 1024,
        "RSS grew by {grown_kib} KiB (one Argon2id is 19 MiB, unmapped after)"
    );

    // The back-off doubles: 1 s after the first failure, 2 s after the second.
    let (status, retry_after) = unseal_raw(&server, &passphrase("again")).await;
    assert_eq!((status, retry_after), (429, Some(1)));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(unseal_raw(&server, &passphrase("again")).await.0, 400);
    let (status, retry_after) = unseal_raw(&server, &passphrase("again")).await;
    assert_eq!((status, retry_after), (429, Some(2)));
    // Even the right passphrase waits its turn, then unseals.
    assert_eq!(unseal_raw(&server, &passphrase(PASSPHRASE)).await.0, 429);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = server
        .anonymous()
        .unseal(&passphrase(PASSPHRASE))
        .await
        .unwrap();
    assert!(!status.sealed);
    assert_eq!(server.state.custody.status(), SealStatus::Unsealed);

    // A success forgets the failures: sealed again, one wrong guess waits 1 s only.
    seal(&server);
    assert_eq!(unseal_raw(&server, &passphrase("wrong")).await.0, 400);
    assert_eq!(
        unseal_raw(&server, &passphrase("wrong")).await,
        (429, Some(1))
    );
}

/// `join_all` without another dependency: spawned, so they really run in parallel.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// A share of the right shape, index 1, that was never dealt.
fn forged_share() -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let mut bytes = vec![1u8];
    bytes.extend((0..32).map(|i: u8| i.wrapping_mul(37)));
    format!("{SHARE_PREFIX}{}", STANDARD.encode(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_shares_take_no_slot_and_the_real_holders_still_unseal() {
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::Shamir {
            shares: 3,
            threshold: 2,
        },
        &[],
    )
    .await
    .unwrap();
    seal(&server);
    let anonymous = server.anonymous();
    // The attacker tries to occupy index 1 and, with a second forgery, to reach the
    // threshold and reset the ceremony: both refused on their own.
    for attempt in [forged_share(), forged_share().replace("AQ", "Ag")] {
        let err = anonymous.unseal(&share(&attempt)).await.unwrap_err();
        assert_eq!(code_of(Err::<(), _>(err)), ErrorCode::InvalidRequest);
        assert_eq!(anonymous.seal_status().await.unwrap().progress, 0);
    }
    // A real holder submits; a forgery in between changes nothing.
    let one = anonymous.unseal(&share(&server.shares[0])).await.unwrap();
    assert_eq!((one.sealed, one.progress), (true, 1));
    let err = anonymous.unseal(&share(&forged_share())).await.unwrap_err();
    assert!(err.to_string().contains("wrong share"), "{err}");
    assert_eq!(anonymous.seal_status().await.unwrap().progress, 1);
    let done = anonymous.unseal(&share(&server.shares[2])).await.unwrap();
    assert!(!done.sealed);
    assert_eq!(server.state.custody.status(), SealStatus::Unsealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_unseal_token_no_unseal_attempt_is_heard() {
    let dir = std::env::temp_dir().join(format!("coffer-unseal-token-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("unseal-token");
    std::fs::write(&token_file, "unseal-token-4f1c9a\n").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let token_path = token_file.display().to_string();
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::Shamir {
            shares: 2,
            threshold: 1,
        },
        &[("COFFER_UNSEAL_TOKEN_FILE", token_path.as_str())],
    )
    .await
    .unwrap();
    seal(&server);
    let anonymous = server.anonymous();
    // A real share without the token, or with a wrong one: refused, nothing counted.
    let err = anonymous.unseal(&share(&server.shares[0])).await;
    assert_eq!(code_of(err), ErrorCode::Unauthorized);
    let err = anonymous
        .unseal_with_token(&share(&server.shares[0]), Some("unseal-token-4f1c9b"))
        .await;
    assert_eq!(code_of(err), ErrorCode::Unauthorized);
    assert!(anonymous.seal_status().await.unwrap().sealed);

    // The CLI with --unseal-token-file, as an operator runs it.
    let started = Instant::now();
    let (code, stdout, stderr) = server.cli(
        "",
        &[
            "unseal",
            "--share",
            &server.shares[1],
            "--unseal-token-file",
            &token_path,
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("sealed:    no"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(server.state.custody.status(), SealStatus::Unsealed);
}

/// The caller learns that its input was wrong and nothing else: a forged share, a
/// share given twice, a malformed one and a passphrase to a Shamir deployment all
/// answer one sentence, with no reason, index or custody file path in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseal_refusals_say_wrong_and_nothing_more() {
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::Shamir {
            shares: 3,
            threshold: 2,
        },
        &[],
    )
    .await
    .unwrap();
    seal(&server);
    let anonymous = server.anonymous();
    anonymous.unseal(&share(&server.shares[0])).await.unwrap();
    let message = |err: coffer_client::ClientError| match err {
        coffer_client::ClientError::Api { message, code, .. } => {
            assert_eq!(code, ErrorCode::InvalidRequest);
            message
        }
        other => panic!("{other}"),
    };
    let forged = message(anonymous.unseal(&share(&forged_share())).await.unwrap_err());
    let twice = message(
        anonymous
            .unseal(&share(&server.shares[0]))
            .await
            .unwrap_err(),
    );
    let malformed = message(
        anonymous
            .unseal(&share("coffer-share-v1:AAAA"))
            .await
            .unwrap_err(),
    );
    assert_eq!(forged, "unseal failed: wrong share");
    assert_eq!(twice, forged);
    assert_eq!(malformed, forged);
    let wrong_method = message(anonymous.unseal(&passphrase(PASSPHRASE)).await.unwrap_err());
    assert_eq!(
        wrong_method,
        "unseal failed: wrong passphrase for this deployment"
    );
    // No path (of the custody state file or anything else) in either.
    for text in [&forged, &wrong_method] {
        assert!(!text.contains('/'), "{text}");
    }
    // Progress is as the one real share left it.
    assert_eq!(anonymous.seal_status().await.unwrap().progress, 1);
}

/// The unsealed root keys sit in locked pages, and `/metrics` says how many pages are
/// locked and how many the OS refused (none here: tests run with CAP_IPC_LOCK or a
/// sufficient RLIMIT_MEMLOCK; the refused path is `locked::tests` and
/// `hardening::tests`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsealed_root_keys_are_in_locked_pages_and_reported() {
    let server = TestServer::start().await;
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name}: {metrics}"))
    };
    let status = coffer_crypto::secret::locked_memory();
    assert!(
        status.locked_pages + status.unlocked_pages >= 1,
        "{status:?}"
    );
    assert!(gauge("kms_secret_pages_locked") >= 1.0);
    assert_eq!(gauge("kms_secret_pages_unlocked"), 0.0);
}
