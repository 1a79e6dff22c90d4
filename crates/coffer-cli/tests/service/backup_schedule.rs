//! Scheduled backups (`[backup]`): bundles every interval with retention, written only
//! by the holder of the `backup` lease; and a backup taken while writes happen restores
//! to a ready server that opens everything acknowledged before it. Also: restoring under
//! passphrase custody needs the passphrase, under Shamir custody the shares.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use coffer_core::backup::bundle;
use coffer_server::backup_worker;
use coffer_server::config::BackupConfig;
use coffer_server::startup::InitMethod;

use super::api::{create, unwrap_request, wrap_request};
use super::backup::{restore, same_custody, vars_for};
use super::harness::{Db, Stopped, TestServer, temp_dir};

/// Bundle names in `dir`, and whether any temporary file is there.
fn listing(dir: &Path) -> (BTreeSet<String>, usize, bool) {
    let mut bundles = BTreeSet::new();
    let (mut manifests, mut partial) = (0, false);
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".bundle") {
            bundles.insert(name);
        } else if name.ends_with(".bundle.sha256") {
            manifests += 1;
        } else {
            partial = true;
        }
    }
    (bundles, manifests, partial)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_run_every_interval_and_keep_the_newest() {
    let backups = temp_dir().join("backups");
    let path = backups.display().to_string();
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::KeyFile,
        &[
            ("COFFER_BACKUP_DIR", path.as_str()),
            ("COFFER_BACKUP_INTERVAL", "1s"),
            ("COFFER_BACKUP_KEEP", "2"),
        ],
    )
    .await
    .unwrap();
    let acme = server.tenant("acme").await;
    create(&acme, "aes-256", "k").await;
    let mut seen = BTreeSet::new();
    let started = Instant::now();
    while seen.len() < 4 {
        assert!(started.elapsed() < Duration::from_secs(60), "{seen:?}");
        if backups.exists() {
            let (bundles, _, _) = listing(&backups);
            // A new bundle is written before the oldest goes: `keep` + 1 for a moment.
            assert!(
                bundles.len() <= 3,
                "at most `keep` + 1 bundles at any time: {bundles:?}"
            );
            seen.extend(bundles);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (bundles, manifests, partial) = listing(&backups);
    assert_eq!((bundles.len(), manifests, partial), (2, 2, false));
    // The two kept are the newest made.
    let newest: Vec<&String> = seen.iter().rev().take(2).collect();
    assert!(
        newest.iter().all(|n| bundles.contains(*n)),
        "{bundles:?} {seen:?}"
    );
    for name in &bundles {
        let bytes = std::fs::read(backups.join(name)).unwrap();
        let manifest = std::fs::read_to_string(backups.join(format!("{name}.sha256"))).unwrap();
        bundle::check_manifest(&manifest, &bytes).unwrap();
        let header = bundle::inspect(&bytes).unwrap();
        assert!(
            header.counts.contains(&("keys".into(), 1)),
            "{:?}",
            header.counts
        );
    }
    let metrics = reqwest::get(format!("{}/metrics", server.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kms_backup_last_success_timestamp_seconds"),
        "{metrics}"
    );
    assert!(metrics.contains("kms_backups_total"), "{metrics}");
}

/// With several replicas on one database only the holder of the `backup` lease writes:
/// another replica's pass does nothing, even with no interval to wait for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_of_the_backup_lease_writes_a_scheduled_backup() {
    let server = TestServer::start().await;
    let dir = temp_dir().join("backups");
    let config = BackupConfig {
        dir: Some(dir.clone()),
        interval: Duration::ZERO,
        keep: 10,
    };
    let tick = Duration::from_secs(60);
    let kms = &server.state.kms;
    let first = backup_worker::pass(kms, &config, &dir, "replica-a", tick)
        .await
        .unwrap();
    assert!(first.is_some());
    let other = backup_worker::pass(kms, &config, &dir, "replica-b", tick)
        .await
        .unwrap();
    assert!(other.is_none(), "replica-b does not hold the lease");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = backup_worker::pass(kms, &config, &dir, "replica-a", tick)
        .await
        .unwrap();
    assert!(again.is_some(), "the holder renews its lease and writes");
    assert_eq!(listing(&dir).0.len(), 2);
    // With an interval, the holder waits for the newest bundle to age.
    let hourly = BackupConfig {
        interval: Duration::from_secs(3600),
        ..config
    };
    let waited = backup_worker::pass(kms, &hourly, &dir, "replica-a", tick)
        .await
        .unwrap();
    assert!(waited.is_none());
    // Each scheduled backup is recorded, by `coffer-backup`.
    let entries = super::backup::backup_entries(&server).await;
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .all(|(who, outcome, _)| who == "coffer-backup" && outcome == "ok")
    );
}

