//! systemd's notification protocol (`sd_notify`) for a server run as a `Type=notify`
//! unit (`deploy/systemd/coffer.service`): `READY=1` once the server is ready as
//! `/readyz` judges it, `STATUS=` lines as readiness changes, `WATCHDOG=1` pings while
//! the operations port answers, `STOPPING=1` when the drain starts.
//!
//! The protocol is one datagram of `KEY=value` lines to the Unix socket named by
//! `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace); written here
//! rather than taken from a crate, as it is a dozen lines with the standard library.
//! Without `NOTIFY_SOCKET` (not run by systemd, and every test server in-process) there
//! is no [`Notifier`] and nothing is sent.
//!
//! **Watchdog.** With `WATCHDOG_USEC` set (and `WATCHDOG_PID`, when set, naming this
//! process), a task pings at half that interval, but only after a liveness probe
//! passed: `GET /healthz` through the operations port itself (a loopback connection to
//! its listening address, through its accept loop, connection cap and router), within
//! the half interval. A wedged runtime, a dead accept loop or an operations port that
//! cannot take a connection stops the pings, and systemd restarts the service once
//! `WatchdogSec` passes without one. The probe is liveness, not readiness: a sealed
//! server, or one whose database is away, still answers `/healthz`, so the watchdog
//! does not restart a server that is waiting for an unseal or for its store. With TLS
//! the probe calls the operations router in-process instead (the probe has no
//! certificate to trust the port's with), which still needs the runtime to run it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// Where and how to tell systemd about this process.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Socket,
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Socket {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// The notifier of a process started by systemd (`NOTIFY_SOCKET` set), with its
    /// watchdog interval when `WATCHDOG_USEC` is set for this process.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|name| std::env::var(name).ok(), std::process::id())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>, pid: u32) -> Option<Self> {
        let name = var("NOTIFY_SOCKET").filter(|s| !s.is_empty())?;
        let socket = match name.strip_prefix('@') {
            Some(abstract_name) => Socket::Abstract(abstract_name.as_bytes().to_vec()),
            None => Socket::Path(PathBuf::from(name)),
        };
        // WATCHDOG_PID names the process the watchdog is for; a child that inherited
        // the variables must not ping for its parent.
        let ours = var("WATCHDOG_PID").is_none_or(|p| p.trim().parse() == Ok(pid));
        let watchdog = var("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&usec| usec > 0 && ours)
            .map(Duration::from_micros);
        Some(Self { socket, watchdog })
    }

    /// The interval systemd expects pings within (`WATCHDOG_USEC`), if it watches.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `lines` (e.g. `READY=1\nSTATUS=…`). A failure is logged, never the
    /// server's failure: systemd notices a missing `READY=1` or ping by itself.
    pub fn send(&self, lines: &str) {
        if let Err(error) = self.try_send(lines) {
            tracing::warn!(%error, "cannot notify systemd");
        }
    }

    fn try_send(&self, lines: &str) -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        let sent = match &self.socket {
            Socket::Path(path) => socket.send_to(lines.as_bytes(), path)?,
            Socket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(lines.as_bytes(), &address)?
            }
        };
        if sent != lines.len() {
            return Err(std::io::Error::other("short datagram"));
        }
        Ok(())
    }
}

/// The `STATUS=` text and whether to say `READY=1`, for a readiness check.
pub(crate) fn readiness_message(ready: bool, sealed: bool) -> String {
    match (ready, sealed) {
        (true, _) => "READY=1\nSTATUS=ready: serving".to_owned(),
        (false, true) => "STATUS=sealed: waiting for an unseal (coffer unseal)".to_owned(),
        (false, false) => {
            "STATUS=not ready: the store, custody or the known-answer checks do not pass yet"
                .to_owned()
        }
    }
}

/// How the watchdog probes liveness.
pub(crate) enum Probe {
    /// `GET /healthz` over a loopback connection to the operations port.
    Port(SocketAddr),
    /// `GET /healthz` through the operations router, in-process (TLS ports).
    Router(Router),
}

impl Probe {
    /// The probe for an operations port listening on `address`: a connection to the
    /// same port on loopback when it listens on every address.
    pub(crate) fn port(address: SocketAddr) -> Self {
        let ip = match address.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Self::Port(SocketAddr::new(ip, address.port()))
    }

    /// Whether `/healthz` answered 200 within `limit`.
    pub(crate) async fn alive(&self, limit: Duration) -> bool {
        let probe = async {
            match self {
                Self::Port(address) => healthz_over_tcp(*address).await,
                Self::Router(router) => {
                    let request = axum::http::Request::get("/healthz")
                        .body(axum::body::Body::empty())
                        .map_err(std::io::Error::other)?;
                    let response = router.clone().oneshot(request).await;
                    Ok(response.is_ok_and(|r| r.status() == 200))
                }
            }
        };
        matches!(tokio::time::timeout(limit, probe).await, Ok(Ok(true)))
    }
}

