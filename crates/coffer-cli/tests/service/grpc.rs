//! The gRPC front (issue 14): the generated client (`coffer_server::grpc::proto`)
//! round-trips the hot operations on a real server, with the native API's tokens,
//! audit entries, tenancy and error codes; no gRPC port unless one is configured.
//!
//! The client runs over a bare HTTP/2 connection (hyper's, [`H2`]), so these tests
//! need no gRPC stack beyond the generated code.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use coffer_api::ErrorCode;
use coffer_api::admin::{MintTokenRequest, RevokeTokenRequest};
use coffer_audit::entry::{AuditEntry, ExportedEntry};
use coffer_core::token::Token;
use coffer_server::grpc::proto::{self, kms_client::KmsClient};
use coffer_server::startup::InitMethod;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::{Code, Request, Status};

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::{Db, TestServer};

/// A bare HTTP/2 connection, as the generated client's transport, and the origin
/// (`http://host:port`) its requests name: the generated client sends only paths.
#[derive(Clone)]
pub struct H2(SendRequest<tonic::body::Body>, String);

impl tower::Service<hyper::Request<tonic::body::Body>> for H2 {
    type Response = hyper::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: hyper::Request<tonic::body::Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        *request.uri_mut() = format!("{}{path}", self.1).parse().unwrap();
        Box::pin(self.0.send_request(request))
    }
}

/// The generated client over `io` (a TCP or TLS stream to `origin`).
pub async fn client_over<I>(io: I, origin: &str) -> KmsClient<H2>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    try_client_over(io, origin).await.unwrap()
}

/// [`client_over`], answering a failed HTTP/2 handshake instead of panicking.
pub async fn try_client_over<I>(io: I, origin: &str) -> Result<KmsClient<H2>, hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(connection);
    Ok(KmsClient::new(H2(sender, origin.to_owned())))
}

/// The generated client, connected to the server's gRPC port.
pub async fn connect(server: &TestServer) -> KmsClient<H2> {
    let addr = server.grpc.as_deref().expect("the server has a gRPC port");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    client_over(stream, &format!("http://{addr}")).await
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A server with the gRPC front on an ephemeral port.
pub async fn grpc_server(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("COFFER_GRPC_ADDR", "127.0.0.1:0")];
    env.extend_from_slice(extra);
    TestServer::start_with(Db::Sqlite, InitMethod::KeyFile, &env)
        .await
        .unwrap()
}

/// The gRPC code and Coffer's error code of a refused call.
pub fn refusal<T: std::fmt::Debug>(result: Result<T, Status>) -> (Code, String) {
    let status = result.unwrap_err();
    let code = status
        .metadata()
        .get("coffer-error-code")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status.code(), code)
}

fn context() -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_owned(), "billing".to_owned())])
}

fn wrap(key: &str, plaintext: &[u8]) -> proto::WrapRequest {
    proto::WrapRequest {
        key_id: key.to_owned(),
        plaintext: plaintext.to_vec(),
        context: context(),
        track_id: None,
    }
}

/// Entries in the stored log, every queued one committed and read.
pub async fn audited(server: &TestServer) -> u64 {
    let log = server.state.audit.clone().unwrap();
    log.settle().await;
    log.follow().await;
    log.size()
}

async fn entries(server: &TestServer) -> Vec<AuditEntry> {
    let log = server.admin().audit_entries(0, 100_000).await.unwrap();
    log.lines()
        .map(|l| serde_json::from_str::<ExportedEntry>(l).unwrap().entry)
        .collect()
}

