//! The `coffer` binary against a real server: every command a tenant, an operator or a
//! script uses, its output contract (the result on stdout, `--json` parses, metadata
//! on stderr) and its failure contract (one `error: …` line, non-zero exit, nothing on
//! stdout, no token or plaintext quoted). Also checks that `coffer.example.toml` loads.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_server::{Config, CustodyConfig};
use serde_json::Value;

use super::harness::TestServer;

/// No command of these tests should take this long; a hung child fails the test.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One finished `coffer` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// Stdout as text, trimmed of the final newline.
    pub fn out(&self) -> String {
        String::from_utf8(self.stdout.clone())
            .expect("stdout is UTF-8")
            .trim_end()
            .to_owned()
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.out()))
    }

    /// Asserts exit 0 and returns `self`.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }

    /// Asserts the failure contract: non-zero exit, nothing on stdout, exactly one line
    /// on stderr starting `error: `, none of `secrets` quoted. Returns that line.
    #[track_caller]
    pub fn failed(&self, secrets: &[&str]) -> String {
        assert_ne!(self.code, 0, "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        for secret in secrets {
            assert!(
                !self.stderr.contains(secret),
                "stderr quotes a secret: {self:?}"
            );
        }
        lines[0].to_owned()
    }
}

/// The `coffer` binary pointed at one server with one token. The child's environment
/// is cleared so a developer's own `COFFER_*` variables cannot leak into a test.
pub struct Coffer {
    pub api: String,
    pub ops: String,
    pub token: String,
}

impl Coffer {
    pub fn new(server: &TestServer, token: &str) -> Self {
        Self {
            api: server.api.clone(),
            ops: server.ops.clone(),
            token: token.to_owned(),
        }
    }

    /// Runs `coffer ARGS` with `stdin` (empty when `None`). The child runs on the
    /// blocking pool: the server under test shares this runtime.
    pub async fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
        command
            .args(args)
            .env_clear()
            .env("COFFER_ADDR", &self.api)
            .env("COFFER_OPS_ADDR", &self.ops)
            .env("COFFER_TOKEN", &self.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = stdin.unwrap_or_default().to_vec();
        let child = tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("the coffer binary starts");
            let mut pipe = child.stdin.take().expect("stdin is piped");
            pipe.write_all(&input).expect("stdin accepts the input");
            drop(pipe);
            child
                .wait_with_output()
                .expect("the coffer binary finishes")
        });
        let output = tokio::time::timeout(COMMAND_TIMEOUT, child)
            .await
            .unwrap_or_else(|_| panic!("coffer {args:?} did not finish"))
            .unwrap();
        Run {
            code: output.status.code().expect("exited, not signalled"),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `line` (split on whitespace: no argument here holds a space) with no
    /// stdin; any exit code.
    pub async fn line(&self, line: &str) -> Run {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.run(&args, None).await
    }

    /// Runs `line`, asserting exit 0.
    pub async fn ok(&self, line: &str) -> Run {
        self.line(line).await.ok()
    }

    /// Runs `line`, asserting exit 0; stdout as trimmed text.
    pub async fn out(&self, line: &str) -> String {
        self.ok(line).await.out()
    }

    /// Runs `line`, asserting exit 0; stdout as JSON.
    pub async fn json(&self, line: &str) -> Value {
        self.ok(line).await.json()
    }
}

/// The value of `name=` among the `name=value` words of `text`.
fn field<'t>(text: &'t str, name: &str) -> &'t str {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {text:?}"))
}

