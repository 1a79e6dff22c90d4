//! The README's five-minute tour, as written: `coffer dev` as a child process, then the
//! shell block between `<!-- tour:begin -->` and `<!-- tour:end -->` run by bash with
//! `-e -o pipefail`. If the tour and the tool drift apart, this fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::harness::temp_dir;

const COFFER: &str = env!("CARGO_BIN_EXE_coffer");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");

/// `coffer dev` started for a test: killed (SIGKILL) when dropped if still running, so
/// a failing assertion never leaves a server behind.
pub(crate) struct DevServer {
    child: Child,
    dir: PathBuf,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl DevServer {
    /// Starts `coffer dev --data-dir <dir>/coffer-dev` on ephemeral ports; its output
    /// goes to files in `dir` (a pipe nobody reads could fill and stall it).
    pub(crate) fn start(dir: &Path) -> Self {
        let file = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let child = Command::new(COFFER)
            .args(["dev", "--data-dir"])
            .arg(dir.join("coffer-dev"))
            .env_clear()
            .env("COFFER_API_ADDR", "127.0.0.1:0")
            .env("COFFER_METRICS_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(file("dev.out"))
            .stderr(file("dev.err"))
            .spawn()
            .expect("coffer dev starts");
        Self {
            child,
            dir: dir.to_owned(),
        }
    }

    pub(crate) fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{}", read("dev.out"), read("dev.err"))
    }

    /// Waits (bounded) until `dev.env` is complete and the operations port says ready.
    /// The API answering also means the SIGTERM handler is installed: both are set up
    /// in the same first poll of `serve`.
    pub(crate) async fn wait_ready(&mut self, within: Duration) {
        let env_file = self.dir.join("coffer-dev/dev.env");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("coffer dev exited early ({status}):\n{}", self.log());
            }
            let text = std::fs::read_to_string(&env_file).unwrap_or_default();
            let ops = text
                .lines()
                .find_map(|line| line.strip_prefix("COFFER_OPS_ADDR="));
            if let (Some(ops), true) = (ops, text.contains("COFFER_ADMIN_TOKEN=")) {
                coffer_client::install_tls_provider();
                let ready = reqwest::get(format!("{ops}/readyz")).await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "coffer dev not ready within {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit status (bounded).
    pub(crate) async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "coffer dev still running {within:?} after SIGTERM:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The shell lines between the tour markers, without the code fence.
fn tour_script() -> String {
    let readme = std::fs::read_to_string(README).unwrap();
    let (_, rest) = readme
        .split_once("<!-- tour:begin -->")
        .expect("README has the tour:begin marker");
    let (block, _) = rest
        .split_once("<!-- tour:end -->")
        .expect("README has the tour:end marker");
    let script: String = block
        .lines()
        .filter(|line| !line.trim_start().starts_with("```"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        script.contains("coffer "),
        "the tour runs coffer:\n{script}"
    );
    script
}

fn have_curl() -> bool {
    Command::new("sh")
        .args(["-c", "command -v curl"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs_as_written() {
    let dir = temp_dir();
    let mut dev = DevServer::start(&dir);
    dev.wait_ready(Duration::from_secs(30)).await;

    let mut script = tour_script();
    // The tour's last line reads the metrics with curl. Where curl is not installed
    // that one line is dropped (said on stderr) rather than failing the whole tour:
    // what it shows is covered by `api::health_readiness_and_metrics`.
    let curl = have_curl();
    if !curl {
        eprintln!("curl is not installed: the tour's metrics line is skipped");
        script = script
            .lines()
            .filter(|line| !line.contains("curl "))
            .map(|line| format!("{line}\n"))
            .collect();
    }
    let script_file = dir.join("tour.sh");
    std::fs::write(&script_file, script).unwrap();

    let bin = Path::new(COFFER).parent().unwrap();
    let path = match std::env::var_os("PATH") {
        Some(rest) => {
            let mut dirs = vec![bin.to_owned()];
            dirs.extend(std::env::split_paths(&rest));
            std::env::join_paths(dirs).unwrap()
        }
        None => bin.as_os_str().to_owned(),
    };
    let mut command = Command::new("bash");
    command
        .args(["-e", "-o", "pipefail"])
        .arg(&script_file)
        .current_dir(&dir)
        // The tour sets what it needs from coffer-dev/dev.env; nothing else leaks in.
        .env_clear()
        .env("PATH", path)
        .stdin(Stdio::null());
    let run = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || command.output().expect("bash runs")),
    )
    .await
    .expect("the tour finishes within two minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        dev.log()
    );
    assert!(
        run.status.success(),
        "the tour failed ({}):\n{report}",
        run.status
    );

    // Decrypted three times: after encrypting, after rotating, with the narrow token.
    assert_eq!(
        stdout.matches("card-vault-master-secret").count(),
        3,
        "{report}"
    );
    assert!(stdout.lines().any(|line| line == "valid"), "{report}");
    assert_eq!(
        stdout.matches("refused, as it should be").count(),
        2,
        "{report}"
    );
    assert!(stdout.contains("not found, as it should be"), "{report}");
    assert!(stdout.contains("primary version:     2"), "{report}");
    assert!(
        stdout.contains("sealed:    no") && stdout.contains("ready:     yes"),
        "{report}"
    );
    if curl {
        assert!(
            stdout.lines().any(|l| l.starts_with("kms_ops_total{")),
            "{report}"
        );
    }
    // Each refusal was the error it should be, one line each.
    for error in ["invalid_ciphertext", "forbidden", "not_found"] {
        let line = format!("error: {error}: ");
        assert_eq!(stderr.matches(&line).count(), 1, "{error}:\n{report}");
    }

    // Ctrl-C's sibling: SIGTERM drains and exits 0.
    let status = dev.terminate(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "coffer dev exited with {status}:\n{}",
        dev.log()
    );
    assert!(
        dev.log().contains("draining in-flight requests"),
        "{}",
        dev.log()
    );
}
