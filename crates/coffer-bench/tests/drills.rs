//! The drill scripts (`scripts/drills/`) run end to end with tiny bounds: each writes
//! its figures and the server's `/metrics` before and after, and the figures hold
//! what was measured. A smoke test, not a measurement (a few seconds each).

use std::path::{Path, PathBuf};
use std::process::Command;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/drills")
        .join(name)
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("coffer-drill-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(name: &str, out: &Path, args: &[&str]) -> serde_json::Value {
    run_with(name, out, args, &[])
}

/// [`run`], with `env` (`COFFER_*` settings of the embedded server) added.
fn run_with(name: &str, out: &Path, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let output = Command::new(script(name))
        .arg("--out")
        .arg(out)
        .args(args)
        .env("COFFER_BENCH", env!("CARGO_BIN_EXE_coffer-bench"))
        .env("COFFER_DRILL_TIMEOUT", "60")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} failed:\n{stderr}");
    let text = std::fs::read_to_string(out.join("figures.json")).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn assert_metrics_saved(out: &Path) {
    for file in ["metrics-before.txt", "metrics-after.txt"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(text.contains("kms_inflight_max"), "{file}: {text}");
    }
}

#[test]
fn the_burst_drill_reports_each_phase_against_its_baseline() {
    let out = out_dir("burst");
    let figures = run(
        "burst",
        &out,
        &[
            "--rate",
            "40",
            "--factor",
            "5",
            "--seconds",
            "2",
            "--baseline-seconds",
            "1",
        ],
    );
    assert_metrics_saved(&out);
    let phases = figures["phases"].as_array().unwrap();
    let names: Vec<&str> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["baseline", "burst", "recovery"]);
    assert_eq!(phases[1]["target_rate"], 200.0);
    for phase in phases {
        let sent = phase["sent"].as_u64().unwrap();
        assert!(sent > 0, "{phase}");
        // Every request sent was answered or counted as failed.
        let counted: u64 = ["ok", "shed_429", "shed_503", "failed", "invalid"]
            .iter()
            .map(|k| phase[k].as_u64().unwrap())
            .sum();
        assert_eq!(counted, sent, "{phase}");
        assert!(phase["ok"].as_u64().unwrap() > 0, "{phase}");
    }
    let checks = &figures["checks"];
    assert!(
        checks["shed_share_at_sustainable_rate"].is_number(),
        "{checks}"
    );
    assert!(checks["recovery_p95_to_baseline"].is_number(), "{checks}");
    assert_eq!(figures["sustainable_rate"], 40.0);
}