/// An entry without its time and request id: what two calls of one operation by one
/// caller share, whichever front they came through.
fn shape(entry: &AuditEntry) -> AuditEntry {
    AuditEntry {
        at: 0,
        request_id: String::new(),
        ..entry.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_round_trips_the_hot_operations() {
    let server = grpc_server(&[]).await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    create(&acme, "aes-256", "data").await;
    create(&acme, "aes-256", "other").await;
    create(&acme, "ed25519", "release").await;
    create(&acme, "hmac-sha256", "tags").await;
    let mut kms = connect(&server).await;

    // wrap → unwrap, with its context; another context does not open it.
    let answer = kms
        .wrap(authed(&token, wrap("alias/data", b"card 4242")))
        .await
        .unwrap();
    let request_id = answer.metadata().get("x-request-id").unwrap().to_owned();
    let sealed = answer.into_inner();
    assert_eq!(sealed.key_version, 1);
    let opened = kms
        .unwrap(authed(
            &token,
            proto::UnwrapRequest {
                ciphertext: sealed.ciphertext.clone(),
                context: context(),
                attestation: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, b"card 4242");
    assert_eq!(opened.key_id, sealed.key_id);
    // With a track id, the wrap registers a tracked data key, as the native route does.
    let mut tracked = wrap("alias/data", b"a legacy data key");
    tracked.track_id = Some("grpc-1".into());
    let imported = kms
        .wrap(authed(&token, tracked))
        .await
        .unwrap()
        .into_inner();
    let row = acme.tracked("grpc-1").await.unwrap();
    assert_eq!(row.ciphertext.0, imported.ciphertext);
    let wrong = kms
        .unwrap(authed(
            &token,
            proto::UnwrapRequest {
                ciphertext: sealed.ciphertext.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        refusal(wrong),
        (Code::InvalidArgument, "invalid_ciphertext".to_owned())
    );
    // One service: the native API opens what the gRPC front sealed.
    let native = acme
        .unwrap(&unwrap_request(
            &coffer_api::B64(sealed.ciphertext.clone()),
            &[("app", "billing")],
        ))
        .await
        .unwrap();
    assert_eq!(native.plaintext.expose_secret(), b"card 4242");

    // datakey: the plaintext and its ciphertext, which unwraps to it.
    let data_key = kms
        .datakey(authed(
            &token,
            proto::DatakeyRequest {
                key_id: "alias/data".into(),
                context: context(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let plaintext = data_key.plaintext.clone().unwrap();
    assert_eq!(plaintext.len(), 32);
    let reopened = kms
        .unwrap(authed(
            &token,
            proto::UnwrapRequest {
                ciphertext: data_key.ciphertext.clone(),
                context: context(),
                attestation: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reopened.plaintext, plaintext);

    // rewrap under another key, which then opens it.
    let moved = kms
        .rewrap(authed(
            &token,
            proto::RewrapRequest {
                ciphertext: sealed.ciphertext.clone(),
                context: context(),
                key_id: Some("alias/other".into()),
                destination_context: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(moved.key_id, sealed.key_id);
    let reopened = kms
        .unwrap(authed(
            &token,
            proto::UnwrapRequest {
                ciphertext: moved.ciphertext,
                context: context(),
                attestation: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reopened.plaintext, b"card 4242");

    // sign → verify; a changed message does not verify.
    let message = |m: &[u8]| Some(proto::sign_request::Input::Message(m.to_vec()));
    let signed = kms
        .sign(authed(
            &token,
            proto::SignRequest {
                key_id: "alias/release".into(),
                input: message(b"v1.2.3"),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.algorithm, "ed25519");
    let verify = |m: &[u8]| proto::VerifyRequest {
        key_id: "alias/release".into(),
        input: Some(proto::verify_request::Input::Message(m.to_vec())),
        signature: signed.signature.clone(),
        ..Default::default()
    };
    let verdict = kms.verify(authed(&token, verify(b"v1.2.3"))).await.unwrap();
    assert!(verdict.into_inner().valid);
    let verdict = kms.verify(authed(&token, verify(b"v1.2.4"))).await.unwrap();
    assert!(!verdict.into_inner().valid);
    // No input at all is refused as the native API refuses it.
    let empty = kms
        .sign(authed(
            &token,
            proto::SignRequest {
                key_id: "alias/release".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        refusal(empty),
        (Code::InvalidArgument, "invalid_request".to_owned())
    );

    // mac → verify-mac.
    let tag = kms
        .mac(authed(
            &token,
            proto::MacRequest {
                key_id: "alias/tags".into(),
                message: b"webhook".to_vec(),
                attestation: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let checked = kms
        .verify_mac(authed(
            &token,
            proto::VerifyMacRequest {
                key_id: "alias/tags".into(),
                key_version: None,
                message: b"webhook".to_vec(),
                mac: tag.mac,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(checked.valid);

    // The audit entry of a gRPC wrap is the native wrap's, under the answer's request
    // id; the native API's own wrap makes the same entry.
    acme.wrap(&wrap_request("alias/data", b"x", &[("app", "billing")]))
        .await
        .unwrap();
    let log = entries(&server).await;
    let grpc_wrap = log
        .iter()
        .find(|e| e.request_id == request_id.to_str().unwrap())
        .expect("the gRPC wrap is audited under its request id");
    let native_wrap = log.iter().rev().find(|e| e.op == "wrap").unwrap();
    assert_eq!(shape(grpc_wrap), shape(native_wrap));
    assert_eq!(grpc_wrap.outcome, "ok");
    assert_eq!(
        grpc_wrap.principal,
        Token::decode(&token).unwrap().id().to_string()
    );
    // Measured as the native route is: only the gRPC front called verify-mac here.
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    let tenant = format!("tenant=\"{}\"", grpc_wrap.tenant);
    assert!(
        metrics.lines().any(|l| l.starts_with("kms_ops_total{")
            && l.contains(&tenant)
            && l.contains("op=\"verify_mac\"")
            && l.contains("outcome=\"ok\"")),
        "{metrics}"
    );
    for op in [
        "unwrap",
        "datakey",
        "rewrap",
        "sign",
        "verify",
        "mac",
        "verify_mac",
    ] {
        assert!(
            log.iter().any(|e| e.op.replace('-', "_") == op),
            "no {op} entry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_missing_token_is_refused_unauthenticated_and_audited_as_over_http() {
    let server = grpc_server(&[]).await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    create(&acme, "aes-256", "data").await;
    let revoked = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    server
        .admin()
        .revoke_token(&RevokeTokenRequest {
            token_id: Token::decode(&revoked).unwrap().id().to_string(),
        })
        .await
        .unwrap();
    let mut kms = connect(&server).await;
    let before = audited(&server).await;

    let missing = kms.wrap(Request::new(wrap("alias/data", b"x"))).await;
    assert_eq!(
        refusal(missing),
        (Code::Unauthenticated, "unauthorized".to_owned())
    );
    for bad in ["coffer_v1_garbage", revoked.as_str()] {
        let refused = kms.wrap(authed(bad, wrap("alias/data", b"x"))).await;
        assert_eq!(
            refusal(refused),
            (Code::Unauthenticated, "unauthorized".to_owned()),
            "{bad}"
        );
        let native = server
            .client(bad)
            .wrap(&wrap_request("alias/data", b"x", &[]))
            .await;
        assert_eq!(code_of(native), ErrorCode::Unauthorized);
    }
    // Each 401 is audited alike on both fronts (op `authenticate`, outcome
    // `unauthorized`, under the refusal limit): the revoked token, whose tag verifies,
    // by its id; no token and a malformed one by the peer's address.
    assert!(audited(&server).await >= before + 5);
    let log = entries(&server).await;
    let unauthorized: Vec<&AuditEntry> = log
        .iter()
        .filter(|e| e.op == "authenticate" && e.outcome == "unauthorized")
        .collect();
    let revoked_id = Token::decode(&revoked).unwrap().id().to_string();
    let by = |principal: &str| {
        unauthorized
            .iter()
            .filter(|e| e.principal == principal)
            .count()
    };
    assert_eq!(
        (by(&revoked_id), by("peer:127.0.0.1")),
        (2, 3),
        "{unauthorized:?}"
    );

    // A token that authenticates but may not wrap: refused and audited alike.
    let verify_only = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            operations: vec!["verify".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    let refused = kms
        .wrap(authed(&verify_only, wrap("alias/data", b"x")))
        .await;
    assert_eq!(
        refusal(refused),
        (Code::PermissionDenied, "forbidden".to_owned())
    );
    let native = server
        .client(&verify_only)
        .wrap(&wrap_request("alias/data", b"x", &[]))
        .await;
    assert_eq!(code_of(native), ErrorCode::Forbidden);
    let log = entries(&server).await;
    let refusals: Vec<AuditEntry> = log
        .iter()
        .filter(|e| e.outcome == "forbidden")
        .map(shape)
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert_eq!(refusals[0], refusals[1]);
    assert_eq!(
        refusals[0].principal,
        Token::decode(&verify_only).unwrap().id().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_key_answers_not_found_as_over_http() {
    let server = grpc_server(&[]).await;
    let acme_token = server.tenant_token("acme").await;
    let globex_token = server.tenant_token("globex").await;
    let acme_key = create(&server.client(&acme_token), "aes-256", "data").await;
    let signing = create(&server.client(&acme_token), "ed25519", "release").await;
    let mut kms = connect(&server).await;
    let sealed = kms
        .wrap(authed(&acme_token, wrap(&acme_key, b"acme only")))
        .await
        .unwrap()
        .into_inner();

    // Another tenant's key, by id or by its ciphertext, is absent: NOT_FOUND as HTTP's
    // 404, the same as a key that does not exist.
    let not_found = (Code::NotFound, "not_found".to_owned());
    let by_id = kms.wrap(authed(&globex_token, wrap(&acme_key, b"x"))).await;
    assert_eq!(refusal(by_id), not_found);
    let absent = kms
        .wrap(authed(&globex_token, wrap("alias/no-such-key", b"x")))
        .await;
    assert_eq!(refusal(absent), not_found);
    let opened = kms
        .unwrap(authed(
            &globex_token,
            proto::UnwrapRequest {
                ciphertext: sealed.ciphertext.clone(),
                context: context(),
                attestation: None,
            },
        ))
        .await;
    assert_eq!(refusal(opened), not_found);
    let signed = kms
        .sign(authed(
            &globex_token,
            proto::SignRequest {
                key_id: signing.clone(),
                input: Some(proto::sign_request::Input::Message(b"m".to_vec())),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(refusal(signed), not_found);
    let native = server
        .client(&globex_token)
        .wrap(&wrap_request(&acme_key, b"x", &[]))
        .await;
    assert_eq!(code_of(native), ErrorCode::NotFound);

    // Audited as the native refusal is: the gRPC call by id and the native one make
    // the same entry, naming the caller (the absent alias is in between).
    let globex = Token::decode(&globex_token).unwrap().id().to_string();
    let log = entries(&server).await;
    let refusals: Vec<AuditEntry> = log
        .iter()
        .filter(|e| e.op == "wrap" && e.outcome == "not_found" && e.principal == globex)
        .map(shape)
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert_eq!(refusals[0], refusals[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn there_is_no_grpc_port_unless_one_is_configured() {
    // The listeners `coffer serve` binds for the default configuration.
    let config = coffer_server::Config::load_with(None, |name| match name {
        "COFFER_API_ADDR" | "COFFER_METRICS_ADDR" => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(config.grpc.addr, None);
    let listeners = coffer_server::Listeners::bind(&config).await.unwrap();
    assert!(listeners.grpc.is_none());

    // A server so configured has no gRPC port, and neither of its ports speaks gRPC.
    let server = TestServer::start().await;
    assert!(server.grpc.is_none());
    for url in [&server.api, &server.ops] {
        let addr = url.trim_start_matches("http://");
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let handshake = hyper::client::conn::http2::handshake::<_, _, tonic::body::Body>(
            TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await;
        let answered = match handshake {
            Err(_) => false,
            Ok((sender, connection)) => {
                tokio::spawn(connection);
                let mut kms = KmsClient::new(H2(sender, format!("http://{addr}")));
                kms.wrap(authed(&server.admin_token, wrap("k", b"x")))
                    .await
                    .is_ok()
            }
        };
        assert!(!answered, "{url} answered a gRPC call");
    }
}
