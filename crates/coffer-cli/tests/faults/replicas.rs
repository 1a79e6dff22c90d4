//! Three `coffer serve` replicas on one PostgreSQL database: all of them serve, one is
//! killed (SIGKILL) under load, and afterwards every acknowledged operation is there and
//! the one audit log they share verifies, with contiguous indices and an entry for each
//! acknowledged operation.
//!
//! The replicas are child processes of the `coffer` binary, so the kill is real. The
//! first is initialised with `coffer init`; the others get copies of its custody files
//! (state and key file), as an operator deploying more replicas would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::http;
use crate::harness::{postgres_url, temp_dir};

/// A `coffer serve` child process, killed when dropped.
struct Replica {
    child: Child,
    api: String,
    ops: String,
    log: std::path::PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `coffer` with only the configuration given here (and `PATH`).
fn coffer(dir: &Path, database_url: &str, api: u16, ops: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COFFER_DATA_DIR", dir)
        .env("COFFER_DATABASE_URL", database_url)
        .env("COFFER_API_ADDR", format!("127.0.0.1:{api}"))
        .env("COFFER_METRICS_ADDR", format!("127.0.0.1:{ops}"))
        .env("COFFER_AUDIT_CHECKPOINT_INTERVAL", "1h");
    command
}

async fn serve(dir: &Path, database_url: &str) -> Replica {
    let (api, ops) = (free_port(), free_port());
    let log = dir.join("serve.log");
    let child = coffer(dir, database_url, api, ops)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let replica = Replica {
        child,
        api: format!("http://127.0.0.1:{api}"),
        ops: format!("http://127.0.0.1:{ops}"),
        log,
    };
    let http = http::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http::readyz(&http, &replica.ops).await != 200 {
        assert!(
            Instant::now() < deadline,
            "a replica did not become ready: {}",
            std::fs::read_to_string(&replica.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    replica
}

/// A server holding keys writes no core: its core-size limit is zero, soft and hard
/// (`coffer_server::hardening`, applied before anything is loaded).
fn assert_no_core_dumps(replica: &Replica) {
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", replica.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core limit line");
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

/// Initialises the deployment in `dir`; the admin token.
fn init(dir: &Path, database_url: &str) -> String {
    let out = coffer(dir, database_url, free_port(), free_port())
        .arg("init")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "coffer init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("admin token: "))
        .expect("coffer init prints the admin token")
        .to_owned()
}

/// Everything acknowledged.
#[derive(Default)]
struct Ledger {
    keys: Vec<String>,
    /// (ciphertext, plaintext), base64.
    ciphertexts: Vec<(String, String)>,
    /// Acknowledged operations of every kind (each must have its audit entry).
    acknowledged: usize,
}

enum Op {
    Create,
    Wrap(String),
    Unwrap(String, String),
    Sign,
}

/// What an acknowledged request leaves to check later.
enum Acked {
    Key(String),
    /// (ciphertext, plaintext), base64.
    Ciphertext(String, String),
    Other,
}

/// One request to one replica: what it acknowledged, or the failure.
async fn run(
    http: reqwest::Client,
    api: String,
    token: String,
    keys: (String, String),
    op: Op,
) -> Result<Acked, String> {
    let (path, body) = match &op {
        Op::Create => ("/v1/kms/keys", json!({"spec": "aes-256"})),
        Op::Wrap(plaintext) => (
            "/v1/kms/wrap",
            json!({"key_id": keys.0, "plaintext": plaintext}),
        ),
        Op::Unwrap(ciphertext, _) => ("/v1/kms/unwrap", json!({"ciphertext": ciphertext})),
        Op::Sign => (
            "/v1/kms/sign",
            json!({"key_id": keys.1, "message": B64.encode("replicated")}),
        ),
    };
    let answer = http::post(&http, &api, path, &token, Some(&body))
        .await
        .map_err(|e| format!("{path}: no answer: {e}"))?;
    if !answer.ok() {
        return Err(format!("{path}: {} {}", answer.status, answer.json));
    }
    Ok(match op {
        Op::Create => Acked::Key(answer.field("key_id")),
        Op::Wrap(plaintext) => Acked::Ciphertext(answer.field("ciphertext"), plaintext),
        Op::Unwrap(ciphertext, plaintext) => {
            if answer.field("plaintext") != plaintext {
                return Err(format!("unwrap gave the wrong plaintext for {ciphertext}"));
            }
            Acked::Other
        }
        Op::Sign => Acked::Other,
    })
}

/// One round: one request to each live replica, concurrently (the kind rotates with
/// the round and the replica). Failures are returned by replica index.
async fn round(
    http: &reqwest::Client,
    live: &[(usize, String)],
    token: &str,
    keys: &(String, String),
    n: usize,
    ledger: &mut Ledger,
) -> Vec<(usize, String)> {
    let mut set = JoinSet::new();
    for (i, api) in live {
        let op = match (n + i) % 4 {
            0 => Op::Create,
            1 => Op::Wrap(B64.encode(format!("replica-{i}-round-{n}"))),
            2 => match ledger.ciphertexts.last() {
                Some((ct, pt)) => Op::Unwrap(ct.clone(), pt.clone()),
                None => Op::Create,
            },
            _ => Op::Sign,
        };
        let future = run(
            http.clone(),
            api.clone(),
            token.to_owned(),
            keys.clone(),
            op,
        );
        let i = *i;
        set.spawn(async move { (i, future.await) });
    }
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, outcome) = joined.unwrap();
        match outcome {
            Ok(acked) => {
                ledger.acknowledged += 1;
                match acked {
                    Acked::Key(id) => ledger.keys.push(id),
                    Acked::Ciphertext(ct, pt) => ledger.ciphertexts.push((ct, pt)),
                    Acked::Other => {}
                }
            }
            Err(e) => failures.push((i, e)),
        }
    }
    failures
}

/// Failures of one kind, counted, with the first shown.
#[derive(Default)]
pub struct Tally {
    count: usize,
    first: Option<String>,
}

impl Tally {
    pub fn add(&mut self, failure: String) {
        self.count += 1;
        self.first.get_or_insert(failure);
    }

    pub fn report(self, what: &str) -> Option<String> {
        self.first
            .map(|first| format!("{} {what}; the first: {first}", self.count))
    }
}

fn must(answer: Result<http::Answer, reqwest::Error>, what: &str) -> http::Answer {
    let answer = answer.unwrap();
    assert!(answer.ok(), "{what}: {answer:?}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_verifiable_log_through_a_kill() {
    let Some(database_url) = postgres_url().await else {
        return;
    };
    let dirs = [temp_dir(), temp_dir(), temp_dir()];
    let admin_token = init(&dirs[0], &database_url);
    for dir in &dirs[1..] {
        for file in ["custody.json", "unseal.key"] {
            // `fs::copy` keeps the mode (0600), which custody insists on.
            std::fs::copy(dirs[0].join(file), dir.join(file)).unwrap();
        }
    }
    // The tenant and its token exist before replicas 1 and 2 start, so that they know
    // the token at once (tokens minted later reach other replicas within 10 s).
    let mut replicas = vec![serve(&dirs[0], &database_url).await];
    assert_no_core_dumps(&replicas[0]);
    let http = http::client();
    let mut ledger = Ledger::default();
    let admin_api = replicas[0].api.clone();
    must(
        http::post(
            &http,
            &admin_api,
            "/v1/admin/tenants",
            &admin_token,
            Some(&json!({"name": "acme"})),
        )
        .await,
        "create tenant",
    );
    let token = must(
        http::post(
            &http,
            &admin_api,
            "/v1/admin/tokens",
            &admin_token,
            Some(&json!({"tenant": "acme"})),
        )
        .await,
        "mint token",
    )
    .field("token");
    let key = |spec: &'static str| {
        let (http, api, token) = (http.clone(), admin_api.clone(), token.clone());
        async move {
            must(
                http::post(
                    &http,
                    &api,
                    "/v1/kms/keys",
                    &token,
                    Some(&json!({"spec": spec})),
                )
                .await,
                "create key",
            )
            .field("key_id")
        }
    };
    let keys = (key("aes-256").await, key("ed25519").await);
    ledger.acknowledged += 4;
    for dir in &dirs[1..] {
        replicas.push(serve(dir, &database_url).await);
    }

    let mut wrong = Vec::new();
    let all: Vec<(usize, String)> = replicas.iter().map(|r| r.api.clone()).enumerate().collect();
    // All three healthy: every replica serves every request.
    let mut healthy_failures = [0; 3];
    let mut examples = vec![String::new(); 3];
    for n in 0..60 {
        for (i, e) in round(&http, &all, &token, &keys, n, &mut ledger).await {
            healthy_failures[i] += 1;
            examples[i] = e;
        }
    }
    for i in 0..3 {
        if healthy_failures[i] > 0 {
            wrong.push(format!(
                "replica {i} failed {} of 60 requests while all three were healthy \
                 (the last: {})",
                healthy_failures[i], examples[i]
            ));
        }
    }

    // Replica 2 is killed while a round is in flight; what it acknowledged must last.
    let mut victim = replicas.pop().unwrap();
    let in_flight = round(&http, &all, &token, &keys, 60, &mut ledger);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        victim.child.kill().unwrap();
    };
    let (failures, ()) = tokio::join!(in_flight, kill);
    wrong.extend(
        failures
            .into_iter()
            .filter(|(i, _)| *i != 2)
            .map(|(i, e)| format!("replica {i} failed during the kill: {e}")),
    );
    let _ = victim.child.wait();

    // The survivors carry on.
    let survivors: Vec<(usize, String)> = all[..2].to_vec();
    let mut after_kill = Tally::default();
    for n in 61..121 {
        for (i, e) in round(&http, &survivors, &token, &keys, n, &mut ledger).await {
            after_kill.add(format!("survivor {i}: {e}"));
        }
    }
    wrong.extend(after_kill.report("requests to survivors failed after the kill"));

    // Everything acknowledged is there, through either survivor.
    let mut missing = Tally::default();
    for (n, key) in ledger.keys.iter().enumerate() {
        let api = &survivors[n % 2].1;
        let shown = http::get(&http, api, &format!("/v1/kms/keys/{key}"), &token).await;
        if !matches!(&shown, Ok(a) if a.ok()) {
            missing.add(format!(
                "acknowledged key {key} (via survivor {}): {shown:?}",
                n % 2
            ));
        }
    }
    for (n, (ct, pt)) in ledger.ciphertexts.iter().enumerate() {
        let api = &survivors[n % 2].1;
        let body = json!({"ciphertext": ct});
        match http::post(&http, api, "/v1/kms/unwrap", &token, Some(&body)).await {
            Ok(a) if a.ok() && a.field("plaintext") == *pt => {}
            other => missing.add(format!(
                "acknowledged ciphertext (via survivor {}): {other:?}",
                n % 2
            )),
        }
    }
    wrong.extend(missing.report("acknowledged keys and ciphertexts not readable"));

    // One log: contiguous, an entry per acknowledged operation, and it verifies.
    let signed = http::post(
        &http,
        &admin_api,
        "/v1/audit/checkpoint",
        &admin_token,
        None,
    )
    .await;
    if !matches!(&signed, Ok(a) if a.ok()) {
        wrong.push(format!("signing a checkpoint: {signed:?}"));
    }
    let exported = must(
        http::get(
            &http,
            &admin_api,
            "/v1/audit/entries?from=0&limit=100000",
            &admin_token,
        )
        .await,
        "audit entries",
    );
    let text = match &exported.json {
        Value::String(text) => text.clone(),
        other => other.to_string() + "\n",
    };
    let indices: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    if let Some(at) = indices.iter().enumerate().position(|(n, &i)| i != n as u64) {
        wrong.push(format!(
            "audit index {at} holds entry {}: a hole",
            indices[at]
        ));
    }
    if indices.len() < ledger.acknowledged {
        wrong.push(format!(
            "the audit log has {} entries for {} acknowledged operations",
            indices.len(),
            ledger.acknowledged
        ));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .env_clear()
        .env("COFFER_ADDR", &admin_api)
        .env("COFFER_TOKEN", &admin_token)
        .args(["audit", "verify", "--online"])
        .output()
        .unwrap();
    if !out.status.success() {
        wrong.push(format!(
            "coffer audit verify --online: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!(
        "acknowledged {} operations ({} keys, {} ciphertexts); {} audit entries; logs in {:?}",
        ledger.acknowledged,
        ledger.keys.len(),
        ledger.ciphertexts.len(),
        indices.len(),
        replicas.iter().map(|r| &r.log).collect::<Vec<_>>()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