/// Backups taken while keys are created and data keys wrapped restore to a ready
/// server that opens every ciphertext acknowledged before the backup was asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_everything_acknowledged_before_it() {
    let source = TestServer::start().await;
    let token = source.tenant_token("acme").await;
    let acme = source.client(&token);
    let key = create(&acme, "aes-256", "busy").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The writer runs until the backups are taken (bounded), so each backup is taken
    // while it writes, however fast or slow the machine is.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acme, key, stop) = (source.client(&token), key.clone(), stop.clone());
        tokio::spawn(async move {
            for i in 0..20_000u32 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if i % 20 == 0 {
                    create(&acme, "ed25519", &format!("k{i}")).await;
                }
                let plaintext = i.to_be_bytes().to_vec();
                let sealed = acme
                    .wrap(&wrap_request(&key, &plaintext, &[]))
                    .await
                    .unwrap();
                let _ = tx.send((sealed.ciphertext, plaintext));
            }
        })
    };
    let mut acknowledged = Vec::new();
    let mut bundles = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        while let Ok(item) = rx.try_recv() {
            acknowledged.push(item);
        }
        let before = acknowledged.len();
        bundles.push((source.admin().backup().await.unwrap(), before));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    while let Ok(item) = rx.try_recv() {
        acknowledged.push(item);
    }
    let (bytes, before) = bundles.pop().unwrap();
    assert!(
        before > 0 && before < acknowledged.len(),
        "taken mid-write: {before} of {}",
        acknowledged.len()
    );
    let file = temp_dir().join("mid.bundle");
    std::fs::write(&file, &bytes).unwrap();
    std::fs::write(
        format!("{}.sha256", file.display()),
        bundle::manifest(&bytes, "mid.bundle"),
    )
    .unwrap();
    let dir = same_custody(&source);
    let vars = vars_for(&dir, None);
    let (code, _, stderr) = restore(&vars, &file);
    assert_eq!(code, 0, "{stderr}");
    let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let restored = Stopped::configured(&refs, &source.admin_token)
        .start()
        .await;
    let status = reqwest::get(format!("{}/readyz", restored.ops))
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
    let client = restored.client(&token);
    for (ciphertext, plaintext) in &acknowledged[..before] {
        let opened = client
            .unwrap(&unwrap_request(ciphertext, &[]))
            .await
            .unwrap();
        assert_eq!(opened.plaintext.expose_secret(), &plaintext[..]);
    }
}

/// Passphrase custody: restore needs the passphrase (`--passphrase-file`); without it,
/// or with a wrong one, it is refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passphrase_deployment_restores_only_with_its_passphrase() {
    use std::os::unix::fs::PermissionsExt;
    let passphrase = "correct horse battery staple";
    let source = TestServer::start_with(
        Db::Sqlite,
        InitMethod::Passphrase(coffer_custody_sealed::Passphrase::new(passphrase.into())),
        &[],
    )
    .await
    .unwrap();
    let acme = source.tenant("acme").await;
    create(&acme, "aes-256", "k").await;
    let bytes = source.admin().backup().await.unwrap();
    let file = temp_dir().join("p.bundle");
    std::fs::write(&file, &bytes).unwrap();
    std::fs::write(
        format!("{}.sha256", file.display()),
        bundle::manifest(&bytes, "p.bundle"),
    )
    .unwrap();
    let dir = temp_dir();
    std::fs::copy(source.dir.join("custody.json"), dir.join("custody.json")).unwrap();
    let vars = [
        ("COFFER_DATA_DIR", dir.display().to_string()),
        ("COFFER_CUSTODY_METHOD", "passphrase".to_owned()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let secret = |name: &str, text: &str| {
        let path = temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let bundle_arg = file.display().to_string();
    let (code, _, stderr) = super::backup::coffer(&vars, &["backup", "restore", &bundle_arg]);
    assert_eq!(code, 1);
    assert!(stderr.contains("custody is still sealed"), "{stderr}");
    let wrong = secret("wrong", "not the passphrase");
    let (code, _, stderr) = super::backup::coffer(
        &vars,
        &[
            "backup",
            "restore",
            &bundle_arg,
            "--passphrase-file",
            &wrong,
        ],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("unseal failed"), "{stderr}");
    let right = secret("right", passphrase);
    let (code, _, stderr) = super::backup::coffer(
        &vars,
        &[
            "backup",
            "restore",
            &bundle_arg,
            "--passphrase-file",
            &right,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
}

/// Shamir custody: restore takes one `--share-file` per share, up to the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shamir_deployment_restores_with_threshold_share_files() {
    use std::os::unix::fs::PermissionsExt;
    let source = TestServer::start_with(
        Db::Sqlite,
        InitMethod::Shamir {
            shares: 3,
            threshold: 2,
        },
        &[],
    )
    .await
    .unwrap();
    let bytes = source.admin().backup().await.unwrap();
    let file = temp_dir().join("s.bundle");
    std::fs::write(&file, &bytes).unwrap();
    std::fs::write(
        format!("{}.sha256", file.display()),
        bundle::manifest(&bytes, "s.bundle"),
    )
    .unwrap();
    let dir = temp_dir();
    std::fs::copy(source.dir.join("custody.json"), dir.join("custody.json")).unwrap();
    let data_dir = dir.display().to_string();
    let vars = [
        ("COFFER_DATA_DIR", data_dir.as_str()),
        ("COFFER_CUSTODY_METHOD", "shamir"),
    ];
    let shares: Vec<String> = source
        .shares
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, share)| {
            let path = temp_dir().join(format!("share{i}"));
            std::fs::write(&path, share).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            path.display().to_string()
        })
        .collect();
    let bundle_arg = file.display().to_string();
    let one = ["backup", "restore", &bundle_arg, "--share-file", &shares[0]];
    let (code, _, stderr) = super::backup::coffer(&vars, &one);
    assert_eq!(code, 1);
    assert!(stderr.contains("custody is still sealed"), "{stderr}");
    let two = [
        "backup",
        "restore",
        &bundle_arg,
        "--share-file",
        &shares[0],
        "--share-file",
        &shares[1],
    ];
    let (code, _, stderr) = super::backup::coffer(&vars, &two);
    assert_eq!(code, 0, "{stderr}");
}
