//! `coffer rotate` without a server: dry runs, the production gate, evidence and its
//! manifest, redaction, and profiles. (The rotation endpoints themselves are covered
//! with a real server in the `service` suite.)
//!
//! "Executes nothing" is checked, not assumed: the commands are aimed at a listening
//! socket the test owns, and after the run that socket must have no connection
//! waiting.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use coffer_crypto::hash::sha256;

const TOKEN: &str = "coffer_v1_DISTINCTIVE-TOKEN-5a1f";
const STAGING_TOKEN: &str = "coffer_v1_STAGING-TOKEN-9c3e";
const CONTEXT_MARKER: &str = "CONTEXT-PLAINTEXT-MARKER-41";

/// A socket nothing should connect to.
struct Tripwire {
    listener: TcpListener,
    addr: String,
}

impl Tripwire {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        Self { listener, addr }
    }

    fn assert_untouched(&self) {
        match self.listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("a dry run connected to the server (from {peer})"),
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn temp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("coffer-rotate-cli")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `coffer ARGS` with no `COFFER_*` from the developer's environment; `env` adds
/// variables.
fn coffer(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coffer"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("COFFER_") {
            command.env_remove(name);
        }
    }
    command.env_remove("STAGING_TOKEN").env_remove("PROD_TOKEN");
    command.args(args).envs(env.iter().copied());
    command.output().unwrap()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn new(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A dry run against the tripwire, with `COFFER_TOKEN` set.
fn dry(wire: &Tripwire, args: &[&str]) -> Run {
    let mut line = vec![
        "--addr",
        &wire.addr,
        "rotate",
        "--ops-addr",
        &wire.addr,
        "--dry-run",
    ];
    line.extend_from_slice(args);
    Run::new(coffer(&line, &[("COFFER_TOKEN", TOKEN)]))
}

fn profiles(dir: &Path, staging: &str, production: &str) -> PathBuf {
    let path = dir.join("cli.toml");
    std::fs::write(
        &path,
        format!(
            "[env.staging]\naddr = \"{staging}\"\ntoken_env = \"STAGING_TOKEN\"\n\
             ops_addr = \"{staging}\"\n\n[env.production]\naddr = \"{production}\"\n\
             token_env = \"PROD_TOKEN\"\nops_addr = \"{production}\"\n"
        ),
    )
    .unwrap();
    path
}

fn corpus(dir: &Path) -> PathBuf {
    let path = dir.join("corpus.jsonl");
    std::fs::write(
        &path,
        format!(
            "{{\"ciphertext\":\"aGVsbG8=\",\"context\":{{\"tenant\":\"{CONTEXT_MARKER}\"}}}}\n\
             {{\"ciphertext\":\"aGk=\"}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn dry_runs_print_the_plan_and_send_nothing() {
    let wire = Tripwire::new();
    let dir = temp_dir();
    let corpus = corpus(&dir);
    let corpus = corpus.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["stage", "alias/payments"],
            &["POST {addr}/v1/kms/rotations", "not executed"],
        ),
        (
            &["all", "alias/payments", "--corpus", corpus],
            &[
                "GET {addr}/readyz",
                "GET {addr}/v1/kms/keys/alias/payments",
                "skipped in dry run",
                "POST {addr}/v1/kms/rotations",
                "POST {addr}/v1/kms/wrap",
                "POST {addr}/v1/kms/unwrap",
            ],
        ),
        (
            &["rollback", "rot-1"],
            &["POST {addr}/v1/kms/rotations/rot-1/rollback"],
        ),
        (
            &["resume", "rot-1", "--until", "switch_pointer"],
            &["POST {addr}/v1/kms/rotations/rot-1/resume"],
        ),
        (
            &["dual-unwrap", "--corpus", corpus],
            &[
                "POST {addr}/v1/kms/unwrap",
                "2 ciphertext(s) would be unwrapped",
            ],
        ),
    ];
    for (args, expected) in cases {
        let run = dry(&wire, args).expect(0);
        for text in expected {
            let text = text.replace("{addr}", &wire.addr);
            assert!(
                run.stdout.contains(&text),
                "{args:?}: {text}\n{}",
                run.stdout
            );
        }
        assert!(
            run.stderr.contains("dry run: nothing was sent"),
            "{}",
            run.stderr
        );
        wire.assert_untouched();
    }
}

#[test]
fn production_changes_need_confirmation() {
    let wire = Tripwire::new();
    let dir = temp_dir();
    let file = profiles(&dir, &wire.addr, &wire.addr);
    let file = file.to_str().unwrap();
    let evidence = dir.join("evidence");
    for command in [
        &["stage", "k"][..],
        &["all", "k"],
        &["rollback", "r"],
        &["resume", "r"],
    ] {
        // Without --dry-run too: the refusal comes before anything is read or sent.
        for dry_run in [&[][..], &["--dry-run"]] {
            let mut line = vec!["rotate", "--env", "production", "--profiles", file];
            line.extend_from_slice(dry_run);
            line.extend_from_slice(&["--evidence-dir", evidence.to_str().unwrap()]);
            line.extend_from_slice(command);
            let run = Run::new(coffer(&line, &[("PROD_TOKEN", TOKEN)])).expect(2);
            assert!(
                run.stderr.contains("changes production")
                    && run.stderr.contains("--confirm-production"),
                "{command:?}: {}",
                run.stderr
            );
            assert!(run.stdout.is_empty(), "{}", run.stdout);
            wire.assert_untouched();
        }
        let mut line = vec![
            "rotate",
            "--env",
            "production",
            "--profiles",
            file,
            "--confirm-production",
            "--dry-run",
        ];
        line.extend_from_slice(command);
        Run::new(coffer(&line, &[])).expect(0);
    }
    // Read-only commands need no confirmation.
    let line = [
        "rotate",
        "--env",
        "production",
        "--profiles",
        file,
        "--dry-run",
    ];
    for command in [&["status", "r"][..], &["verify", "r"], &["preflight", "k"]] {
        let mut line = line.to_vec();
        line.extend_from_slice(command);
        Run::new(coffer(&line, &[])).expect(0);
    }
    // Refusals are evidence.
    let log = std::fs::read_to_string(evidence.join("evidence.jsonl")).unwrap();
    let refused: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(refused.len(), 8);
    assert!(
        refused
            .iter()
            .all(|l| l["outcome"] == "refused" && l["env"] == "production")
    );
    wire.assert_untouched();
}

#[test]
fn the_evidence_manifest_hashes_every_file() {
    let wire = Tripwire::new();
    let dir = temp_dir();
    let evidence = dir.join("evidence");
    let evidence_arg = evidence.to_str().unwrap();
    dry(
        &wire,
        &["all", "alias/payments", "--evidence-dir", evidence_arg],
    )
    .expect(0);
    std::fs::write(evidence.join("operator-notes.txt"), b"change ticket 42\n").unwrap();
    dry(
        &wire,
        &["rollback", "rot-1", "--evidence-dir", evidence_arg],
    )
    .expect(0);

    let manifest = std::fs::read_to_string(evidence.join("MANIFEST.sha256")).unwrap();
    let mut listed = Vec::new();
    for line in manifest.lines() {
        let (hash, name) = line.split_once("  ").expect("<hex>  <name>");
        let bytes = std::fs::read(evidence.join(name)).unwrap();
        assert_eq!(hash, hex::encode(sha256(&[&bytes])), "{name}");
        listed.push(name.to_owned());
    }
    let mut present: Vec<String> = std::fs::read_dir(&evidence)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "MANIFEST.sha256")
        .collect();
    present.sort();
    assert_eq!(listed, present);
    assert_eq!(listed, ["evidence.jsonl", "operator-notes.txt"]);

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(evidence.join("evidence.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for line in &lines {
        for field in [
            "time", "env", "command", "step", "request", "response", "outcome",
        ] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "UTC: {line}");
    }
    let steps = |command: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l["command"] == command)
            .map(|l| l["step"].as_str().unwrap())
            .collect()
    };
    assert!(
        steps("all").contains(&"rotation.start"),
        "{:?}",
        steps("all")
    );
    assert_eq!(steps("rollback"), ["rollback", "end"]);
    let start = lines
        .iter()
        .find(|l| l["step"] == "rotation.start")
        .unwrap();
    assert_eq!(start["outcome"], "planned");
    assert_eq!(start["request"]["method"], "POST");
    assert_eq!(
        start["request"]["url"],
        format!("{}/v1/kms/rotations", wire.addr)
    );
    wire.assert_untouched();
}

