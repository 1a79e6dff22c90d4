//! The AWS front under the operating envelope: a request the in-flight caps shed is
//! `ThrottlingException` to the real boto3 client (HTTP 400 with `Retry-After`, as AWS
//! KMS throttles), whether the class is full (`backpressure`) or the caller's tenant
//! holds its share (`tenant_share`); botocore's standard retry mode treats it as a
//! throttle and retries it. The slots are held by native requests whose bodies never
//! finish (a slot is taken before the body is read), so the caps are full for as long
//! as the test needs.

use std::time::{Duration, Instant};

use coffer_api::keys::CreateKeyRequest;
use coffer_core::token::Token;
use coffer_server::admission::Class;
use coffer_server::startup::InitMethod;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::aws_clients::venv_python;
use super::harness::{Db, TestServer};

/// Opens a native wrap request that sends its headers and one byte of its body, and
/// waits until the server holds its slot. Dropping the stream frees the slot.
async fn hold_wrap_slot(server: &TestServer, token: &str, held_before: usize) -> TcpStream {
    let address = server.api.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/kms/wrap HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 4096\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    wait_for_inflight(server, held_before + 1).await;
    stream
}

async fn wait_for_inflight(server: &TestServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.state.admission.inflight(Class::Wrap) != count {
        assert!(
            Instant::now() < deadline,
            "wrap slots in flight: {}, expected {count}",
            server.state.admission.inflight(Class::Wrap)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `tests/aws/throttling.py` as `token`'s access key against `key_id`.
async fn boto3_encrypt(
    python: &std::path::Path,
    server: &TestServer,
    token: &str,
    key_id: &str,
) -> serde_json::Value {
    let credentials = Token::decode(token).unwrap().aws_credentials();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/aws/throttling.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", super::harness::temp_dir())
        .env("COFFER_AWS_ENDPOINT", &server.api)
        .env("AWS_DEFAULT_REGION", "eu-west-3")
        .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", credentials.expose_secret())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("COFFER_KEY_ID", key_id);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "throttling.py failed:\n{stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn assert_throttled(seen: &serde_json::Value, reason_words: &str) {
    for (client, attempts) in [("once", 0), ("standard", 2)] {
        let answer = &seen[client];
        assert_eq!(answer["code"], "ThrottlingException", "{client}: {seen}");
        assert_eq!(answer["status"], 400, "{client}: {seen}");
        assert_eq!(answer["retry_after"], "1", "{client}: {seen}");
        assert_eq!(answer["attempts"], attempts, "{client}: {seen}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason_words), "{client}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sees_throttling_exception_when_the_aws_front_sheds() {
    let Some(python) = venv_python() else {
        return;
    };
    // Two wrap slots; each active tenant is guaranteed one.
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[
            ("COFFER_MAX_INFLIGHT_WRAP", "2"),
            ("COFFER_TENANT_SHARE_MIN", "0.5"),
        ],
    )
    .await
    .unwrap();
    let acme = server.tenant_token("acme").await;
    let globex = server.tenant_token("globex").await;
    let key = server
        .client(&acme)
        .create_key(&CreateKeyRequest {
            spec: "aes-256".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .key_id;

    // The class full with acme's own requests: backpressure (a 503 natively).
    let first = hold_wrap_slot(&server, &acme, 0).await;
    let second = hold_wrap_slot(&server, &acme, 1).await;
    let seen = boto3_encrypt(&python, &server, &acme, &key).await;
    assert_throttled(&seen, "at its limit");

    // acme holds one slot and globex the other: acme is at its share (429 natively).
    drop(second);
    wait_for_inflight(&server, 1).await;
    let other = hold_wrap_slot(&server, &globex, 1).await;
    let seen = boto3_encrypt(&python, &server, &acme, &key).await;
    assert_throttled(&seen, "holds its share");

    // Slots freed: the same client's request goes through, so the throttling was the
    // caps' and nothing else's.
    drop((first, other));
    wait_for_inflight(&server, 0).await;
    let seen = boto3_encrypt(&python, &server, &acme, &key).await;
    assert_eq!(seen["once"]["code"], serde_json::Value::Null, "{seen}");
}
