//! `coffer doctor` against a real server: the `coffer` binary, run as an operator
//! would, with exit codes 0 (ok), 1 (warning) and 2 (critical).
//!
//! A separate test binary from `service` so it can be run alone
//! (`cargo test -p coffer-cli --test doctor_cli`); the server start below is the
//! minimal part of `service/harness.rs` (SQLite, key-file custody).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use coffer_api::admin::{CreateTenantRequest, MintTokenRequest};
use coffer_api::keys::CreateKeyRequest;
use coffer_client::Client;
use coffer_server::startup::{self, InitMethod, Initialized};
use coffer_server::{AppState, Config};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A running server; stopped on drop.
struct Server {
    api: String,
    ops: String,
    admin_token: String,
    state: AppState,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("coffer-doctor")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let vars = [
            ("COFFER_DATA_DIR", dir.display().to_string()),
            ("COFFER_API_ADDR", "127.0.0.1:0".into()),
            ("COFFER_METRICS_ADDR", "127.0.0.1:0".into()),
            ("COFFER_CUSTODY_METHOD", "key-file".into()),
        ];
        let config = Config::load_with(None, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap();
        let (state, Initialized { admin_token, .. }) =
            startup::init(&config, InitMethod::KeyFile).await.unwrap();
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (api_url, ops_url) = (
            format!("http://{}", api.local_addr().unwrap()),
            format!("http://{}", ops.local_addr().unwrap()),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(coffer_server::serve(api, ops, state.clone(), async move {
            let _ = stopped.await;
        }));
        Self {
            api: api_url,
            ops: ops_url,
            admin_token,
            state,
            _stop: stop,
        }
    }

    fn admin(&self) -> Client {
        Client::new(&self.api, Some(self.admin_token.clone())).unwrap()
    }

    /// Creates tenant `name`; answers a token for it.
    async fn tenant_token(&self, name: &str) -> String {
        let admin = self.admin();
        let tenant = CreateTenantRequest {
            name: name.into(),
            ..Default::default()
        };
        admin.create_tenant(&tenant).await.unwrap();
        let mint = MintTokenRequest {
            tenant: Some(name.into()),
            ..Default::default()
        };
        admin.mint_token(&mint).await.unwrap().token
    }

    /// Creates a key `alias/ALIAS` with `validity` in the token's tenant; answers its id.
    async fn key(&self, token: &str, alias: &str, validity: Option<&str>) -> String {
        let client = Client::new(&self.api, Some(token.to_owned())).unwrap();
        let request = CreateKeyRequest {
            spec: "aes-256".into(),
            alias: Some(alias.into()),
            validity: validity.map(Into::into),
            ..Default::default()
        };
        client.create_key(&request).await.unwrap().key_id
    }

    /// Runs `coffer doctor ARGS` with only this server's addresses (and `token`, if
    /// any) in its environment: no `COFFER_*` of the developer's leaks in.
    async fn doctor(&self, token: Option<&str>, args: &str) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
        command
            .arg("doctor")
            .args(args.split_whitespace())
            .env_clear()
            .env("COFFER_ADDR", &self.api)
            .env("COFFER_OPS_ADDR", &self.ops)
            .stdin(Stdio::null());
        if let Some(token) = token {
            command.env("COFFER_TOKEN", token);
        }
        // On the blocking pool: the server under test shares this runtime.
        let child = tokio::task::spawn_blocking(move || command.output().unwrap());
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child)
            .await
            .unwrap_or_else(|_| panic!("coffer doctor {args} did not finish"))
            .unwrap();
        Run {
            code: output.status.code().expect("exited, not signalled"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(self, expected: i32) -> Self {
        assert_eq!(self.code, expected, "{self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }

    /// The table row of `check`, split on runs of spaces.
    fn row(&self, check: &str) -> Vec<&str> {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{check} ")))
            .unwrap_or_else(|| panic!("no row for {check}: {self:#?}"));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// `(check, status)` of each check in a JSON report.
fn statuses(json: &Value) -> Vec<(String, String)> {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_expiration_grades_each_tenants_keys() {
    let server = Server::start().await;
    // One tenant per outcome: a token sees its own tenant's keys only.
    let critical = server.tenant_token("critical").await;
    let soon = server.key(&critical, "soon", Some("3d")).await;
    server.key(&critical, "month", Some("20d")).await;
    server.key(&critical, "forever", None).await;
    let warning = server.tenant_token("warning").await;
    let month = server.key(&warning, "month", Some("20d")).await;
    server.key(&warning, "year", Some("365d")).await;
    let fine = server.tenant_token("fine").await;
    server.key(&fine, "forever", None).await;
    let off = server.key(&fine, "off", Some("3d")).await;
    Client::new(&server.api, Some(fine.clone()))
        .unwrap()
        .disable_key(&off)
        .await
        .expect("a disabled key is not checked");

    let run = server
        .doctor(Some(&critical), "--check key-expiration")
        .await
        .code(2);
    assert_eq!(
        run.row("key-expiration"),
        [
            "key-expiration",
            "critical",
            "of 3 enabled keys: 1 within 7 days, 1 within 30 days"
        ]
    );
    assert!(run.stdout.contains(&soon), "{run:#?}");
    assert!(run.stdout.contains("alias/month"), "{run:#?}");
    assert!(!run.stdout.contains("alias/forever"), "{run:#?}");
    assert_eq!(
        run.stdout.lines().filter(|l| l.contains("store")).count(),
        0
    );

    let json = server
        .doctor(Some(&critical), "--check key-expiration --json")
        .await
        .code(2)
        .json();
    assert_eq!(json["status"], "critical");
    let keys = json["checks"][0]["keys"].as_array().unwrap();
    let graded: Vec<(&str, &str, i64)> = keys
        .iter()
        .map(|k| {
            let alias = k["aliases"][0].as_str().unwrap();
            (
                alias,
                k["status"].as_str().unwrap(),
                k["days_left"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        graded,
        [
            ("alias/soon", "critical", 2),
            ("alias/month", "warning", 19)
        ]
    );
    assert_eq!(keys[0]["key_id"], soon.as_str());
    assert_eq!(keys[0]["version"], 1);
    assert!(keys[0]["not_after"].as_str().unwrap().ends_with('Z'));

    let run = server
        .doctor(Some(&warning), "--check key-expiration")
        .await
        .code(1);
    assert_eq!(run.row("key-expiration")[1], "warning");
    assert!(run.stdout.contains(&month) && !run.stdout.contains("alias/year"));
    // The windows are flags.
    server
        .doctor(Some(&warning), "--check key-expiration --warn-days 14")
        .await
        .code(0);
    server
        .doctor(Some(&warning), "--check key-expiration --critical-days 21")
        .await
        .code(2);

    let run = server
        .doctor(Some(&fine), "--check key-expiration")
        .await
        .code(0);
    assert_eq!(
        run.row("key-expiration"),
        [
            "key-expiration",
            "ok",
            "1 enabled key; none expires within 30 days"
        ]
    );
    // Without a token the check cannot run: a warning, not a pass.
    let run = server.doctor(None, "--check key-expiration").await.code(1);
    assert!(run.stdout.contains("needs a tenant token"), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_custody_are_critical_once_sealed() {
    let server = Server::start().await;
    let run = server
        .doctor(None, "--check store --check custody")
        .await
        .code(0);
    assert_eq!(run.row("store")[1], "ok");
    assert_eq!(run.row("custody")[..2], ["custody", "ok"]);

    // Sealed, as after a restart.
    server
        .state
        .custody
        .sealed()
        .expect("sealed custody")
        .seal();
    server.state.kms.forget_secrets();
    let run = server
        .doctor(None, "--check custody --check store")
        .await
        .code(2);
    assert_eq!(run.row("custody")[1], "critical");
    assert!(
        run.row("custody")[2].starts_with("sealed (key-file)"),
        "{run:#?}"
    );
    assert_eq!(
        run.row("store")[1..],
        ["critical", "not ready: the server is sealed"]
    );
    let json = server
        .doctor(None, "--check store --check custody --json")
        .await
        .code(2)
        .json();
    assert_eq!(
        statuses(&json),
        [
            ("store".into(), "critical".into()),
            ("custody".into(), "critical".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_server_passes_every_check() {
    let server = Server::start().await;
    let token = server.tenant_token("acme").await;
    server.key(&token, "kek", Some("365d")).await;
    // A checkpoint now, rather than waiting for the periodic one.
    server.admin().audit_new_checkpoint().await.unwrap();

    let run = server.doctor(Some(&token), "").await.code(0);
    let checks: Vec<&str> = [
        "key-expiration",
        "signing-spares",
        "store",
        "custody",
        "clock-skew",
        "audit",
    ]
    .into_iter()
    .filter(|check| run.row(check)[1] == "ok")
    .collect();
    assert_eq!(checks.len(), 6, "{run:#?}");
    assert!(run.row("audit")[2].contains("verifies"), "{run:#?}");
    assert!(
        run.row("clock-skew")[2].starts_with("server clock"),
        "{run:#?}"
    );
    assert!(run.stdout.starts_with("CHECK"), "{run:#?}");
    let json = server.doctor(Some(&token), "--json").await.code(0).json();
    assert_eq!(json["status"], "ok");
    assert_eq!(statuses(&json).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_with_a_validity_and_no_spare_is_a_warning() {
    let server = Server::start().await;
    let token = server.tenant_token("releases").await;
    let client = Client::new(&server.api, Some(token.clone())).unwrap();
    let signer = client
        .create_key(&CreateKeyRequest {
            spec: "ed25519".into(),
            alias: Some("attestation".into()),
            validity: Some("365d".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .key_id;
    // Neither a key without a validity nor an encryption key needs a spare.
    client
        .create_key(&CreateKeyRequest {
            spec: "ed25519".into(),
            alias: Some("forever".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    server.key(&token, "kek", Some("365d")).await;

    let run = server
        .doctor(Some(&token), "--check signing-spares")
        .await
        .code(1);
    let row = run.row("signing-spares");
    assert_eq!(row[1], "warning", "{run:#?}");
    assert!(
        row[2].contains("1 of 1 signing keys with a validity have no spare")
            && row[2].contains(&signer)
            && row[2].contains("alias/attestation"),
        "{run:#?}"
    );

    client.add_spare(&signer).await.unwrap();
    let run = server
        .doctor(Some(&token), "--check signing-spares")
        .await
        .code(0);
    assert_eq!(run.row("signing-spares")[1], "ok", "{run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_unreachable_servers() {
    let server = Server::start().await;
    let run = server.doctor(None, "--check vibes").await.code(2);
    assert!(run.stderr.contains("vibes"), "{run:#?}");
    let run = server
        .doctor(None, "--warn-days 3 --critical-days 7")
        .await
        .code(2);
    assert!(run.stderr.contains("--critical-days"), "{run:#?}");
    // An operations port nobody listens on: critical, not an error exit.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let args = format!("--check store --ops-addr {addr}");
    let run = server.doctor(None, &args).await.code(2);
    assert!(
        run.row("store")[2].starts_with("readiness check on"),
        "{run:#?}"
    );
}
