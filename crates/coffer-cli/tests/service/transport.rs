//! The transport attacked and exercised: TLS with the CLI and curl, client
//! certificates mapped to principals, a certificate swapped under load, slow-loris and
//! idle sockets, and an idle-socket flood against a lowered descriptor limit.
//!
//! The certificates are the committed test PKI in `tests/tls/` (`make.sh` made them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coffer_api::ErrorCode;
use coffer_client::{Client, ClientError, ClientTls};
use coffer_server::startup::InitMethod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::api::code_of;
use super::harness::{Db, TestServer, temp_dir};

fn pki(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls")
        .join(name)
        .display()
        .to_string()
}

fn https(url: &str) -> String {
    url.replacen("http://", "https://", 1)
}

fn tls(cert: Option<&str>) -> ClientTls {
    ClientTls {
        ca_file: Some(pki("ca.pem").into()),
        cert_file: cert.map(|c| pki(&format!("{c}.pem")).into()),
        key_file: cert.map(|c| pki(&format!("{c}.key")).into()),
    }
}

async fn tls_server(extra: &[(&str, &str)]) -> TestServer {
    let (cert, key) = (pki("server.pem"), pki("server.key"));
    let mut env = vec![
        ("COFFER_TLS_CERT_FILE", cert.as_str()),
        ("COFFER_TLS_KEY_FILE", key.as_str()),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(Db::Sqlite, InitMethod::KeyFile, &env)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_round_trip_with_the_cli_and_curl() {
    let server = tls_server(&[]).await;
    let (api, ops) = (https(&server.api), https(&server.ops));
    let admin = Client::with_tls(&api, Some(server.admin_token.clone()), &tls(None)).unwrap();
    admin.list_tenants().await.unwrap();
    admin.healthz(&ops).await.unwrap();
    // Without the CA, the server's certificate is not trusted; plain HTTP to the TLS
    // port gets no answer.
    let untrusting = Client::new(&api, None).unwrap();
    assert!(matches!(
        untrusting.seal_status().await,
        Err(ClientError::Transport(_))
    ));
    assert!(matches!(
        Client::new(&server.api, None).unwrap().seal_status().await,
        Err(ClientError::Transport(_))
    ));

    // The CLI, as an operator runs it: status reads both ports over TLS.
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .env_clear()
        .env("COFFER_ADDR", &api)
        .env("COFFER_CACERT", pki("ca.pem"))
        .args(["status", "--ops-addr", &ops])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ready:     yes"), "{stdout}");

    // curl --cacert.
    let out = Command::new("curl")
        .args(["-sS", "--cacert", &pki("ca.pem")])
        .arg(format!("{api}{}", coffer_api::paths::SEAL_STATUS))
        .output()
        .expect("curl is installed");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("\"sealed\":false"), "{body}");
    let out = Command::new("curl")
        .arg("-sS")
        .arg(format!("{api}{}", coffer_api::paths::SEAL_STATUS))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl without the CA: untrusted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_map_to_principals_and_are_required_when_configured() {
    let ca = pki("ca.pem");
    let server = tls_server(&[
        ("COFFER_TLS_CLIENT_CA_FILE", ca.as_str()),
        ("COFFER_TLS_CLIENT_AUTH", "required"),
    ])
    .await;
    let api = https(&server.api);
    // Minted over a connection whose certificate names the admin.
    let as_admin = Client::with_tls(
        &api,
        Some(server.admin_token.clone()),
        &tls(Some("client-admin")),
    )
    .unwrap();
    as_admin
        .create_tenant(&coffer_api::admin::CreateTenantRequest {
            name: "acme".into(),
            aws_account_id: None,
        })
        .await
        .unwrap();
    let minted = as_admin
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    // No certificate: the handshake is refused, even with the admin token.
    let bare = Client::with_tls(&api, Some(server.admin_token.clone()), &tls(None)).unwrap();
    assert!(matches!(
        bare.list_tenants().await,
        Err(ClientError::Transport(_))
    ));
    // The admin's certificate with a tenant's token: not that principal.
    let stolen =
        Client::with_tls(&api, Some(minted.token.clone()), &tls(Some("client-admin"))).unwrap();
    assert_eq!(
        code_of(stolen.list_keys(&Default::default()).await),
        ErrorCode::Forbidden
    );
    // A certificate of the right CA that names no Coffer principal: refused.
    let unmapped = Client::with_tls(
        &api,
        Some(server.admin_token.clone()),
        &tls(Some("client-unmapped")),
    )
    .unwrap();
    assert_eq!(code_of(unmapped.list_tenants().await), ErrorCode::Forbidden);
    // The operations port asks for no certificate.
    bare.healthz(&https(&server.ops)).await.unwrap();
}

/// Requests from four callers, each opening a new connection every few requests, while
/// the certificate files are replaced and SIGHUP sent: none fails, and new connections
/// see the renewed certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_certificate_swapped_under_load_fails_no_request() {
    let dir = temp_dir();
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::copy(pki("server.pem"), &cert).unwrap();
    std::fs::copy(pki("server.key"), &key).unwrap();
    let (cert_text, key_text) = (cert.display().to_string(), key.display().to_string());
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[
            ("COFFER_TLS_CERT_FILE", cert_text.as_str()),
            ("COFFER_TLS_KEY_FILE", key_text.as_str()),
        ],
    )
    .await
    .unwrap();
    let api = https(&server.api);
    assert!(!served_subject(&api).contains("renewed"));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let deadline = Instant::now() + Duration::from_secs(3);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (api, done, failed) = (api.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    // A fresh client: a new connection and handshake every 5 requests.
                    let client = Client::with_tls(&api, None, &tls(None)).unwrap();
                    for _ in 0..5 {
                        match client.seal_status().await {
                            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                            Err(error) => {
                                eprintln!("failed during the swap: {error}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    replace(&dir, &cert, &pki("server2.pem"));
    replace(&dir, &key, &pki("server2.key"));
    rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::HUP).unwrap();
    for caller in callers {
        caller.await.unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("{done} requests during the swap, {failed} failed");
    assert_eq!(failed, 0);
    assert!(done > 20, "only {done} requests ran");
    assert!(served_subject(&api).contains("renewed"));
}

/// Replaces `target` with `source`'s bytes in one rename, as certificate tools do.
fn replace(dir: &Path, target: &Path, source: &str) {
    let staged: PathBuf = dir.join(".staged");
    std::fs::copy(source, &staged).unwrap();
    std::fs::rename(&staged, target).unwrap();
}

/// The subject of the certificate a new connection is served (curl's verbose output).
fn served_subject(api: &str) -> String {
    let out = Command::new("curl")
        .args(["-sSv", "-o", "/dev/null", "--cacert", &pki("ca.pem")])
        .arg(format!("{api}{}", coffer_api::paths::SEAL_STATUS))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find(|l| l.contains("subject:"))
        .unwrap_or_default()
        .to_owned()
}

/// Reads until the peer closes (or 10 s pass); how long that took.
async fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let until = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    until.await.expect("the server never closed the connection");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_idle_sockets_are_closed_at_their_timeouts() {
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[
            ("COFFER_TRANSPORT_HEADER_TIMEOUT", "1s"),
            ("COFFER_TRANSPORT_IDLE_TIMEOUT", "2s"),
            ("COFFER_TRANSPORT_BODY_TIMEOUT", "1s"),
        ],
    )
    .await
    .unwrap();
    let addr = server.api.trim_start_matches("http://").to_owned();
    // Headers trickled, one line every 300 ms, never finished.
    let mut loris = TcpStream::connect(&addr).await.unwrap();
    loris
        .write_all(b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickle = {
        let (mut reader, mut writer) = loris.into_split();
        let writer_task = tokio::spawn(async move {
            for i in 0..30 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if writer
                    .write_all(format!("x-pad-{i}: y\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        writer_task.abort();
        started.elapsed()
    };
    assert!(
        trickle < Duration::from_millis(2500),
        "slow-loris held for {trickle:?}"
    );
    // A socket that sends nothing: closed once its (first) headers are overdue.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let silent_for = closed_after(&mut silent).await;
    assert!(
        silent_for >= Duration::from_millis(800) && silent_for < Duration::from_millis(2500),
        "silent socket closed after {silent_for:?}"
    );
    // A body promised and never finished: 408 at the body timeout.
    let mut body = TcpStream::connect(&addr).await.unwrap();
    body.write_all(
        b"POST /v1/sys/unseal HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"share\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), body.read(&mut answer))
        .await
        .expect("no answer to an unfinished body")
        .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert!(started.elapsed() < Duration::from_millis(2500));
    // A keep-alive connection after one answered request, then nothing: hyper waits for
    // the next request's headers under the same 1 s timer (the 2 s idle timeout would
    // close it otherwise).
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let kept_for = closed_after(&mut kept).await;
    eprintln!("silent socket closed after {silent_for:?}, idle keep-alive after {kept_for:?}");
    assert!(
        kept_for >= Duration::from_millis(800) && kept_for < Duration::from_millis(3500),
        "idle keep-alive connection closed after {kept_for:?}"
    );
    // A keep-alive connection between requests is idle too, and closed the same way;
    // a caller that keeps talking is not.
    let client = server.anonymous();
    for _ in 0..4 {
        client.seal_status().await.unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// `coffer serve` under `prlimit --nofile=512`: the API port's default cap is then
/// 128 connections. 600 idle sockets — more than the process has descriptors — leave
/// the operations port answering at once, and a legitimate request answered once the
/// idle timeout has closed the flood (503 with Retry-After until then, never a hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_socket_flood_past_the_descriptor_limit_leaves_health_and_callers_answered() {
    let dir = temp_dir();
    let (api, ops) = (free_port(), free_port());
    let coffer = |args: &[&str]| {
        let mut command = Command::new("prlimit");
        command
            .arg("--nofile=512:512")
            .arg(env!("CARGO_BIN_EXE_coffer"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("COFFER_DATA_DIR", &dir)
            .env("COFFER_API_ADDR", format!("127.0.0.1:{api}"))
            .env("COFFER_METRICS_ADDR", format!("127.0.0.1:{ops}"))
            .env("COFFER_TRANSPORT_IDLE_TIMEOUT", "2s")
            .env("COFFER_TRANSPORT_HEADER_TIMEOUT", "2s");
        command
    };
    let init = coffer(&["init"]).output().expect("prlimit is installed");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let mut child = ChildGuard(
        coffer(&["serve"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let (api_url, ops_url) = (
        format!("http://127.0.0.1:{api}"),
        format!("http://127.0.0.1:{ops}"),
    );
    let probe = Client::new(&api_url, None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(probe.readyz(&ops_url).await, Ok(true)) {
        assert!(
            Instant::now() < deadline,
            "coffer serve did not become ready"
        );
        assert!(child.0.try_wait().unwrap().is_none(), "coffer serve exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut flood = Vec::new();
    for _ in 0..600 {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", api)).await {
            flood.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Health and readiness: answered at once, on their own connections' budget.
    let started = Instant::now();
    let anonymous = Client::new(&api_url, None).unwrap();
    anonymous.healthz(&ops_url).await.unwrap();
    assert!(anonymous.readyz(&ops_url).await.unwrap());
    assert!(started.elapsed() < Duration::from_secs(1));
    // A caller of the API: refused fast (never hung) while the cap is full, answered
    // once the idle timeout closed the flood.
    let started = Instant::now();
    let mut refusals = 0;
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            Client::new(&api_url, None).unwrap().seal_status().await
        })
        .await
        .expect("an API request hung during the flood");
        match attempt {
            Ok(status) => {
                assert!(!status.sealed);
                break;
            }
            Err(ClientError::Api {
                code: ErrorCode::Unavailable,
                ..
            }) => {
                refusals += 1;
            }
            // Closed unanswered while many refusals were under way: fast too.
            Err(ClientError::Transport(_)) => refusals += 1,
            Err(other) => panic!("unexpected: {other}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "still refused after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "{} flood sockets; legitimate request answered after {:?} ({refusals} 503s)",
        flood.len(),
        started.elapsed()
    );
    drop(flood);
    let metrics = reqwest::get(format!("{ops_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kms_connections_refused_total{port=\"api\"}"),
        "the refusals are counted"
    );
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
