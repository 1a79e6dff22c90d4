//! How a port accepts and holds connections: a cap on open connections, timeouts on
//! slow and idle clients, and TLS.
//!
//! - **Cap.** Each port has its own (`transport.max_connections`, `.ops_max_connections`),
//!   so a flood of API connections never takes the operations port's. A connection
//!   over the cap is accepted only to be answered `503` with `Retry-After: 1` and closed
//!   (over TLS, or when 32 refusals are already under way: closed unanswered), and
//!   counted in `kms_connections_refused_total{port}`; the default cap leaves
//!   descriptors for the rest of the process.
//! - **Header timeout.** A connection that has not sent a request's complete headers
//!   within `header_timeout` (slow-loris, or a new socket that sends nothing) is closed
//!   (hyper's timer).
//!   hyper runs the same timer while a keep-alive connection waits for its next
//!   request, so an idle keep-alive connection closes after `header_timeout` too.
//! - **Idle timeout.** A connection with no request in flight that reads and writes
//!   nothing for `idle_timeout` is closed (it bites first when shorter than
//!   `header_timeout`), as is a TLS handshake not finished by then.
//! - **Body timeout.** Enforced where bodies are read (`extract`), answering 408.
//! - **TLS.** [`tls::TlsSource`]: the configuration current at accept; client
//!   certificates become a [`peer::Peer`] request extension.
//! - **HTTP/2.** The gRPC port ([`Port::Grpc`]) speaks HTTP/2 (prior knowledge, or
//!   ALPN `h2` over TLS) under the same cap, idle timeout, TLS and drain; it has no
//!   header timeout of its own (hyper's HTTP/2 server has none), so a connection that
//!   sends nothing is closed by the idle timeout.

pub mod peer;
pub mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::config::TransportConfig;
use peer::Peer;
use tls::TlsSource;

/// Which port, for metrics and for the TLS configuration to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The native API.
    Api,
    /// Health, readiness, metrics.
    Ops,
    /// The gRPC front (HTTP/2).
    Grpc,
}

impl Port {
    fn label(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Ops => "ops",
            Self::Grpc => "grpc",
        }
    }
}

/// How one port serves.
#[derive(Clone)]
pub struct PortOptions {
    /// Which port.
    pub port: Port,
    /// Open connections at most.
    pub max_connections: usize,
    /// See [`TransportConfig::header_timeout`].
    pub header_timeout: Duration,
    /// See [`TransportConfig::idle_timeout`].
    pub idle_timeout: Duration,
    /// TLS, when configured.
    pub tls: Option<Arc<TlsSource>>,
}

impl PortOptions {
    /// The options of `port` under `transport`.
    pub fn new(port: Port, transport: &TransportConfig, tls: Option<Arc<TlsSource>>) -> Self {
        Self {
            port,
            max_connections: match port {
                // The gRPC port has a cap of its own, as large as the API port's.
                Port::Api | Port::Grpc => transport.max_connections,
                Port::Ops => transport.ops_max_connections,
            },
            header_timeout: transport.header_timeout,
            idle_timeout: transport.idle_timeout,
            tls,
        }
    }
}

const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 86\r\n\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"too many open connections: retry shortly\"}}\n";

/// Serves `router` on `listener` until `stop` changes, then lets every open connection
/// finish its request in flight and returns.
pub async fn serve_port(
    listener: TcpListener,
    router: Router,
    options: PortOptions,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    // Connections being answered 503: few at once, so refusing never costs the
    // descriptors the cap protects; beyond them a connection is closed unanswered.
    let refusals = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    let mut connections = tokio::task::JoinSet::new();
    let label = options.port.label();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        metrics::gauge!("kms_connections_open", "port" => label).increment(1.0);
                        let (router, options, stop) = (router.clone(), options.clone(), stop.clone());
                        connections.spawn(async move {
                            serve_connection(stream, router, &options, stop).await;
                            drop(permit);
                            metrics::gauge!("kms_connections_open", "port" => label).decrement(1.0);
                        });
                    }
                    Err(_) => {
                        metrics::counter!("kms_connections_refused_total", "port" => label)
                            .increment(1);
                        // An HTTP/1.1 503 means nothing to an HTTP/2 client: the gRPC port
                        // closes such a connection unanswered.
                        if let (Ok(permit), true) = (
                            refusals.clone().try_acquire_owned(),
                            options.tls.is_none() && options.port != Port::Grpc,
                        ) {
                            tokio::spawn(async move {
                                refuse(stream).await;
                                drop(permit);
                            });
                        }
                    }
                },
                Err(error) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept:
                    // wait a little rather than spin; open connections keep going.
                    metrics::counter!("kms_accept_errors_total", "port" => label).increment(1);
                    tracing::warn!(%error, port = label, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Connections answered 503 at the same time, at most.
const REFUSING_AT_ONCE: usize = 32;

/// Answers a plain-HTTP connection over the cap with 503 and closes it, within a
/// second. The request's first bytes are awaited briefly: an answer sent before the
/// client wrote its request is one HTTP clients discard as a broken connection.
async fn refuse(mut stream: TcpStream) {
    let mut first = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut first)).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        stream.write_all(OVER_CAPACITY).await?;
        stream.shutdown().await
    })
    .await;
}