#[test]
fn the_burst_drill_counts_sheds_when_the_cap_is_tiny() {
    let out = out_dir("shed");
    // One sign slot: a burst of 400/s sheds some of it, and the server counted them.
    let figures = run_with(
        "burst",
        &out,
        &[
            "--rate",
            "20",
            "--factor",
            "20",
            "--seconds",
            "2",
            "--baseline-seconds",
            "1",
        ],
        &[("COFFER_MAX_INFLIGHT_SIGN", "1")],
    );
    let burst = &figures["phases"][1];
    let shed = burst["shed_503"].as_u64().unwrap() + burst["shed_429"].as_u64().unwrap();
    assert!(shed > 0, "{burst}");
    let counted = figures["metrics_delta"]["rejected_total{reason=\"backpressure\"}"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(counted >= 1.0, "{}", figures["metrics_delta"]);
}

#[test]
fn the_fairness_drill_reports_the_quiet_tenant_alone_and_under_the_flood() {
    let out = out_dir("fairness");
    let figures = run(
        "fairness",
        &out,
        &["--rate", "20", "--flood-factor", "10", "--seconds", "2"],
    );
    assert_metrics_saved(&out);
    assert_eq!(figures["noisy_rate"], 200.0, "{figures}");
    assert_eq!(figures["admission"]["class"], "sign", "{figures}");
    let quiet = &figures["quiet"];
    for phase in ["alone", "flood"] {
        let seen = &quiet[phase];
        // The quiet tenant sends 20/s, far inside its floor of the default caps.
        assert_eq!(seen["refused"], 0, "{seen}");
        assert_eq!(seen["failed"], 0, "{seen}");
        assert!(seen["ok"].as_u64().unwrap() > 0, "{seen}");
        assert_eq!(seen["ok"], seen["sent"], "{seen}");
        for p in ["p50_ms", "p95_ms", "p99_ms"] {
            assert!(seen[p].as_f64().unwrap() > 0.0, "{p}: {seen}");
        }
    }
    for ratio in ["p50", "p95", "p99", "success_rate"] {
        assert!(
            quiet["flood_to_alone"][ratio].is_number(),
            "{ratio}: {quiet}"
        );
    }
    let noisy = &figures["noisy"];
    assert!(noisy["phase"]["ok"].as_u64().unwrap() > 0, "{noisy}");
    for reason in ["tenant_share", "backpressure"] {
        assert!(noisy["refused_by_reason"][reason].is_u64(), "{noisy}");
    }
    assert_eq!(figures["checks"]["quiet_never_refused"], true, "{figures}");
}

#[test]
fn the_fairness_drill_never_gives_the_quiet_tenants_floor_to_the_flood() {
    let out = out_dir("fairness-tiny");
    // Two verify slots, a floor of one each. The noisy tenant may not take the slot
    // reserved for the quiet one, so a quiet request with none of its own in flight
    // always finds a slot: the quiet tenant can be refused only while it already holds
    // its fair share (429 `tenant_share`, when a stall overlaps two of its requests),
    // never because the flood filled the class (503 `backpressure`).
    let figures = run_with(
        "fairness",
        &out,
        &[
            "--op",
            "verify",
            "--rate",
            "10",
            // 2,000/s: one request every 0.5 ms, shorter than a verification takes
            // even on an idle machine (its audit commit alone), so the noisy tenant
            // always wants a second slot and is refused. At 200/s its requests could
            // finish before the next one starts and never overlap.
            "--flood-factor",
            "200",
            "--seconds",
            "2",
        ],
        &[
            ("COFFER_MAX_INFLIGHT_VERIFY", "2"),
            ("COFFER_TENANT_SHARE_MIN", "0.5"),
        ],
    );
    assert_eq!(figures["admission"]["max_inflight"], 2, "{figures}");
    assert_eq!(figures["admission"]["tenant_floor"], 1, "{figures}");
    assert_eq!(figures["checks"]["noisy_was_refused"], true, "{figures}");
    let flood = &figures["quiet"]["flood"];
    assert!(flood["ok"].as_u64().unwrap() > 0, "{flood}");
    assert_eq!(flood["failed"], 0, "{flood}");
    assert_eq!(flood["refused_by_reason"]["backpressure"], 0, "{flood}");
}

#[test]
fn the_rotate_flood_drill_reports_the_verify_cache_and_pq_rejects() {
    let out = out_dir("rotate");
    let figures = run(
        "rotate-flood",
        &out,
        &[
            "--keys",
            "3",
            "--rate",
            "60",
            "--seconds",
            "3",
            "--rotate-every-ms",
            "300",
        ],
    );
    assert_metrics_saved(&out);
    assert!(figures["rotations"].as_u64().unwrap() >= 3, "{figures}");
    assert_eq!(figures["rotations_failed"], 0, "{figures}");
    assert_eq!(figures["verify"]["invalid"], 0, "{figures}");
    assert!(figures["verify"]["ok"].as_u64().unwrap() > 0, "{figures}");
    let cache = &figures["verify_cache"];
    assert!(cache["hits"].as_f64().unwrap() > 0.0, "{cache}");
    assert!(cache["stale"].as_f64().unwrap() > 0.0, "{cache}");
    assert_eq!(figures["pq_policy_rejects"], 0.0);
    assert_eq!(figures["checks"]["no_pq_policy_rejects"], true);
}

#[test]
fn the_network_jitter_drill_runs_or_says_why_not() {
    let out = out_dir("jitter");
    let figures = run("network-jitter", &out, &["--rate", "20", "--seconds", "2"]);
    match figures["status"].as_str() {
        Some("skipped") => assert!(figures["reason"].as_str().is_some_and(|r| !r.is_empty())),
        Some("ran") => {
            for run in ["clean", "netem"] {
                assert!(
                    figures[run]["phase"]["ok"].as_u64().unwrap() > 0,
                    "{figures}"
                );
                assert_metrics_saved(&out.join(run));
            }
            // 50 ms each way on the loopback: the p50 moves by at least the delay.
            let clean = figures["clean"]["phase"]["p50_ms"].as_f64().unwrap();
            let netem = figures["netem"]["phase"]["p50_ms"].as_f64().unwrap();
            assert!(netem >= clean + 90.0, "clean {clean} ms, netem {netem} ms");
        }
        other => panic!("status {other:?}: {figures}"),
    }
}
