//! The rewrap pass (seed 003 step 2): batches of legacy data keys wrapped under a Coffer
//! key, and of Coffer-wrapped keys rewrapped to their key's primary version, with a
//! bounded number of batches in flight, an optional rate limit, retries with backoff,
//! and every outcome in the journal before the next batch is counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use coffer_api::crypto::{
    Batch, CiphertextResponse, Context, ItemResult, RewrapRequest, WrapRequest,
};
use coffer_api::{B64, B64Secret, ErrorCode};
use coffer_client::{Client, ClientError};
use coffer_crypto::SecretBytes;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::journal::{Journal, Outcome};
use super::legacy_key::LegacyKey;
use super::progress::Progress;
use super::sidecar::{FieldNames, LegacySource, Origin, Provider, Sidecar};

/// How a run talks to Coffer.
pub struct Settings {
    /// The Coffer key legacy data keys are wrapped under.
    pub target_key: Option<String>,
    /// Encryption context of every wrap and rewrap (readers give it to `unwrap`),
    /// with the sidecar's id added under `context_id` when set.
    pub context: Context,
    pub context_id: Option<String>,
    pub batch_size: usize,
    pub concurrency: usize,
    /// At most this many items per second (all batches together).
    pub rate: Option<u32>,
    /// Attempts after the first for a batch or item that failed transiently.
    pub retries: u32,
    /// Whether each new sidecar file is flushed to disk before the journal says done.
    pub durability: Durability,
    /// Whether legacy data keys are registered as tracked data keys.
    pub tracking: Tracking,
}

/// Whether a legacy data key is wrapped plainly or registered as a tracked data key,
/// which rotations rewrap server side (`--track`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    /// `wrap`: the sidecar's copy is the only one.
    Untracked,
    /// `wrap` with the sidecar's id as track id; the new sidecar names it (`track_id`).
    BySidecarId,
}

/// Whether a rewritten sidecar is flushed to disk (`fsync`) before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed: survives a power cut.
    Flushed,
    /// Left to the page cache: survives a killed process, not a power cut.
    Cached,
}

/// Where new sidecars go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Each replaces its own file (directory input).
    InPlace,
    /// They wait in the journal for the JSON-lines output file.
    Lines,
}

/// What one batch is sent as.
enum Work {
    /// Legacy: the data keys, opened locally, to wrap under the target key.
    Wrap(Vec<SecretBytes>),
    /// Coffer: rewrap to the primary version.
    Rewrap,
}

pub struct Engine {
    pub client: Client,
    pub journal: Journal,
    pub names: FieldNames,
    pub legacy: Option<LegacyKey>,
    pub settings: Settings,
    pub progress: Arc<Progress>,
    pub output: Output,
    next_slot: Mutex<Instant>,
}

type Failed = Vec<(String, String, String)>;

impl Engine {
    pub fn new(
        client: Client,
        journal: Journal,
        names: FieldNames,
        legacy: Option<LegacyKey>,
        settings: Settings,
        progress: Arc<Progress>,
        output: Output,
    ) -> Self {
        Self {
            client,
            journal,
            names,
            legacy,
            settings,
            progress,
            output,
            next_slot: Mutex::new(Instant::now()),
        }
    }

    /// Migrates `sidecars` (none of them final in the journal), at most
    /// `concurrency` batches at a time.
    pub async fn run(self: &Arc<Self>, sidecars: Vec<Sidecar>) -> anyhow::Result<()> {
        let primaries = self.primaries(&sidecars).await;
        let mut legacy = Vec::new();
        let mut coffer = Vec::new();
        let mut settled: Failed = Vec::new();
        let mut skipped: Failed = Vec::new();
        for sidecar in sidecars {
            let origin = sidecar.origin.to_string();
            match &sidecar.provider {
                Provider::Legacy {
                    source: LegacySource::Dpapi,
                    ..
                } => settled.push((
                    sidecar.id,
                    origin,
                    "wrapped by DPAPI: only its Windows host can open it".into(),
                )),
                Provider::Legacy { alg, .. } => {
                    let opened = match &self.legacy {
                        Some(key) => key
                            .unwrap(*alg, &sidecar.wrapped_dek)
                            .map_err(|e| format!("legacy unwrap: {e}")),
                        None => Err(
                            "legacy-wrapped, and no --legacy-key-env or --legacy-key-file".into(),
                        ),
                    };
                    match opened {
                        Ok(key) => legacy.push((sidecar, key)),
                        Err(reason) => settled.push((sidecar.id, origin, reason)),
                    }
                }
                Provider::Coffer { key, version } => match primaries.get(key) {
                    Some(Ok(primary)) if *version == Some(*primary) => skipped.push((
                        sidecar.id,
                        origin,
                        format!("already at the primary version {primary}"),
                    )),
                    Some(Ok(_)) => coffer.push(sidecar),
                    Some(Err(reason)) => settled.push((sidecar.id, origin, reason.clone())),
                    None => settled.push((sidecar.id, origin, "key not looked up".into())),
                },
            }
        }
        self.settle(Outcome::Failed, settled).await?;
        self.settle(Outcome::Skipped, skipped).await?;

        let mut tasks = JoinSet::new();
        let size = self.settings.batch_size;
        let mut batches: Vec<(Vec<Sidecar>, Work)> = Vec::new();
        while !legacy.is_empty() {
            let rest = legacy.split_off(legacy.len().min(size));
            let (sidecars, keys) = std::mem::replace(&mut legacy, rest).into_iter().unzip();
            batches.push((sidecars, Work::Wrap(keys)));
        }
        while !coffer.is_empty() {
            let rest = coffer.split_off(coffer.len().min(size));
            batches.push((std::mem::replace(&mut coffer, rest), Work::Rewrap));
        }
        for (sidecars, work) in batches {
            while tasks.len() >= self.settings.concurrency {
                join_one(&mut tasks).await?;
            }
            let engine = Arc::clone(self);
            tasks.spawn(async move { engine.batch(sidecars, work).await });
        }
        while !tasks.is_empty() {
            join_one(&mut tasks).await?;
        }
        Ok(())
    }

