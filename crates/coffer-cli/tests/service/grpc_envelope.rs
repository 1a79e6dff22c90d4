//! The gRPC front under the native API's operating envelope: the same in-flight caps
//! (shared with the native API, shed as `UNAVAILABLE` or `RESOURCE_EXHAUSTED` before any
//! work), the same drain at shutdown, and TLS with the server's certificate.
//!
//! A call is held in flight deterministically by sending its headers and only part of
//! its message: its slot is taken before the body is read, and kept until it is.

use std::convert::Infallible;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use coffer_server::admission::Class;
use coffer_server::grpc::proto;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Code;

use super::api::create;
use super::grpc::{audited, authed, client_over, connect, grpc_server, refusal, try_client_over};
use super::harness::TestServer;

/// A request body sent piece by piece; it ends when its sender is dropped.
struct Trickle(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// A call whose message has been sent only in part.
struct Held {
    rest: mpsc::Sender<Bytes>,
    remainder: Bytes,
    answer: JoinHandle<hyper::Result<hyper::Response<hyper::body::Incoming>>>,
}

/// `message` as gRPC frames it: uncompressed, its length, its bytes.
fn framed(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out.into()
}

/// Calls `method` as `token`, sending the first three bytes of `message`'s frame.
async fn hold(server: &TestServer, method: &str, token: &str, message: &impl Message) -> Held {
    hold_frame(server, method, token, framed(message)).await
}

/// Calls `method` as `token`, sending the first three bytes of `whole`.
async fn hold_frame(server: &TestServer, method: &str, token: &str, mut whole: Bytes) -> Held {
    let addr = server.grpc.clone().unwrap();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let remainder = whole.split_off(3);
    let (rest, chunks) = mpsc::channel(4);
    rest.send(whole).await.unwrap();
    let request = hyper::Request::post(format!("http://{addr}/coffer.v1.Kms/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(Trickle(chunks))
        .unwrap();
    let answer = tokio::spawn(sender.send_request(request));
    Held {
        rest,
        remainder,
        answer,
    }
}

impl Held {
    /// Sends the rest of the message: the call's `grpc-status` and answer message.
    async fn finish(self) -> (String, Bytes) {
        // The server may have answered already (a timeout): the rest then goes nowhere.
        let _ = self.rest.send(self.remainder).await;
        drop(self.rest);
        let response = self.answer.await.unwrap().unwrap();
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap();
        let status = parts
            .headers
            .get("grpc-status")
            .or(collected.trailers().and_then(|t| t.get("grpc-status")))
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = collected.to_bytes();
        let message = if bytes.len() > 5 {
            bytes.slice(5..)
        } else {
            Bytes::new()
        };
        (status, message)
    }
}

async fn wait_inflight(server: &TestServer, class: Class, n: usize) {
    for _ in 0..1000 {
        if server.state.admission.inflight(class) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "{} requests of {class:?} in flight, expected {n}",
        server.state.admission.inflight(class)
    );
}

/// The value of the series `name{labels}` (0 when absent).
async fn metric(server: &TestServer, series: &str) -> f64 {
    let text = server.anonymous().metrics(&server.ops).await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn sign(key: &str) -> proto::SignRequest {
    proto::SignRequest {
        key_id: key.to_owned(),
        input: Some(proto::sign_request::Input::Message(b"release".to_vec())),
        ..Default::default()
    }
}

fn native_sign(key: &str) -> String {
    serde_json::json!({"key_id": key, "message": "cmVsZWFzZQ=="}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_class_sheds_grpc_calls_with_unavailable_before_any_work() {
    let server = grpc_server(&[("COFFER_MAX_INFLIGHT_SIGN", "1")]).await;
    let token = server.tenant_token("acme").await;
    let key = create(&server.client(&token), "ed25519", "release").await;

    // A gRPC call takes its slot before its message has arrived.
    let held = hold(&server, "Sign", &token, &sign(&key)).await;
    wait_inflight(&server, Class::Sign, 1).await;
    let entries = audited(&server).await;
    let shed_before = metric(&server, "kms_reject_total{reason=\"backpressure\"}").await;

    let mut kms = connect(&server).await;
    let status = kms.sign(authed(&token, sign(&key))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.metadata().get("coffer-error-code").unwrap(),
        "unavailable"
    );
    assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
    // The caps are the native API's: its sign is shed too.
    let (code, json) = server
        .post_raw("/v1/kms/sign", &token, native_sign(&key))
        .await;
    assert_eq!(
        (code, json["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    // Shed, not done: nothing recorded, both counted.
    assert_eq!(audited(&server).await, entries);
    assert_eq!(
        metric(&server, "kms_reject_total{reason=\"backpressure\"}").await,
        shed_before + 2.0
    );
    assert!(metric(&server, "rejected_total{reason=\"backpressure\"}").await >= 2.0);

    // Another class has its own slots.
    let verdict = kms
        .verify(authed(
            &token,
            proto::VerifyRequest {
                key_id: key.clone(),
                input: Some(proto::verify_request::Input::Message(b"x".to_vec())),
                signature: vec![0; 64],
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert!(!verdict.into_inner().valid);

    // The held call completes once its message arrives, and frees its slot.
    let (status, message) = held.finish().await;
    assert_eq!(status, "0");
    assert!(
        !proto::SignResponse::decode(message)
            .unwrap()
            .signature
            .is_empty()
    );
    wait_inflight(&server, Class::Sign, 0).await;
    kms.sign(authed(&token, sign(&key))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_share_gets_resource_exhausted_while_a_quiet_tenant_is_served() {
    // 4 sign slots, a floor of one each.
    let server = grpc_server(&[
        ("COFFER_MAX_INFLIGHT_SIGN", "4"),
        ("COFFER_TENANT_SHARE_MIN", "0.25"),
    ])
    .await;
    let noisy = server.tenant_token("noisy").await;
    let quiet = server.tenant_token("quiet").await;
    let noisy_key = create(&server.client(&noisy), "ed25519", "n").await;
    let quiet_key = create(&server.client(&quiet), "ed25519", "q").await;
    let mut held = Vec::new();
    for n in 1..=3 {
        held.push(hold(&server, "Sign", &noisy, &sign(&noisy_key)).await);
        wait_inflight(&server, Class::Sign, n).await;
    }
    let mut kms = connect(&server).await;
    kms.sign(authed(&quiet, sign(&quiet_key))).await.unwrap();
    let refused = kms.sign(authed(&noisy, sign(&noisy_key))).await;
    assert_eq!(
        refusal(refused),
        (Code::ResourceExhausted, "too_many_requests".to_owned())
    );
    let (code, json) = server
        .post_raw("/v1/kms/sign", &noisy, native_sign(&noisy_key))
        .await;
    assert_eq!(
        (code, json["error"]["code"].as_str()),
        (429, Some("too_many_requests"))
    );
    kms.sign(authed(&quiet, sign(&quiet_key))).await.unwrap();
    drop(held);
    wait_inflight(&server, Class::Sign, 0).await;
    kms.sign(authed(&noisy, sign(&noisy_key))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_is_finished_when_the_server_stops() {
    let server = grpc_server(&[]).await;
    let token = server.tenant_token("acme").await;
    let key = create(&server.client(&token), "ed25519", "release").await;
    let addr = server.grpc.clone().unwrap();
    let held = hold(&server, "Sign", &token, &sign(&key)).await;
    wait_inflight(&server, Class::Sign, 1).await;

    // The stop waits for the call; the port takes no new connection meanwhile.
    let stopping = tokio::spawn(server.stop());
    let mut closed = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        closed,
        "the gRPC port still accepts connections while draining"
    );
    assert!(!stopping.is_finished());
    let (status, message) = held.finish().await;
    assert_eq!(status, "0");
    assert!(
        !proto::SignResponse::decode(message)
            .unwrap()
            .signature
            .is_empty()
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stops once the call is answered")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_does_not_decode_is_invalid_argument_and_changes_nothing() {
    let server = grpc_server(&[]).await;
    let token = server.tenant_token("acme").await;
    create(&server.client(&token), "aes-256", "data").await;
    let entries = audited(&server).await;
    // Field 1 (key_id) says 100 bytes follow; two do.
    let garbage = [0x0a, 100, b'a', b'b'];
    let mut whole = vec![0u8];
    whole.extend_from_slice(&u32::try_from(garbage.len()).unwrap().to_be_bytes());
    whole.extend_from_slice(&garbage);
    let held = hold_frame(&server, "Wrap", &token, whole.into()).await;
    let (status, message) = held.finish().await;
    assert_eq!(status, "3", "INVALID_ARGUMENT");
    assert!(message.is_empty());
    assert_eq!(audited(&server).await, entries);
    // The service is unharmed.
    let mut kms = connect(&server).await;
    let wrap = proto::WrapRequest {
        key_id: "alias/data".into(),
        plaintext: b"x".to_vec(),
        context: Default::default(),
    };
    kms.wrap(authed(&token, wrap)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_or_trickling_message_is_refused_as_over_http() {
    let server = grpc_server(&[
        ("COFFER_MAX_BODY_BYTES", "1024"),
        ("COFFER_TRANSPORT_BODY_TIMEOUT", "1s"),
    ])
    .await;
    let token = server.tenant_token("acme").await;
    create(&server.client(&token), "aes-256", "data").await;
    let entries = audited(&server).await;
    let mut kms = connect(&server).await;
    let big = proto::WrapRequest {
        key_id: "alias/data".into(),
        plaintext: vec![7; 2000],
        context: Default::default(),
    };
    assert_eq!(
        refusal(kms.wrap(authed(&token, big)).await),
        (Code::ResourceExhausted, "payload_too_large".to_owned())
    );
    // Half a message, then nothing: refused once the body timeout has passed, and the
    // slot it held is free again.
    let held = hold(&server, "Sign", &token, &sign("alias/data")).await;
    wait_inflight(&server, Class::Sign, 1).await;
    wait_inflight(&server, Class::Sign, 0).await;
    let (status, _) = held.finish().await;
    assert_eq!(status, "4", "DEADLINE_EXCEEDED");
    assert_eq!(audited(&server).await, entries);
}

fn pki(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls")
        .join(name)
        .display()
        .to_string()
}

/// A tenant `acme` and a token for it, made through the native API over TLS (with
/// the client certificate `cert`, when the server asks for one).
async fn tenant_over_tls(server: &TestServer, cert: Option<&str>) -> String {
    let native_tls = coffer_client::ClientTls {
        ca_file: Some(pki("ca.pem").into()),
        cert_file: cert.map(|c| pki(&format!("{c}.pem")).into()),
        key_file: cert.map(|c| pki(&format!("{c}.key")).into()),
    };
    let api = server.api.replacen("http://", "https://", 1);
    let admin =
        coffer_client::Client::with_tls(&api, Some(server.admin_token.clone()), &native_tls)
            .unwrap();
    admin
        .create_tenant(&coffer_api::admin::CreateTenantRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .mint_token(&coffer_api::admin::MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token
}

/// A TLS connection to `addr` trusting the test CA, offering ALPN `h2` and the client
/// certificate `cert` if any.
async fn tls_to(
    addr: &str,
    cert: Option<&str>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pki_types::CertificateDer::pem_file_iter(pki("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(pki(&format!("{c}.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                rustls_pki_types::PrivateKeyDer::from_pem_file(pki(&format!("{c}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

fn datakey(key: &str) -> proto::DatakeyRequest {
    proto::DatakeyRequest {
        key_id: key.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_uses_the_servers_certificate() {
    let (cert, key) = (pki("server.pem"), pki("server.key"));
    let server = grpc_server(&[
        ("COFFER_TLS_CERT_FILE", cert.as_str()),
        ("COFFER_TLS_KEY_FILE", key.as_str()),
    ])
    .await;
    let token = tenant_over_tls(&server, None).await;
    let addr = server.grpc.clone().unwrap();
    let tls = tls_to(&addr, None).await.unwrap();
    // The server chose HTTP/2 by ALPN, as gRPC clients require.
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut kms = client_over(tls, &format!("https://{addr}")).await;
    let refused = kms.datakey(authed(&token, datakey("alias/k"))).await;
    assert_eq!(refusal(refused), (Code::NotFound, "not_found".to_owned()));
    let api = server.api.replacen("http://", "https://", 1);
    let native_tls = coffer_client::ClientTls {
        ca_file: Some(pki("ca.pem").into()),
        cert_file: None,
        key_file: None,
    };
    let acme = coffer_client::Client::with_tls(&api, Some(token.clone()), &native_tls).unwrap();
    create(&acme, "aes-256", "k").await;
    let data_key = kms
        .datakey(authed(&token, datakey("alias/k")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(data_key.plaintext.as_ref().map(Vec::len), Some(32));

    // Plain HTTP/2 to the TLS port is not served.
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut plain = client_over(stream, &format!("http://{addr}")).await;
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        plain.datakey(authed(&token, datakey("alias/k"))),
    )
    .await;
    assert!(
        !matches!(answered, Ok(Ok(_))),
        "a plaintext call was answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_applies_the_client_certificate_policy() {
    let (cert, key, ca) = (pki("server.pem"), pki("server.key"), pki("ca.pem"));
    let server = grpc_server(&[
        ("COFFER_TLS_CERT_FILE", cert.as_str()),
        ("COFFER_TLS_KEY_FILE", key.as_str()),
        ("COFFER_TLS_CLIENT_CA_FILE", ca.as_str()),
        ("COFFER_TLS_CLIENT_AUTH", "required"),
    ])
    .await;
    let token = tenant_over_tls(&server, Some("client-admin")).await;
    let addr = server.grpc.clone().unwrap();
    let origin = format!("https://{addr}");

    // No certificate: no call is answered, whatever the token.
    if let Ok(bare) = tls_to(&addr, None).await {
        let answered = match try_client_over(bare, &origin).await {
            Err(_) => false,
            Ok(mut kms) => kms
                .datakey(authed(&token, datakey("alias/k")))
                .await
                .is_ok(),
        };
        assert!(
            !answered,
            "a call without a client certificate was answered"
        );
    }
    // The admin's certificate with a tenant's token: not that principal.
    let stream = tls_to(&addr, Some("client-admin")).await.unwrap();
    let mut kms = client_over(stream, &origin).await;
    let refused = kms.datakey(authed(&token, datakey("alias/k"))).await;
    assert_eq!(
        refusal(refused),
        (Code::PermissionDenied, "forbidden".to_owned())
    );
}