async fn healthz_over_tcp(address: SocketAddr) -> std::io::Result<bool> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: coffer\r\nconnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::with_capacity(256);
    // The status line is all that is needed; the answer is a few bytes long.
    let mut chunk = [0u8; 256];
    while answer.len() < 4096 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
        if answer.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    Ok(answer.starts_with(b"HTTP/1.1 200 "))
}

/// Pings systemd's watchdog every `interval / 2` while `probe` passes, until `stop`
/// changes. A failed probe is logged and skips that ping.
pub(crate) async fn watchdog(
    notifier: Notifier,
    interval: Duration,
    probe: Probe,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = (interval / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if probe.alive(every).await {
                    notifier.send("WATCHDOG=1");
                } else {
                    tracing::warn!(
                        "liveness probe (GET /healthz on the operations port) failed; \
                         systemd watchdog not pinged"
                    );
                }
            }
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_environment_names_the_socket_and_the_watchdog_for_this_process_only() {
        assert!(Notifier::from_vars(vars(&[]), 7).is_none());
        assert!(Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "")]), 7).is_none());
        let plain = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "/run/n")]), 7).unwrap();
        assert!(matches!(plain.socket, Socket::Path(_)));
        assert_eq!(plain.watchdog(), None);
        let watched = vars(&[
            ("NOTIFY_SOCKET", "@coffer/notify"),
            ("WATCHDOG_USEC", "30000000"),
            ("WATCHDOG_PID", "7"),
        ]);
        let ours = Notifier::from_vars(&watched, 7).unwrap();
        assert!(matches!(&ours.socket, Socket::Abstract(n) if n == b"coffer/notify"));
        assert_eq!(ours.watchdog(), Some(Duration::from_secs(30)));
        // Inherited from a parent: not ours to ping.
        assert_eq!(Notifier::from_vars(&watched, 8).unwrap().watchdog(), None);
        for bad in ["0", "-5", "soon"] {
            let v = vars(&[("NOTIFY_SOCKET", "/run/n"), ("WATCHDOG_USEC", bad)]);
            assert_eq!(Notifier::from_vars(v, 7).unwrap().watchdog(), None, "{bad}");
        }
    }

    #[test]
    fn datagrams_reach_a_path_socket_and_an_abstract_one() {
        let dir = std::env::temp_dir().join(format!("coffer-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier =
            Notifier::from_vars(vars(&[("NOTIFY_SOCKET", path.to_str().unwrap())]), 1).unwrap();
        notifier.send("READY=1\nSTATUS=ready: serving");
        let mut buffer = [0u8; 128];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=ready: serving");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("coffer-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        let abstract_socket = format!("@{name}");
        let notifier =
            Notifier::from_vars(vars(&[("NOTIFY_SOCKET", abstract_socket.as_str())]), 1).unwrap();
        notifier.send("STOPPING=1");
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
        // Nobody listening: logged, not a panic or an error of the caller.
        std::fs::remove_file(&path).unwrap();
        Notifier::from_vars(vars(&[("NOTIFY_SOCKET", path.to_str().unwrap())]), 1)
            .unwrap()
            .send("WATCHDOG=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A loopback port whose every connection is answered with `status` (raw HTTP,
    /// as any server would answer the probe's request).
    async fn serve_health(status: u16) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 512];
                let _ = stream.read(&mut request).await;
                let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn the_probe_passes_only_when_healthz_answers_200_in_time() {
        let limit = Duration::from_secs(2);
        let healthy = serve_health(200).await;
        assert!(Probe::port(healthy).alive(limit).await);
        // Listening on every address: probed on loopback.
        let every = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), healthy.port());
        assert!(Probe::port(every).alive(limit).await);
        let refusing = serve_health(503).await;
        assert!(!Probe::port(refusing).alive(limit).await);
        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        assert!(!Probe::port(gone).alive(limit).await);
        // A port that accepts and never answers: the probe gives up at its limit.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let started = std::time::Instant::now();
        assert!(
            !Probe::port(silent.local_addr().unwrap())
                .alive(Duration::from_millis(300))
                .await
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // In-process (TLS ports): the router's own answer (200 here, 404 without it).
        let router = Router::new().fallback(|| async { "ok" });
        assert!(Probe::Router(router).alive(limit).await);
        assert!(!Probe::Router(Router::new()).alive(limit).await);
    }

    #[test]
    fn readiness_says_ready_only_when_ready() {
        assert!(readiness_message(true, false).starts_with("READY=1\n"));
        assert!(!readiness_message(false, true).contains("READY=1"));
        assert!(!readiness_message(false, false).contains("READY=1"));
        assert!(readiness_message(false, true).contains("sealed"));
    }
}