    async fn settle(&self, outcome: Outcome, items: Failed) -> anyhow::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.journal.record_outcome(outcome, &items).await?;
        match outcome {
            Outcome::Skipped => self.progress.add_skipped(items.len()),
            Outcome::Failed => self.progress.add_failed(items.len()),
        }
        Ok(())
    }

    /// The primary version of every Coffer key the sidecars name (or why not).
    async fn primaries(&self, sidecars: &[Sidecar]) -> HashMap<String, Result<u32, String>> {
        let mut primaries = HashMap::new();
        for sidecar in sidecars {
            if let Provider::Coffer { key, .. } = &sidecar.provider
                && !primaries.contains_key(key)
            {
                let answer = self.client.show_key(key).await;
                let primary = answer
                    .map(|view| view.primary_version)
                    .map_err(|e| format!("key {key}: {e}"));
                primaries.insert(key.clone(), primary);
            }
        }
        primaries
    }

    async fn batch(&self, sidecars: Vec<Sidecar>, work: Work) -> anyhow::Result<()> {
        let outcomes = self.send(&sidecars, &work).await;
        let mut wrapped = Vec::new();
        let mut failed = Vec::new();
        let mut files = Vec::new();
        for (sidecar, outcome) in sidecars.iter().zip(outcomes) {
            let origin = sidecar.origin.to_string();
            match outcome {
                Ok(answer) => {
                    let new = sidecar.migrated(
                        &self.names,
                        &answer.key_id,
                        answer.key_version,
                        &answer.ciphertext.0,
                        self.track_id(sidecar, &work),
                    );
                    let text = serde_json::to_string(&new)?;
                    if let Origin::File(path) = &sidecar.origin {
                        files.push((sidecar.id.clone(), path.clone(), text.clone()));
                    }
                    wrapped.push((sidecar.id.clone(), origin, text));
                }
                Err(reason) => failed.push((sidecar.id.clone(), origin, reason)),
            }
        }
        self.settle(Outcome::Failed, failed).await?;
        if wrapped.is_empty() {
            return Ok(());
        }
        // The new sidecars are committed before any file changes, so a kill between
        // the two finishes from the journal instead of asking Coffer again.
        self.journal.record_wrapped(&wrapped).await?;
        if self.output == Output::InPlace {
            let ids = write_sidecars(files, self.settings.durability).await?;
            self.journal.record_done(&ids).await?;
            self.progress.add_migrated(ids.len());
        } else {
            self.progress.add_migrated(wrapped.len());
        }
        Ok(())
    }

    /// Sends one batch, retrying transient failures of the whole call or of single
    /// items with exponential backoff; answers one outcome per sidecar.
    async fn send(
        &self,
        sidecars: &[Sidecar],
        work: &Work,
    ) -> Vec<Result<CiphertextResponse, String>> {
        let mut outcomes: Vec<Option<Result<CiphertextResponse, String>>> =
            sidecars.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..sidecars.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            self.pace(pending.len()).await;
            let answer = match work {
                Work::Wrap(keys) => {
                    let items = pending
                        .iter()
                        .map(|&i| self.wrap_request(&sidecars[i], &keys[i]))
                        .collect();
                    self.client.wrap_batch(&Batch { items }).await
                }
                Work::Rewrap => {
                    let items = pending
                        .iter()
                        .map(|&i| self.rewrap_request(&sidecars[i]))
                        .collect();
                    self.client.rewrap_batch(&Batch { items }).await
                }
            };
            let last = attempt >= self.settings.retries;
            let mut again = Vec::new();
            match answer {
                Ok(items) if items.len() == pending.len() => {
                    for (index, item) in pending.iter().zip(items) {
                        match item {
                            ItemResult::Ok(answer) => outcomes[*index] = Some(Ok(answer)),
                            ItemResult::Err { error } if transient_code(error.code) && !last => {
                                again.push(*index)
                            }
                            ItemResult::Err { error } => {
                                outcomes[*index] = Some(Err(format!(
                                    "{}: {}",
                                    error.code.as_str(),
                                    error.message
                                )));
                            }
                        }
                    }
                }
                Ok(items) => {
                    let reason = format!(
                        "the server answered {} items for {}",
                        items.len(),
                        pending.len()
                    );
                    for index in &pending {
                        outcomes[*index] = Some(Err(reason.clone()));
                    }
                }
                Err(error) if transient(&error) && !last => again = pending.clone(),
                Err(error) => {
                    for index in &pending {
                        outcomes[*index] = Some(Err(error.to_string()));
                    }
                }
            }
            pending = again;
            if !pending.is_empty() {
                self.progress.add_retry();
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| Err("no answer".into())))
            .collect()
    }

    /// The track id a sidecar's data key is registered under by this batch, if any.
    fn track_id<'s>(&self, sidecar: &'s Sidecar, work: &Work) -> Option<&'s str> {
        match (work, self.settings.tracking) {
            (Work::Wrap(_), Tracking::BySidecarId) => Some(&sidecar.id),
            _ => None,
        }
    }

    fn wrap_request(&self, sidecar: &Sidecar, key: &SecretBytes) -> WrapRequest {
        WrapRequest {
            track_id: match self.settings.tracking {
                Tracking::Untracked => None,
                Tracking::BySidecarId => Some(sidecar.id.clone()),
            },
            key_id: self.settings.target_key.clone().unwrap_or_default(),
            plaintext: B64Secret::new(key.expose_secret().to_vec()),
            context: context_for(
                &self.settings.context,
                self.settings.context_id.as_deref(),
                &sidecar.id,
            ),
        }
    }

    fn rewrap_request(&self, sidecar: &Sidecar) -> RewrapRequest {
        RewrapRequest {
            ciphertext: B64(sidecar.wrapped_dek.clone()),
            context: context_for(
                &self.settings.context,
                self.settings.context_id.as_deref(),
                &sidecar.id,
            ),
            key_id: None,
            destination_context: None,
        }
    }

    /// Waits until `items` more fit under `--rate`: each call reserves its share of
    /// time, so concurrent batches together stay under the limit.
    async fn pace(&self, items: usize) {
        let Some(rate) = self.settings.rate else {
            return;
        };
        let share = Duration::from_secs_f64(items as f64 / f64::from(rate.max(1)));
        let start = {
            let mut next = self.next_slot.lock().await;
            let start = (*next).max(Instant::now());
            *next = start + share;
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// `base`, plus `id_key = id` when the sidecar's id is bound into the context.
pub fn context_for(base: &Context, id_key: Option<&str>, id: &str) -> Context {
    let mut context = base.clone();
    if let Some(key) = id_key {
        context.insert(key.to_owned(), id.to_owned());
    }
    context
}

async fn join_one(tasks: &mut JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    match tasks.join_next().await {
        Some(joined) => joined.context("a migration batch panicked")?,
        None => Ok(()),
    }
}

/// Worth another attempt: the server was unreachable, overloaded or sealed.
fn transient(error: &ClientError) -> bool {
    match error {
        ClientError::Transport(_) => true,
        ClientError::Api { status, code, .. } => {
            transient_code(*code) || matches!(status, 502 | 504)
        }
        _ => false,
    }
}

fn transient_code(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Unavailable | ErrorCode::TooManyRequests | ErrorCode::Sealed
    )
}

/// 200 ms doubling up to 10 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(10))
}

