//! The rewrap's progress on a real server: `rotation.rewrap_rate` from the
//! environment paces it, the rotation's status carries done, rate and ETA,
//! `coffer rotate status ID --watch` draws the bar until the step is over, and the
//! metrics show what is left per key.

use std::time::{Duration, Instant};

use coffer_server::startup::InitMethod;

use super::api::create;
use super::harness::{Db, TestServer};
use super::rotation::{accepted, settle};

/// Tracked data keys the test makes (one batch request).
const TRACKED: usize = 200;

/// Items per second: 200 items take about five seconds.
const RATE: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_rewrap_shows_its_progress_in_status_watch_and_metrics() {
    let rate = RATE.to_string();
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[("COFFER_ROTATION_REWRAP_RATE", &rate)],
    )
    .await
    .unwrap();
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "rows").await;
    let items: Vec<serde_json::Value> = (0..TRACKED)
        .map(|i| serde_json::json!({ "key_id": key, "track_id": format!("row-{i}"), "include_plaintext": false }))
        .collect();
    let (status, body) = server
        .post_raw(
            coffer_api::paths::DATAKEY,
            &token,
            serde_json::json!({ "items": items }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let started = Instant::now();
    let view = accepted(&acme, &key, None).await.unwrap();
    let id = view.rotation_id.clone();

    // The status while the step runs: a rate no higher than configured, and an ETA.
    let deadline = Instant::now() + Duration::from_secs(20);
    let progress = loop {
        let view = acme.rotation(&id).await.unwrap();
        if let Some(rewrap) = view
            .rewrap
            .filter(|r| r.done > 0 && r.rate_per_second > 0.0)
        {
            break (rewrap, view.tracked_remaining);
        }
        assert!(Instant::now() < deadline, "no progress reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (rewrap, remaining) = progress;
    assert!(remaining > 0 && remaining < TRACKED as u64, "{remaining}");
    assert!(
        rewrap.rate_per_second <= f64::from(2 * RATE),
        "rate {} over {RATE}/s plus a batch",
        rewrap.rate_per_second
    );
    assert!(rewrap.eta_seconds.is_some(), "{rewrap:?}");
    assert_eq!(rewrap.waiting_for_window, None);
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    let gauge = format!("kms_rotation_rewrap_remaining{{key=\"{key}\"}}");
    assert!(metrics.contains(&gauge), "{gauge} missing");

    // The watch draws lines (stderr is not a terminal here) until the step is over.
    let (code, stdout, stderr) = {
        let (api, token, id) = (server.api.clone(), token.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
                .env_clear()
                .env("COFFER_ADDR", api)
                .env("COFFER_TOKEN", token)
                .args(["rotate", "status", &id, "--watch"])
                .output()
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        })
        .await
        .unwrap()
    };
    assert_eq!(code, 0, "{stdout}{stderr}");
    let bars: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert!(!bars.is_empty(), "no progress bar drawn: {stderr}");
    assert!(
        bars.iter().all(|l| l.contains("/s") && l.contains("ETA")),
        "{stderr}"
    );
    assert!(stdout.contains(&format!("rotation:  {id}")), "{stdout}");

    // Paced: 200 items at 40/s cannot finish in much under four seconds.
    let done = settle(&acme, acme.rotation(&id).await.unwrap()).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert_eq!(done.tracked_remaining, 0);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}: the rate did not hold",
        started.elapsed()
    );
    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    let gauge_line = metrics
        .lines()
        .find(|l| l.starts_with(&gauge))
        .unwrap_or_default();
    assert!(gauge_line.ends_with(" 0"), "{gauge_line}");
    let counter = format!("kms_rotation_rewrapped_total{{key=\"{key}\"}} {TRACKED}");
    assert!(metrics.contains(&counter), "{counter} missing");
}
