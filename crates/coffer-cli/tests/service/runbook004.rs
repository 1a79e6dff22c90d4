//! Seed 004's runbook (`docs/runbooks/004-expired-signing-key.md`) replayed as written:
//! the block between `<!-- replay:begin -->` and `<!-- replay:end -->` runs in bash
//! against `coffer dev`, and each diagnosis and resolution step's output is checked.

use std::process::Command;
use std::time::Duration;

use super::harness::temp_dir;
use super::tour::DevServer;

const RUNBOOK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/runbooks/004-expired-signing-key.md"
);

fn replay_script() -> String {
    let text = std::fs::read_to_string(RUNBOOK).unwrap();
    let (_, rest) = text
        .split_once("<!-- replay:begin -->")
        .expect("replay:begin marker");
    let (block, _) = rest
        .split_once("<!-- replay:end -->")
        .expect("replay:end marker");
    block
        .lines()
        .filter(|line| !line.trim_start().starts_with("```"))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbook_004_replays_as_written() {
    let dir = temp_dir();
    let mut dev = DevServer::start(&dir);
    dev.wait_ready(Duration::from_secs(30)).await;
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_coffer"))
        .parent()
        .unwrap()
        .to_owned();
    let script = format!("set -a; . coffer-dev/dev.env; set +a\n{}", replay_script());
    let out = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &script])
        .current_dir(&dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the runbook failed:\n{stdout}\n{stderr}\n{}",
        dev.log()
    );
    // Diagnosis: doctor critical, the listing says EXPIRED, signing refuses by name.
    assert!(
        stdout.contains("doctor reported a problem (exit 2)"),
        "{stdout}"
    );
    assert!(stdout.contains("EXPIRED"), "{stdout}");
    assert!(stderr.contains("signing key has expired"), "{stderr}");
    assert!(
        stdout.contains("test-sign failed, as in the incident"),
        "{stdout}"
    );
    assert!(stdout.contains("key.created"), "history: {stdout}");
    // Mitigation: the spare becomes primary and signs.
    assert!(stdout.contains("v2 active (primary)"), "{stdout}");
    assert_eq!(stdout.matches("signed and verified").count(), 3, "{stdout}");
    // Root cause: the new key is registered and published.
    assert!(stdout.contains("attestation-signing"), "{stdout}");
    // The alias moved to the new key, and signing through it works.
    assert!(stdout.contains("alias/attestation -> key "), "{stdout}");
    let status = dev.terminate(Duration::from_secs(10)).await;
    assert!(status.success());
}
