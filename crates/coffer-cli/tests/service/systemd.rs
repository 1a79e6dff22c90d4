//! `coffer serve` under systemd's notification protocol, as `deploy/systemd/coffer.service`
//! runs it (`Type=notify`, `WatchdogSec=`): the real binary with `NOTIFY_SOCKET`
//! pointing at a datagram socket this test owns and `WATCHDOG_USEC` set.
//!
//! The server starts sealed (passphrase custody, no passphrase file), so readiness comes
//! only with the unseal: no `READY=1` while `/readyz` answers 503, `READY=1` once it
//! answers 200; `WATCHDOG=1` pings at half the interval from the start (liveness, not
//! readiness); the pings stop while the operations port cannot take a connection (its
//! cap held by idle sockets) and resume when it can; `STOPPING=1` on SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_api::B64Secret;
use coffer_api::admin::UnsealRequest;

/// Datagrams received, with when.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

fn listen(socket: UnixDatagram, seen: Seen, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                seen.lock().unwrap().push((Instant::now(), text));
            }
        }
    })
}

fn messages(seen: &Seen) -> Vec<(Instant, String)> {
    seen.lock().unwrap().clone()
}

fn pings_between(seen: &Seen, from: Instant, to: Instant) -> usize {
    messages(seen)
        .iter()
        .filter(|(at, text)| *at >= from && *at <= to && text == "WATCHDOG=1")
        .count()
}

/// `GET path` on a fresh connection (closed after), so the test holds no keep-alive
/// connection on the operations port.
async fn status(url: &str) -> u16 {
    coffer_client::install_tls_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn wait_for(seen: &Seen, what: &str, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if let Some((at, _)) = messages(seen).iter().find(|(_, t)| t.contains(what)) {
            return *at;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {limit:?}: {:?}",
            messages(seen)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coffer_serve_notifies_systemd_ready_watchdog_and_stopping() {
    let dir = super::harness::temp_dir();
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (api, ops) = (port(), port());
    let passphrase = dir.join("passphrase");
    std::fs::write(&passphrase, "correct horse battery staple").unwrap();
    std::fs::set_permissions(&passphrase, std::fs::Permissions::from_mode(0o600)).unwrap();
    let coffer = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
        command
            .args(args)
            .env_clear()
            .env("COFFER_DATA_DIR", &dir)
            .env("COFFER_CUSTODY_METHOD", "passphrase")
            .env("COFFER_API_ADDR", format!("127.0.0.1:{api}"))
            .env("COFFER_METRICS_ADDR", format!("127.0.0.1:{ops}"))
            .env("COFFER_TRANSPORT_OPS_MAX_CONNECTIONS", "3");
        command
    };
    let init = coffer(&["init", "--passphrase-file", passphrase.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let listener = listen(socket, seen.clone(), stop.clone());
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let mut child = coffer(&["serve"])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ops_url = format!("http://127.0.0.1:{ops}");
    let log_text = || std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();

    // Sealed: the status says so, pings come, READY=1 does not.
    wait_for(&seen, "STATUS=sealed", Duration::from_secs(20)).await;
    let sealed_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&format!("{ops_url}/readyz")).await, 503);
    let early = messages(&seen);
    assert!(
        !early.iter().any(|(_, t)| t.contains("READY=1")),
        "READY=1 while sealed: {early:?}"
    );
    let pings = pings_between(&seen, sealed_from, Instant::now());
    assert!(pings >= 2, "{pings} pings in 2 s at a 0.5 s period");

    // Unsealed: READY=1 comes, and /readyz already answers 200 when it does.
    let unsealed = coffer_client::Client::new(&format!("http://127.0.0.1:{api}"), None)
        .unwrap()
        .unseal(&UnsealRequest {
            share: None,
            passphrase: Some(B64Secret::new(b"correct horse battery staple".to_vec())),
        })
        .await
        .unwrap();
    assert!(!unsealed.sealed);
    wait_for(&seen, "READY=1", Duration::from_secs(10)).await;
    assert_eq!(status(&format!("{ops_url}/readyz")).await, 200);
    let ready = messages(&seen)
        .into_iter()
        .find(|(_, t)| t.contains("READY=1"))
        .unwrap()
        .1;
    assert!(ready.contains("STATUS=ready"), "{ready}");

    // The operations port's cap (3) held by idle sockets: the liveness probe cannot
    // connect, so the pings stop; released, they resume. A socket opened while a
    // probe holds a slot is refused and closed, so sockets keep being opened for a
    // second: every slot a probe frees is taken long before the next probe comes.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(std::net::TcpStream::connect(("127.0.0.1", ops)).unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wedged_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let wedged_to = Instant::now();
    drop(held);
    assert_eq!(
        pings_between(&seen, wedged_from, wedged_to),
        0,
        "pings while the operations port could not answer: {}",
        log_text()
    );
    let released = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        pings_between(&seen, released, Instant::now()) >= 1,
        "no ping after the port answered again"
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_for(&seen, "STOPPING=1", Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit after SIGTERM: {}", log_text());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}: {}", log_text());
    stop.store(true, Ordering::Relaxed);
    listener.join().unwrap();
}