/// The address a request's connection came from (a request extension): what the
/// audit of refused authentications is keyed by when no verified token names the
/// caller (`coffer_core::kms::Unauthenticated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    options: &PortOptions,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let client = stream.peer_addr().ok().map(|addr| ClientAddr(addr.ip()));
    let activity = Arc::new(Activity::new());
    let io = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    match &options.tls {
        None => {
            serve_io(
                io,
                (Peer::Anonymous, client),
                router,
                options,
                activity,
                stop,
            )
            .await
        }
        Some(tls) => {
            let config = match options.port {
                Port::Api => tls.api(),
                Port::Ops => tls.ops(),
                Port::Grpc => tls.grpc(),
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let handshake = tokio::time::timeout(options.idle_timeout, acceptor.accept(io));
            let stream = match handshake.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    metrics::counter!("kms_tls_handshake_failures_total", "port" => options.port.label())
                        .increment(1);
                    tracing::debug!(%error, "tls handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map_or(Peer::Anonymous, |leaf| Peer::from_certificate(leaf));
            serve_io(stream, (peer, client), router, options, activity, stop).await;
        }
    }
}

async fn serve_io<I>(
    io: I,
    (peer, client): (Peer, Option<ClientAddr>),
    router: Router,
    options: &PortOptions,
    activity: Arc<Activity>,
    stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = activity.clone();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(peer.clone());
            if let Some(client) = client {
                request.extensions_mut().insert(client);
            }
            let router = router.clone();
            // Counted until the request's future ends or is dropped (an HTTP/2 stream
            // reset by its client drops it unfinished).
            let request_in_flight = InFlight::start(in_flight.clone());
            async move {
                let response = router.oneshot(request).await;
                drop(request_in_flight);
                response
            }
        });
    if options.port == Port::Grpc {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        let connection = builder.serve_connection(TokioIo::new(io), service);
        drive(connection, options, &activity, stop).await;
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .keep_alive(true);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        drive(connection, options, &activity, stop).await;
    }
}

/// A connection of either HTTP version, which can be asked to finish gracefully.
trait Graceful: Future {
    fn shut_down(self: Pin<&mut Self>);
}

impl<I, S> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    Self: Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    Self: Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn shut_down(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs `connection` until it ends: on `stop`, or once idle for `idle_timeout`, it is
/// asked to finish the requests in flight and close.
async fn drive<C: Graceful>(
    connection: C,
    options: &PortOptions,
    activity: &Activity,
    mut stop: watch::Receiver<bool>,
) {
    tokio::pin!(connection);
    let check_every =
        (options.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(check_every);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => break,
            _ = stop.changed(), if !closing => {
                closing = true;
                connection.as_mut().shut_down();
            }
            _ = tick.tick(), if !closing => {
                if activity.requests.load(Ordering::Relaxed) == 0
                    && activity.idle_for() >= options.idle_timeout
                {
                    metrics::counter!("kms_connections_timed_out_total", "port" => options.port.label(), "reason" => "idle")
                        .increment(1);
                    closing = true;
                    connection.as_mut().shut_down();
                }
            }
        }
    }
}

/// When a connection last moved a byte, and how many of its requests are in flight.
struct Activity {
    started: Instant,
    last_millis: AtomicU64,
    requests: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_millis: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_millis.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// One request in flight on a connection, from its start until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A stream that notes each byte it moves in its [`Activity`].
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