/// Replaces each sidecar file atomically (a temporary file beside it, then rename);
/// answers the ids written.
pub async fn write_sidecars(
    files: Vec<(String, PathBuf, String)>,
    durability: Durability,
) -> anyhow::Result<Vec<String>> {
    tokio::task::spawn_blocking(move || {
        let mut ids = Vec::with_capacity(files.len());
        let mut dirs = std::collections::BTreeSet::new();
        for (id, path, text) in files {
            replace_file(&path, text.as_bytes(), durability)?;
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
            ids.push(id);
        }
        if durability == Durability::Flushed {
            for dir in dirs {
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .with_context(|| format!("cannot flush {}", dir.display()))?;
            }
        }
        Ok(ids)
    })
    .await
    .context("the file writer panicked")?
}

/// Writes `bytes` to a dot-file beside `path`, then renames it over `path`.
pub fn replace_file(path: &Path, bytes: &[u8], durability: Durability) -> anyhow::Result<()> {
    use std::io::Write as _;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.coffer-tmp"));
    let mut file = std::fs::File::create(&temp)
        .with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| match durability {
            Durability::Flushed => file.sync_all(),
            Durability::Cached => Ok(()),
        })
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }

    #[test]
    fn only_overload_and_transport_failures_are_retried() {
        let api = |status, code| ClientError::Api {
            status,
            code,
            message: String::new(),
            request_id: String::new(),
        };
        assert!(transient(&ClientError::Transport("refused".into())));
        assert!(transient(&api(503, ErrorCode::Unavailable)));
        assert!(transient(&api(429, ErrorCode::TooManyRequests)));
        assert!(!transient(&api(404, ErrorCode::NotFound)));
        assert!(!transient(&api(400, ErrorCode::InvalidCiphertext)));
    }
}