fn b64(text: &str) -> Vec<u8> {
    STANDARD.decode(text.trim()).expect("base64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_lifecycle_human_and_json() {
    let server = TestServer::start().await;
    let coffer = Coffer::new(&server, &server.tenant_token("acme").await);

    let human = coffer.out("keys create --spec aes-256 --alias kek").await;
    let key_id = human
        .lines()
        .find_map(|line| line.strip_prefix("key id:"))
        .expect("a key id line")
        .trim()
        .to_owned();
    assert!(human.contains("alias/kek"), "{human}");
    coffer.ok("keys create --spec ed25519 --alias signer").await;
    let json = coffer
        .json("--json keys create --spec hmac-sha256 --label a=b")
        .await;
    assert_eq!(
        (&json["spec"], &json["labels"]["a"]),
        (&"hmac-sha256".into(), &"b".into())
    );

    let table = coffer.out("keys list").await;
    assert!(table.starts_with("KEY ID"), "{table}");
    assert!(
        table.contains(&key_id) && table.contains("alias/signer"),
        "{table}"
    );
    let listed = coffer.json("keys list --json").await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);
    let signing = coffer.json("keys list --purpose sign --json").await;
    assert_eq!(signing["keys"][0]["spec"], "ed25519");

    assert!(coffer.out("keys show alias/kek").await.contains(&key_id));
    let shown = coffer.json(&format!("keys show {key_id} --json")).await;
    assert_eq!(shown["aliases"][0], "alias/kek");

    let rotated = coffer.out("keys rotate alias/kek").await;
    assert_eq!(field(&rotated, "primary_version"), "2");
    let rotated = coffer.json("keys rotate alias/kek --json").await;
    assert_eq!(
        (rotated["key_id"].as_str(), rotated["version"].as_u64()),
        (Some(key_id.as_str()), Some(3))
    );

    let disabled = coffer.json(&format!("--json keys disable {key_id}")).await;
    assert_eq!(disabled["state"], "disabled");
    let human = coffer.out("keys enable alias/kek").await;
    assert!(human.contains("state:               enabled"), "{human}");
    let scheduled = coffer
        .json("keys schedule-deletion alias/kek --days 7 --json")
        .await;
    assert_eq!(scheduled["state"], "pending-deletion");
    assert!(scheduled["deletion_due"].is_string(), "{scheduled}");
    let human = coffer.out("keys show alias/kek").await;
    assert!(human.contains("pending-deletion (deletion due "), "{human}");
    let cancelled = coffer.json("--json keys cancel-deletion alias/kek").await;
    assert_eq!(cancelled["state"], "disabled");
    let again = coffer.line("keys cancel-deletion alias/kek").await;
    assert!(
        again
            .failed(&[&coffer.token])
            .starts_with("error: conflict: ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_round_trips_through_stdin_and_stdout() {
    let server = TestServer::start().await;
    let coffer = Coffer::new(&server, &server.tenant_token("acme").await);
    coffer.ok("keys create --spec aes-256 --alias kek").await;
    coffer
        .ok("keys create --spec aes-256 --alias archive")
        .await;
    let secret: &[u8] = b"card-vault-master-secret\n\x00 binary tail";

    let encrypt = ["encrypt", "--key", "alias/kek", "--context", "app=billing"];
    let sealed = coffer.run(&encrypt, Some(secret)).await.ok();
    let ciphertext = sealed.out();
    assert_eq!(ciphertext.lines().count(), 1, "one base64 line");
    let decrypt = ["decrypt", "--context", "app=billing"];
    let opened = coffer.run(&decrypt, Some(&sealed.stdout)).await.ok();
    assert_eq!(opened.stdout, secret, "raw plaintext, byte for byte");
    let decrypt = format!("decrypt --context app=billing --ciphertext {ciphertext}");
    let opened = coffer.json(&format!("--json {decrypt}")).await;
    assert_eq!(b64(opened["plaintext"].as_str().unwrap()), secret);
    assert_eq!(opened["key_version"], 1);
    let file = server.dir.join("secret.b64");
    std::fs::write(&file, &sealed.stdout).unwrap();
    let from_file = format!("decrypt --in {} --context app=billing", file.display());
    assert_eq!(coffer.ok(&from_file).await.stdout, secret);

    // datakey: both forms on stdout, the key and version on stderr.
    let dk = coffer
        .ok("datakey --key alias/kek --bytes 16 --context db=orders")
        .await;
    let (text, plaintext) = (dk.out(), b64(field(&dk.out(), "plaintext")));
    assert_eq!(plaintext.len(), 16);
    assert_eq!(field(&dk.stderr, "key_version"), "1");
    let wrapped = field(&text, "ciphertext");
    let unwrap = format!("decrypt --context db=orders --ciphertext {wrapped}");
    assert_eq!(coffer.ok(&unwrap).await.stdout, plaintext);
    let wrapped_only = coffer.out("datakey --key alias/kek --no-plaintext").await;
    assert!(wrapped_only.starts_with("ciphertext=") && !wrapped_only.contains("plaintext="));
    let json = coffer.json("datakey --key alias/kek --json").await;
    assert_eq!(b64(json["plaintext"].as_str().unwrap()).len(), 32);

    // rewrap: to the rotated primary of the same key, then to another key.
    coffer.ok("keys rotate alias/kek").await;
    let rewrap = format!("rewrap --context app=billing --ciphertext {ciphertext}");
    let same = coffer.ok(&rewrap).await;
    assert_eq!(field(&same.stderr, "key_version"), "2");
    let moved = coffer
        .json(&format!("{rewrap} --json --key alias/archive"))
        .await;
    assert_eq!(moved["key_version"], 1);
    for rewrapped in [same.out(), moved["ciphertext"].as_str().unwrap().to_owned()] {
        let decrypt = format!("decrypt --context app=billing --ciphertext {rewrapped}");
        assert_eq!(coffer.ok(&decrypt).await.stdout, secret);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_and_macs_exit_zero_when_valid_and_one_when_not() {
    let server = TestServer::start().await;
    let coffer = Coffer::new(&server, &server.tenant_token("acme").await);
    for spec in ["ed25519", "ml-dsa-65"] {
        coffer
            .ok(&format!("keys create --spec {spec} --alias {spec}"))
            .await;
        let alias = format!("alias/{spec}");
        let sign = ["sign", "--key", &alias, "--message", "release 1.2.3"];
        let signed = coffer.run(&sign, None).await.ok();
        assert_eq!(field(&signed.stderr, "algorithm"), spec);
        // The message comes from stdin here: the same bytes as `--message`.
        let verify = format!("verify --key {alias} --signature {}", signed.out());
        let args: Vec<&str> = verify.split_whitespace().collect();
        let valid = coffer.run(&args, Some(b"release 1.2.3")).await;
        assert_eq!(
            (valid.code, valid.out().as_str()),
            (0, "valid"),
            "{spec}: {valid:?}"
        );
        let invalid = coffer.run(&args, Some(b"release 1.2.4")).await;
        assert_eq!(
            (invalid.code, invalid.out().as_str()),
            (1, "invalid"),
            "{spec}: {invalid:?}"
        );
        assert!(
            invalid.stderr.is_empty(),
            "an invalid signature is an answer, not an error"
        );
        let json = coffer
            .run(
                &[&args[..], &["--json", "--version", "1"]].concat(),
                Some(b"release 1.2.3"),
            )
            .await
            .ok()
            .json();
        assert_eq!(json["valid"], true, "{spec}");
    }

    coffer
        .ok("keys create --spec hmac-sha256 --alias hooks")
        .await;
    let mac = ["mac", "--key", "alias/hooks"];
    let tag = coffer.run(&mac, Some(b"payload")).await.ok();
    assert_eq!(field(&tag.stderr, "key_version"), "1");
    let verify = format!("verify-mac --key alias/hooks --mac {} --message", tag.out());
    let valid = coffer.line(&format!("{verify} payload")).await;
    assert_eq!(
        (valid.code, valid.out().as_str()),
        (0, "valid"),
        "{valid:?}"
    );
    let invalid = coffer.line(&format!("{verify} payl0ad")).await;
    assert_eq!(
        (invalid.code, invalid.out().as_str()),
        (1, "invalid"),
        "{invalid:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_and_tokens_with_the_admin_token() {
    let server = TestServer::start().await;
    let admin = Coffer::new(&server, &server.admin_token);
    let created = admin.out("tenant create globex").await;
    assert_eq!(field(&created, "name"), "globex");
    let json = admin.json("tenant create initech --json").await;
    assert_eq!(json["state"], "active");
    let table = admin.out("tenant list").await;
    assert!(
        table.starts_with("TENANT ID") && table.contains("globex"),
        "{table}"
    );
    let listed = admin.json("tenant list --json").await;
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 2);

    let minted = admin.ok("token mint --tenant globex").await;
    let (token, token_id) = (minted.out(), field(&minted.stderr, "token_id").to_owned());
    assert!(
        !minted.stderr.contains(&token),
        "the token is shown once, on stdout"
    );
    let globex = Coffer::new(&server, &token);
    globex.ok("keys create --spec aes-256 --alias k").await;
    let json = admin
        .json("token mint --json --tenant initech --ops keys:read --ttl 1h")
        .await;
    assert_eq!(json["token_id"].as_str().unwrap().len(), 32);

    // Attenuation is offline: the narrowed token comes from COFFER_TOKEN.
    let narrowed = globex.out("token attenuate --ops keys:read").await;
    let reader = Coffer::new(&server, &narrowed);
    let listed = reader.json("keys list --json").await;
    assert_eq!(listed["keys"][0]["aliases"][0], "alias/k");
    let refused = reader.line("keys create --spec aes-256").await;
    assert!(
        refused
            .failed(&[&narrowed])
            .starts_with("error: forbidden: ")
    );

    // Revoking the minted token revokes what was attenuated from it.
    let revoked = admin.out(&format!("token revoke {token_id}")).await;
    assert_eq!(revoked, format!("revoked token_id={token_id}"));
    for (who, text) in [(&globex, &token), (&reader, &narrowed)] {
        let run = who.line("keys list").await;
        assert!(
            run.failed(&[text]).starts_with("error: unauthorized: "),
            "{run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_seal_and_readiness() {
    let server = TestServer::start().await;
    let coffer = Coffer::new(&server, "");
    let human = coffer.out("status").await;
    assert!(
        human.contains("sealed:    no") && human.contains("ready:     yes"),
        "{human}"
    );
    let json = coffer.json("status --json").await;
    assert_eq!(
        (
            json["seal_status"]["sealed"].as_bool(),
            json["ready"].as_bool()
        ),
        (Some(false), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_one_error_line_without_secrets() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let coffer = Coffer::new(&server, &token);
    coffer.ok("keys create --spec aes-256 --alias kek").await;
    let plaintext = "top-secret-plaintext";
    let encrypt = "encrypt --key alias/kek --context app=billing --plaintext";
    let sealed = coffer.out(&format!("{encrypt} {plaintext}")).await;

    // A forged token (its last character changed) and a token that is not one at all.
    let last = if token.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    for bad in [forged.as_str(), "not-a-token"] {
        let run = Coffer::new(&server, bad).line("keys list").await;
        assert!(
            run.failed(&[bad, &token])
                .starts_with("error: unauthorized: ")
        );
    }
    let unknown = coffer
        .line(&format!(
            "encrypt --key alias/missing --plaintext {plaintext}"
        ))
        .await;
    assert!(
        unknown
            .failed(&[&token, plaintext])
            .starts_with("error: not_found: ")
    );
    let decrypt = format!("decrypt --context app=other --ciphertext {sealed}");
    let wrong_context = coffer.line(&decrypt).await;
    let line = wrong_context.failed(&[&token, plaintext]);
    assert!(line.starts_with("error: invalid_ciphertext: "), "{line}");

    // Another tenant's ciphertext names a key that does not exist for it.
    let other = server.tenant_token("globex").await;
    let decrypt = format!("decrypt --context app=billing --ciphertext {sealed}");
    let run = Coffer::new(&server, &other).line(&decrypt).await;
    assert!(
        run.failed(&[&other, &token, plaintext])
            .starts_with("error: not_found: ")
    );
    // A tenant token on an admin command.
    let run = coffer.line("tenant list").await;
    assert!(run.failed(&[&token]).starts_with("error: forbidden: "));

    // Nothing listening: a transport error, still one line.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = Coffer {
        api: format!("http://{}", closed.local_addr().unwrap()),
        ..Coffer::new(&server, &token)
    };
    drop(closed);
    let run = gone.line("keys list").await;
    assert!(
        run.failed(&[&token]).starts_with("error: transport: "),
        "{run:?}"
    );
}

/// `coffer.example.toml` at the repository root loads, and its values are the
/// defaults it documents. It is loaded without the process environment so that a
/// developer's `COFFER_*` variables cannot hide a broken file. Every commented-out
/// assignment (`# key = value`) is then switched on, and the file must still load:
/// the examples in comments are valid too.
#[test]
fn the_example_config_loads() {
    let file = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../coffer.example.toml"
    ));
    let config = Config::load_with(Some(file), |_| None).expect("coffer.example.toml loads");
    assert_eq!(config.api_addr.to_string(), "127.0.0.1:9446");
    assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:9909");
    assert_eq!(config.max_body_bytes, 65_536);
    assert_eq!(config.cache_ttl, Duration::from_secs(30));
    assert!(matches!(config.custody, CustodyConfig::KeyFile { .. }));
    assert_eq!(config.pq, coffer_core::pq::PqDefaults::default());

    let text = std::fs::read_to_string(file).unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| commented_assignment(line).unwrap_or(line).to_owned() + "\n")
        .collect();
    assert_ne!(uncommented, text, "the example has commented-out keys");
    let all = temp_file("coffer.all.toml", &uncommented);
    Config::load_with(Some(&all), |_| None).expect("the commented-out examples load too");
}

/// `rest` of a commented-out assignment line `# key = rest…`, else `None`.
fn commented_assignment(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?.trim_start();
    let (key, _) = rest.split_once('=')?;
    let key = key.trim();
    let is_key = !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    is_key.then_some(rest)
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = super::harness::temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}
