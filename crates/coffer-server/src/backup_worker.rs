//! Scheduled backups (`[backup]`): the replica holding the store lease `backup` writes
//! a bundle to `backup.dir` once the newest one there is `backup.interval` old, then
//! deletes all but the newest `backup.keep`. With several replicas on one database the
//! lease lets exactly one of them act; another takes over within three ticks of the
//! holder's death.
//!
//! Files: `coffer-backup-<unix ms, 13 digits>.bundle` and its manifest
//! `….bundle.sha256` (a `sha256sum` line), each written to a temporary name, synced and
//! renamed, so a crash leaves no half bundle under a bundle's name. Metrics:
//! `kms_backup_last_success_timestamp_seconds`, `kms_backup_bytes`,
//! `kms_backups_total`, `kms_backup_failures_total`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use coffer_core::Clock;
use coffer_core::backup::bundle;
use coffer_core::kms::Kms;

use crate::config::BackupConfig;

const PREFIX: &str = "coffer-backup-";
/// This process's last scheduled backup: Unix milliseconds and bytes (0: none yet).
static LAST: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));
const SUFFIX: &str = ".bundle";

/// Runs until `stop` changes: a pass every tick (the interval, at most a minute).
pub async fn run(
    kms: Arc<Kms>,
    config: BackupConfig,
    holder: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(dir) = config.dir.clone() else {
        return;
    };
    let tick_every = config.interval.min(Duration::from_secs(60));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if kms.ready().await
                    && let Err(error) = pass(&kms, &config, &dir, &holder, tick_every).await {
                        metrics::counter!("kms_backup_failures_total").increment(1);
                        tracing::error!(target: "coffer::backup", %error, "scheduled backup failed");
                    }
            }
            _ = stop.changed() => break,
        }
    }
}

/// One pass: the new bundle's path, or `None` when another replica holds the lease or
/// the newest bundle is recent enough.
pub async fn pass(
    kms: &Kms,
    config: &BackupConfig,
    dir: &Path,
    holder: &str,
    tick: Duration,
) -> Result<Option<PathBuf>, String> {
    let now = kms.key_service().clock().now();
    let lease = now.plus(tick * 3);
    let store = kms.key_service().store();
    if !store
        .try_lease("backup", holder, now, lease)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let existing = bundles(dir)?;
    if let Some((newest, _)) = existing.last()
        && now.millis().saturating_sub(*newest)
            < i64::try_from(config.interval.as_millis()).unwrap_or(i64::MAX)
    {
        return Ok(None);
    }
    let made = kms.scheduled_backup().await.map_err(|e| e.to_string())?;
    let name = format!("{PREFIX}{:013}{SUFFIX}", made.header.created_at.millis());
    let path = dir.join(&name);
    let manifest = bundle::manifest(&made.bundle, &name);
    let bytes = made.bundle.len();
    {
        let (path, dir) = (path.clone(), dir.to_owned());
        tokio::task::spawn_blocking(move || {
            write_atomically(&dir, &path, &made.bundle)?;
            write_atomically(
                &dir,
                &path.with_extension("bundle.sha256"),
                manifest.as_bytes(),
            )
        })
        .await
        .map_err(|e| e.to_string())??;
    }
    let removed = prune(dir, config.keep)?;
    metrics::counter!("kms_backups_total").increment(1);
    let at = u64::try_from(coffer_core::SystemClock.now().millis()).unwrap_or(0);
    LAST.0.store(at, Ordering::Relaxed);
    LAST.1.store(bytes as u64, Ordering::Relaxed);
    report();
    tracing::info!(target: "coffer::backup", path = %path.display(), bytes, removed, "scheduled backup written");
    Ok(Some(path))
}

/// Sets the last-success gauges (again at each scrape: gauges left unset for ten
/// minutes disappear, and backups may be hours apart).
pub fn report() {
    let at = LAST.0.load(Ordering::Relaxed);
    if at > 0 {
        metrics::gauge!("kms_backup_last_success_timestamp_seconds").set(at as f64 / 1000.0);
        metrics::gauge!("kms_backup_bytes").set(LAST.1.load(Ordering::Relaxed) as f64);
    }
}

/// The bundles in `dir`, oldest first, by the time in their names.
fn bundles(dir: &Path) -> Result<Vec<(i64, PathBuf)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut found: Vec<(i64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let millis = name
                .strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse()
                .ok()?;
            Some((millis, entry.path()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Deletes all but the newest `keep` bundles (and their manifests); returns how many.
fn prune(dir: &Path, keep: u64) -> Result<usize, String> {
    let found = bundles(dir)?;
    let excess = found
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    for (_, path) in &found[..excess] {
        std::fs::remove_file(path).map_err(|e| format!("cannot delete {}: {e}", path.display()))?;
        let _ = std::fs::remove_file(path.with_extension("bundle.sha256"));
    }
    Ok(excess)
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    let temp = path.with_extension("partial");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = std::fs::File::create(&temp).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)
}