#[test]
fn secrets_are_redacted_and_the_token_is_never_shown() {
    let wire = Tripwire::new();
    let dir = temp_dir();
    let corpus = corpus(&dir);
    let corpus = corpus.to_str().unwrap();
    // The request bodies' distinctive content: stage's body and the corpus's context.
    let stage_body = r#"{"key_id":"alias/payments","until":"stage"}"#;
    let commands: [&[&str]; 3] = [
        &["stage", "alias/payments"],
        &["all", "alias/payments", "--corpus", corpus],
        &["dual-unwrap", "--corpus", corpus],
    ];

    let redacted = dir.join("redacted");
    for command in commands {
        let mut line = command.to_vec();
        line.extend_from_slice(&["--evidence-dir", redacted.to_str().unwrap()]);
        let run = dry(&wire, &line).expect(0);
        let evidence = std::fs::read_to_string(redacted.join("evidence.jsonl")).unwrap();
        for text in [run.all(), evidence] {
            assert!(!text.contains(TOKEN), "token shown:\n{text}");
            assert!(!text.contains(stage_body), "body shown:\n{text}");
            assert!(!text.contains("\"until\""), "body shown:\n{text}");
            assert!(!text.contains(CONTEXT_MARKER), "context shown:\n{text}");
            assert!(!text.contains("aGVsbG8="), "ciphertext shown:\n{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }

    let shown = dir.join("shown");
    let mut outputs = String::new();
    for command in commands {
        let mut line = command.to_vec();
        line.extend_from_slice(&["--show-commands", "--evidence-dir", shown.to_str().unwrap()]);
        outputs.push_str(&dry(&wire, &line).expect(0).all());
    }
    let evidence = std::fs::read_to_string(shown.join("evidence.jsonl")).unwrap();
    assert!(outputs.contains(stage_body), "{outputs}");
    assert!(outputs.contains(CONTEXT_MARKER), "{outputs}");
    assert!(evidence.contains(CONTEXT_MARKER), "{evidence}");
    assert!(evidence.contains(r#""until":"stage""#), "{evidence}");
    for text in [&outputs, &evidence] {
        assert!(!text.contains(TOKEN), "token shown:\n{text}");
    }
    // The smoke test's plaintext is described, never carried, even when shown.
    assert!(outputs.contains("<32 random bytes>"), "{outputs}");
    wire.assert_untouched();
}

#[test]
fn a_profile_chooses_the_server_and_its_token() {
    let staging = Tripwire::new();
    let elsewhere = Tripwire::new();
    let dir = temp_dir();
    let file = profiles(&dir, &staging.addr, "http://production.invalid:9446");
    let evidence = dir.join("evidence");
    let line = [
        "rotate",
        "--env",
        "staging",
        "--profiles",
        file.to_str().unwrap(),
        "--dry-run",
        "--show-commands",
        "--evidence-dir",
        evidence.to_str().unwrap(),
        "stage",
        "alias/payments",
    ];
    // --addr / COFFER_ADDR are not consulted under --env.
    let env = [
        ("COFFER_ADDR", elsewhere.addr.as_str()),
        ("STAGING_TOKEN", STAGING_TOKEN),
        ("COFFER_TOKEN", TOKEN),
    ];
    let run = Run::new(coffer(&line, &env)).expect(0);
    let planned = format!("POST {}/v1/kms/rotations", staging.addr);
    assert!(run.stdout.contains(&planned), "{}", run.stdout);
    assert!(!run.all().contains(&elsewhere.addr), "{}", run.all());
    let log = std::fs::read_to_string(evidence.join("evidence.jsonl")).unwrap();
    assert!(log.contains(r#""env":"staging""#), "{log}");
    for text in [run.all(), log] {
        assert!(
            !text.contains(STAGING_TOKEN) && !text.contains(TOKEN),
            "{text}"
        );
    }
    staging.assert_untouched();
    elsewhere.assert_untouched();

    // Without --dry-run, a missing token variable is an error before any request.
    let line = [
        "rotate",
        "--env",
        "staging",
        "--profiles",
        file.to_str().unwrap(),
        "status",
        "r",
    ];
    let run = Run::new(coffer(&line, &[])).expect(1);
    assert!(run.stderr.contains("$STAGING_TOKEN"), "{}", run.stderr);
    staging.assert_untouched();
}

#[test]
fn a_token_in_the_profiles_file_is_refused_without_echo() {
    let dir = temp_dir();
    let file = dir.join("cli.toml");
    std::fs::write(
        &file,
        format!("[env.staging]\naddr = \"http://h:1\"\ntoken = \"{TOKEN}\"\n"),
    )
    .unwrap();
    let line = [
        "rotate",
        "--env",
        "staging",
        "--profiles",
        file.to_str().unwrap(),
        "--dry-run",
        "stage",
        "k",
    ];
    let run = Run::new(coffer(&line, &[])).expect(1);
    assert!(run.stderr.contains("token_env"), "{}", run.stderr);
    assert!(!run.all().contains(TOKEN), "{}", run.all());
}

#[test]
fn dry_runs_run_no_hook_and_probe_no_health_check() {
    let wire = Tripwire::new();
    let dir = temp_dir();
    let marker = dir.join("hook-ran");
    let hook = format!("touch {}", marker.display());
    let file = dir.join("hooks.toml");
    std::fs::write(
        &file,
        format!(
            "[env.staging]\naddr = \"{addr}\"\nops_addr = \"{addr}\"\ntoken_env = \"STAGING_TOKEN\"\n\
             api_healthcheck_url = \"{addr}/healthz?key=HEALTH-SECRET\"\n\
             stage_cmd = \"{hook}\"\nvalidate_cmd = \"{hook}\"\nrollback_cmd = \"{hook}\"\n",
            addr = wire.addr
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 4] = [
        (&["stage", "k"], &["health.before.api", "hook.stage"]),
        (
            &["all", "k"],
            &[
                "health.before.api",
                "hook.stage",
                "hook.validate",
                "health.after-validation.api",
            ],
        ),
        (
            &["validate", "k"],
            &["hook.validate", "health.after-validation.api"],
        ),
        (
            &["rollback", "rot-1"],
            &["hook.rollback", "health.after-rollback.api"],
        ),
    ];
    for (args, steps) in cases {
        for shown in [false, true] {
            let mut line = vec![
                "rotate",
                "--env",
                "staging",
                "--profiles",
                file,
                "--dry-run",
            ];
            if shown {
                line.push("--show-commands");
            }
            line.extend_from_slice(args);
            let run = Run::new(coffer(&line, &[])).expect(0);
            for step in steps {
                assert!(
                    run.stdout.contains(&format!("[dry-run] {step}: ")),
                    "{args:?} {step}\n{}",
                    run.stdout
                );
            }
            if shown {
                assert!(
                    run.stdout.contains(&format!("sh -c {hook}")),
                    "{}",
                    run.stdout
                );
                assert!(run.stdout.contains("HEALTH-SECRET"), "{}", run.stdout);
            } else {
                assert!(run.stdout.contains("sh -c <redacted>"), "{}", run.stdout);
                assert!(!run.all().contains(&hook), "{}", run.all());
                assert!(!run.all().contains("HEALTH-SECRET"), "{}", run.all());
                assert!(run.stdout.contains("/healthz?<redacted>"), "{}", run.stdout);
            }
            assert!(!marker.exists(), "{args:?}: a dry run ran a hook");
            wire.assert_untouched();
        }
    }
}
