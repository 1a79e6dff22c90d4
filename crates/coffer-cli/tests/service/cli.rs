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
}

/// The value of `name=` among the `name=value` lines (or words) of `text`.
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

    let human = coffer
        .run(
            &["keys", "create", "--spec", "aes-256", "--alias", "kek"],
            None,
        )
        .await
        .ok()
        .out();
    let key_id = human
        .lines()
        .find_map(|line| line.strip_prefix("key id:"))
        .expect("a key id line")
        .trim()
        .to_owned();
    assert!(human.contains("alias/kek"), "{human}");
    let created = coffer
        .run(
            &["keys", "create", "--spec", "ed25519", "--alias", "signer"],
            None,
        )
        .await;
    assert_eq!(created.code, 0, "{created:?}");
    let json = coffer
        .run(
            &[
                "--json",
                "keys",
                "create",
                "--spec",
                "hmac-sha256",
                "--label",
                "a=b",
            ],
            None,
        )
        .await
        .ok()
        .json();
    assert_eq!(json["spec"], "hmac-sha256");
    assert_eq!(json["labels"]["a"], "b");

    let table = coffer.run(&["keys", "list"], None).await.ok().out();
    assert!(table.starts_with("KEY ID"), "{table}");
    assert!(
        table.contains(&key_id) && table.contains("alias/signer"),
        "{table}"
    );
    let listed = coffer
        .run(&["keys", "list", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);
    let signing = coffer
        .run(&["keys", "list", "--purpose", "sign", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(signing["keys"][0]["spec"], "ed25519");

    let shown = coffer.run(&["keys", "show", "alias/kek"], None).await.ok();
    assert!(shown.out().contains(&key_id), "{shown:?}");
    let shown = coffer
        .run(&["keys", "show", &key_id, "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(shown["aliases"][0], "alias/kek");

    let rotated = coffer
        .run(&["keys", "rotate", "alias/kek"], None)
        .await
        .ok();
    assert_eq!(field(&rotated.out(), "primary_version"), "2");
    let rotated = coffer
        .run(&["keys", "rotate", "alias/kek", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(
        (rotated["key_id"].as_str(), rotated["version"].as_u64()),
        (Some(key_id.as_str()), Some(3))
    );

    let state = |run: Run| run.ok().json()["state"].as_str().unwrap().to_owned();
    assert_eq!(
        state(
            coffer
                .run(&["--json", "keys", "disable", &key_id], None)
                .await
        ),
        "disabled"
    );
    let human = coffer
        .run(&["keys", "enable", "alias/kek"], None)
        .await
        .ok()
        .out();
    assert!(human.contains("state:               enabled"), "{human}");
    let scheduled = coffer
        .run(
            &[
                "keys",
                "schedule-deletion",
                "alias/kek",
                "--days",
                "7",
                "--json",
            ],
            None,
        )
        .await
        .ok()
        .json();
    assert_eq!(scheduled["state"], "pending-deletion");
    assert!(scheduled["deletion_due"].is_string(), "{scheduled}");
    let human = coffer
        .run(&["keys", "show", "alias/kek"], None)
        .await
        .ok()
        .out();
    assert!(human.contains("pending-deletion (deletion due "), "{human}");
    assert_eq!(
        state(
            coffer
                .run(&["--json", "keys", "cancel-deletion", "alias/kek"], None)
                .await
        ),
        "disabled"
    );
    let again = coffer
        .run(&["keys", "cancel-deletion", "alias/kek"], None)
        .await;
    assert!(
        again
            .failed(&[&coffer.token])
            .starts_with("error: conflict: "),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_round_trips_through_stdin_and_stdout() {
    let server = TestServer::start().await;
    let coffer = Coffer::new(&server, &server.tenant_token("acme").await);
    for alias in ["kek", "archive"] {
        let args = ["keys", "create", "--spec", "aes-256", "--alias", alias];
        coffer.run(&args, None).await.ok();
    }
    let secret: &[u8] = b"card-vault-master-secret\n\x00 binary tail";

    let sealed = coffer
        .run(
            &["encrypt", "--key", "alias/kek", "--context", "app=billing"],
            Some(secret),
        )
        .await
        .ok();
    let ciphertext = sealed.out();
    assert_eq!(ciphertext.lines().count(), 1, "one base64 line");
    let opened = coffer
        .run(
            &["decrypt", "--context", "app=billing"],
            Some(sealed.stdout.as_slice()),
        )
        .await
        .ok();
    assert_eq!(opened.stdout, secret, "raw plaintext, byte for byte");
    let opened = coffer
        .run(
            &[
                "decrypt",
                "--json",
                "--context",
                "app=billing",
                "--ciphertext",
                &ciphertext,
            ],
            None,
        )
        .await
        .ok()
        .json();
    assert_eq!(b64(opened["plaintext"].as_str().unwrap()), secret);
    assert_eq!(opened["key_version"], 1);
    let file = server.dir.join("secret.b64");
    std::fs::write(&file, &sealed.stdout).unwrap();
    let from_file = coffer
        .run(
            &["decrypt", "--in", path(&file), "--context", "app=billing"],
            None,
        )
        .await
        .ok();
    assert_eq!(from_file.stdout, secret);

    // datakey: both forms on stdout, the key and version on stderr.
    let dk = coffer
        .run(
            &[
                "datakey",
                "--key",
                "alias/kek",
                "--bytes",
                "16",
                "--context",
                "db=orders",
            ],
            None,
        )
        .await
        .ok();
    let (text, plaintext) = (dk.out(), b64(field(&dk.out(), "plaintext")));
    assert_eq!(plaintext.len(), 16);
    assert_eq!(field(&dk.stderr, "key_version"), "1");
    let unwrapped = coffer
        .run(
            &[
                "decrypt",
                "--context",
                "db=orders",
                "--ciphertext",
                field(&text, "ciphertext"),
            ],
            None,
        )
        .await
        .ok();
    assert_eq!(unwrapped.stdout, plaintext);
    let wrapped_only = coffer
        .run(&["datakey", "--key", "alias/kek", "--no-plaintext"], None)
        .await
        .ok()
        .out();
    assert!(wrapped_only.starts_with("ciphertext=") && !wrapped_only.contains("plaintext="));
    let json = coffer
        .run(&["datakey", "--key", "alias/kek", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(b64(json["plaintext"].as_str().unwrap()).len(), 32);

    // rewrap: to the rotated primary of the same key, then to another key.
    coffer
        .run(&["keys", "rotate", "alias/kek"], None)
        .await
        .ok();
    let same = coffer
        .run(
            &[
                "rewrap",
                "--context",
                "app=billing",
                "--ciphertext",
                &ciphertext,
            ],
            None,
        )
        .await
        .ok();
    assert_eq!(field(&same.stderr, "key_version"), "2");
    let moved = coffer
        .run(
            &[
                "rewrap",
                "--json",
                "--key",
                "alias/archive",
                "--context",
                "app=billing",
                "--ciphertext",
                &ciphertext,
            ],
            None,
        )
        .await
        .ok()
        .json();
    assert_eq!(moved["key_version"], 1);
    for rewrapped in [same.out(), moved["ciphertext"].as_str().unwrap().to_owned()] {
        let args = [
            "decrypt",
            "--context",
            "app=billing",
            "--ciphertext",
            &rewrapped,
        ];
        assert_eq!(coffer.run(&args, None).await.ok().stdout, secret);
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_and_macs_exit_zero_when_valid_and_one_when_not() {
    let server = TestServer::start().await;
    let coffer = Coffer::new(&server, &server.tenant_token("acme").await);
    for (spec, algorithm) in [("ed25519", "ed25519"), ("ml-dsa-65", "ml-dsa-65")] {
        let alias = format!("alias/{spec}");
        coffer
            .run(&["keys", "create", "--spec", spec, "--alias", spec], None)
            .await
            .ok();
        let signed = coffer
            .run(
                &["sign", "--key", &alias, "--message", "release 1.2.3"],
                None,
            )
            .await
            .ok();
        assert_eq!(field(&signed.stderr, "algorithm"), algorithm);
        let signature = signed.out();
        // The message from stdin is the same message.
        let verify = |message: &'static [u8], signature: String| {
            let alias = alias.clone();
            let coffer = &coffer;
            async move {
                let args = ["verify", "--key", &alias, "--signature", &signature];
                coffer.run(&args, Some(message)).await
            }
        };
        let valid = verify(b"release 1.2.3", signature.clone()).await;
        assert_eq!(
            (valid.code, valid.out().as_str()),
            (0, "valid"),
            "{spec}: {valid:?}"
        );
        let invalid = verify(b"release 1.2.4", signature.clone()).await;
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
                &[
                    "verify",
                    "--json",
                    "--key",
                    &alias,
                    "--version",
                    "1",
                    "--signature",
                    &signature,
                    "--message",
                    "release 1.2.3",
                ],
                None,
            )
            .await
            .ok()
            .json();
        assert_eq!(json["valid"], true, "{spec}");
    }

    coffer
        .run(
            &[
                "keys",
                "create",
                "--spec",
                "hmac-sha256",
                "--alias",
                "hooks",
            ],
            None,
        )
        .await
        .ok();
    let tag = coffer
        .run(&["mac", "--key", "alias/hooks"], Some(b"payload"))
        .await
        .ok();
    assert_eq!(field(&tag.stderr, "key_version"), "1");
    let tag = tag.out();
    let check = |message: &'static str| {
        let tag = tag.clone();
        let coffer = &coffer;
        async move {
            let args = [
                "verify-mac",
                "--key",
                "alias/hooks",
                "--mac",
                &tag,
                "--message",
                message,
            ];
            coffer.run(&args, None).await
        }
    };
    let valid = check("payload").await;
    assert_eq!(
        (valid.code, valid.out().as_str()),
        (0, "valid"),
        "{valid:?}"
    );
    let invalid = check("payl0ad").await;
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
    let created = admin
        .run(&["tenant", "create", "globex"], None)
        .await
        .ok()
        .out();
    assert_eq!(field(&created, "name"), "globex");
    let json = admin
        .run(&["tenant", "create", "initech", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(json["state"], "active");
    let table = admin.run(&["tenant", "list"], None).await.ok().out();
    assert!(
        table.starts_with("TENANT ID") && table.contains("globex"),
        "{table}"
    );
    let listed = admin
        .run(&["tenant", "list", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 2);

    let minted = admin
        .run(&["token", "mint", "--tenant", "globex"], None)
        .await
        .ok();
    let (token, token_id) = (minted.out(), field(&minted.stderr, "token_id").to_owned());
    assert!(
        !minted.stderr.contains(&token),
        "the token is shown once, on stdout"
    );
    let globex = Coffer::new(&server, &token);
    globex
        .run(
            &["keys", "create", "--spec", "aes-256", "--alias", "k"],
            None,
        )
        .await
        .ok();
    let json = admin
        .run(
            &[
                "token",
                "mint",
                "--json",
                "--tenant",
                "initech",
                "--ops",
                "keys:read",
                "--ttl",
                "1h",
            ],
            None,
        )
        .await
        .ok()
        .json();
    assert_eq!(json["token_id"].as_str().unwrap().len(), 32);

    // Attenuation is offline: the narrowed token comes from COFFER_TOKEN.
    let narrowed = globex
        .run(&["token", "attenuate", "--ops", "keys:read"], None)
        .await
        .ok()
        .out();
    let reader = Coffer::new(&server, &narrowed);
    let listed = reader
        .run(&["keys", "list", "--json"], None)
        .await
        .ok()
        .json();
    assert_eq!(listed["keys"][0]["aliases"][0], "alias/k");
    let refused = reader
        .run(&["keys", "create", "--spec", "aes-256"], None)
        .await;
    assert!(
        refused
            .failed(&[&narrowed])
            .starts_with("error: forbidden: "),
        "{refused:?}"
    );

    // Revoking the minted token revokes what was attenuated from it.
    let revoked = admin
        .run(&["token", "revoke", &token_id], None)
        .await
        .ok()
        .out();
    assert_eq!(revoked, format!("revoked token_id={token_id}"));
    for (who, text) in [(&globex, &token), (&reader, &narrowed)] {
        let run = who.run(&["keys", "list"], None).await;
        assert!(
            run.failed(&[text]).starts_with("error: unauthorized: "),
            "{run:?}"
        );
    }
    let tenant_cannot = globex.run(&["tenant", "list"], None).await;
    tenant_cannot.failed(&[&token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_seal_and_readiness() {
    let server = TestServer::start().await;
    let coffer = Coffer::new(&server, "");
    let human = coffer.run(&["status"], None).await.ok().out();
    assert!(
        human.contains("sealed:    no") && human.contains("ready:     yes"),
        "{human}"
    );
    let json = coffer.run(&["status", "--json"], None).await.ok().json();
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
    coffer
        .run(
            &["keys", "create", "--spec", "aes-256", "--alias", "kek"],
            None,
        )
        .await
        .ok();
    let plaintext = "top-secret-plaintext";
    let sealed = coffer
        .run(
            &[
                "encrypt",
                "--key",
                "alias/kek",
                "--context",
                "app=billing",
                "--plaintext",
                plaintext,
            ],
            None,
        )
        .await
        .ok()
        .out();

    // A forged token (one character changed) and a token that is not one at all.
    let last = if token.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    for bad in [forged.as_str(), "not-a-token"] {
        let run = Coffer::new(&server, bad).run(&["keys", "list"], None).await;
        let line = run.failed(&[bad, &token]);
        assert!(line.starts_with("error: unauthorized: "), "{line}");
    }
    let unknown = coffer
        .run(
            &[
                "encrypt",
                "--key",
                "alias/missing",
                "--plaintext",
                plaintext,
            ],
            None,
        )
        .await;
    assert!(
        unknown
            .failed(&[&token, plaintext])
            .starts_with("error: not_found: ")
    );
    let wrong_context = coffer
        .run(
            &["decrypt", "--context", "app=other", "--ciphertext", &sealed],
            None,
        )
        .await;
    let line = wrong_context.failed(&[&token, plaintext]);
    assert!(line.starts_with("error: invalid_ciphertext: "), "{line}");

    // Another tenant's ciphertext names a key that does not exist for it.
    let other = server.tenant_token("globex").await;
    let run = Coffer::new(&server, &other)
        .run(
            &[
                "decrypt",
                "--context",
                "app=billing",
                "--ciphertext",
                &sealed,
            ],
            None,
        )
        .await;
    assert!(
        run.failed(&[&other, &token, plaintext])
            .starts_with("error: not_found: ")
    );

    // Nothing listening: a transport error, still one line.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = Coffer {
        api: format!("http://{}", closed.local_addr().unwrap()),
        ..Coffer::new(&server, &token)
    };
    drop(closed);
    let run = gone.run(&["keys", "list"], None).await;
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
