//! The durable audit log: group-committed appends, the Merkle tree over the stored log,
//! signed checkpoints, anchoring, and the self-check. It implements core's `AuditSink`
//! over any `Store`; the server only composes it and serves its endpoints.
//!
//! Layout: this file — [`AuditLog`] (appends, checkpoints); `self_check` — re-reading
//! the stored log against the tree and the checkpoints; `follow` — the tree following
//! the stored log; `chain` — checking stored rows; `anchor` — write-once
//! copies of checkpoints outside the database; `signer` — the checkpoint signing key;
//! `key_label` — the canonical key label of `kms_key_ops_total`.
//!
//! Appends: every request's entry (or a batch request's group of entries) goes to one
//! writer task (on a thread of its own, `writer_runtime`) through a channel; the task
//! takes everything queued (about 1024 entries; a group is never split) and appends the
//! batch in one durable write of the store (a transaction; on SQLite the audit journal,
//! see `coffer-store-sql`), where the store allocates the indices (so replicas sharing
//! a database append to one log). Each request waits for its batch to commit before it
//! answers (fail closed: a failed write fails every request in the batch). State
//! changes write their entries inside their own transactions instead
//! (`coffer_core::store::Record`).
//!
//! The tree follows the stored log, not this process's appends: entries written by
//! state changes and by other replicas are read in index order before this process's
//! own batch is added, before every checkpoint, and every second.

mod anchor;
mod chain;
mod follow;
mod key_label;
mod self_check;
mod signer;

pub use anchor::{Anchor, AnchorError};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use coffer_audit::checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use coffer_audit::entry::ExportedEntry;
use coffer_audit::merkle::{Hash, Tree};
use coffer_core::audit::{AuditEntry, AuditSink, AuditUnavailable};
use coffer_core::{Custody, Store, StoreError, Timestamp};
use tokio::sync::{mpsc, oneshot};

use follow::{Followed, Follower, lock_read, lock_write};

const BATCH: usize = 1024;

/// A request's entries (one, or a batch request's group), committed together.
struct Pending {
    entries: Vec<AuditEntry>,
    done: Waiter,
}

/// Told how the commit holding a request's entries went.
type Waiter = oneshot::Sender<Result<(), AuditUnavailable>>;

/// What a self-check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Integrity {
    /// Entries checked.
    pub entries: u64,
    /// Problems found (each counted in `kms_audit_integrity_failed_total`).
    pub failures: Vec<String>,
}

/// The newest checkpoint known to be honest: anchored outside the database, or signed
/// by this process. Nothing that does not extend it is ever signed.
#[derive(Debug, Clone, Copy)]
struct Trusted {
    size: u64,
    root: Hash,
}

/// The audit log.
pub struct AuditLog {
    follower: Arc<Follower>,
    tx: mpsc::Sender<Pending>,
    origin: String,
    signer: RwLock<Option<Arc<CheckpointSigner>>>,
    anchor: Anchor,
    trusted: RwLock<Option<Trusted>>,
    /// Set when the stored log does not extend a trusted checkpoint: checkpoints are
    /// refused from then on (the alarm stays raised until an operator investigates).
    rewritten: AtomicBool,
    /// Problems this log has reported (its share of `kms_audit_integrity_failed_total`,
    /// which is process-wide: several logs in one process, as in tests, each keep their
    /// own count here).
    alarms: Arc<AtomicU64>,
}

impl AuditLog {
    /// Opens the log: reads and checks what is stored, builds the tree, starts the
    /// writer. Problems are reported (and counted), not fatal: the log keeps growing
    /// and operators see the alert.
    pub async fn open(
        store: Arc<dyn Store>,
        origin: &str,
        anchor: Anchor,
    ) -> Result<(Arc<Self>, Integrity), StoreError> {
        let follower = Arc::new(Follower {
            store,
            state: RwLock::new(Followed {
                tree: Tree::new(),
                prev: [0; 32],
            }),
            turn: tokio::sync::Mutex::new(()),
        });
        let failures = follower.sync().await?;
        let alarms = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel(8192);
        writer_runtime().spawn(writer(follower.clone(), rx, alarms.clone()));
        let log = Arc::new(Self {
            follower,
            tx,
            origin: origin.to_owned(),
            signer: RwLock::new(None),
            anchor,
            trusted: RwLock::new(None),
            rewritten: AtomicBool::new(false),
            alarms,
        });
        let integrity = Integrity {
            entries: log.size(),
            failures,
        };
        log.report(&integrity);
        Ok((log, integrity))
    }

    fn store(&self) -> &dyn Store {
        self.follower.store.as_ref()
    }

    /// Loads (or, the first time, creates) the checkpoint signing key; needs custody
    /// unsealed.
    pub async fn load_signer(&self, custody: &dyn Custody) -> Result<(), String> {
        let signer = signer::load(self.store(), custody).await?;
        *lock_write(&self.signer) = Some(Arc::new(signer));
        Ok(())
    }

    fn signer(&self) -> Option<Arc<CheckpointSigner>> {
        lock_read(&self.signer).clone()
    }

    /// The verifier key of checkpoints (public).
    pub fn verifier_key(&self) -> Option<String> {
        self.signer().map(|s| s.verifier_key())
    }

    /// Entries read so far (this process's and everyone else's).
    pub fn size(&self) -> u64 {
        lock_read(&self.follower.state).tree.size()
    }

    /// Reads entries other writers (state changes, other replicas) committed since.
    pub async fn follow(&self) {
        match self.follower.sync().await {
            Ok(failures) => self.report(&Integrity {
                entries: self.size(),
                failures,
            }),
            Err(error) => tracing::warn!(%error, "cannot read the audit log"),
        }
    }

    /// Compares the stored log with the newest checkpoints kept outside the database
    /// (the anchor directory) and in it. Call once the signing key is loaded. A log
    /// that does not extend one of them was rewritten: the alarm is raised and no
    /// checkpoint is signed from then on.
    pub async fn check_against_checkpoints(&self) -> Integrity {
        let mut failures = Vec::new();
        if let Err(error) = self.follower.sync().await {
            failures.push(format!("cannot read the audit log: {error}"));
        }
        let mut known = Vec::new();
        if let Some(dir) = &self.anchor.dir {
            match anchor::newest_in_dir(dir) {
                Ok(Some(found)) => known.push(("anchored", found)),
                Ok(None) => {}
                Err(error) => failures.push(error.to_string()),
            }
        }
        match self.store().checkpoints().await {
            Ok(mut stored) => known.extend(stored.pop().map(|found| ("stored", found))),
            Err(error) => failures.push(format!("cannot read checkpoints: {error}")),
        }
        let verifier = self
            .verifier_key()
            .and_then(|key| CheckpointVerifier::parse(&key).ok());
        for (place, (size, note)) in known {
            let Some(checkpoint) = verifier.as_ref().and_then(|v| v.verify(&note).ok()) else {
                failures.push(format!("the {place} checkpoint {size} does not verify"));
                self.rewritten.store(true, Ordering::Release);
                continue;
            };
            let trusted = Trusted {
                size: checkpoint.size,
                root: checkpoint.root,
            };
            match self.extends(trusted) {
                Ok(()) => self.trust(trusted),
                Err(problem) => {
                    failures.push(format!("{problem} ({place})"));
                    self.rewritten.store(true, Ordering::Release);
                }
            }
        }
        let integrity = Integrity {
            entries: self.size(),
            failures,
        };
        self.report(&integrity);
        integrity
    }

    fn trust(&self, checkpoint: Trusted) {
        let mut trusted = lock_write(&self.trusted);
        if trusted.is_none_or(|t| t.size <= checkpoint.size) {
            *trusted = Some(checkpoint);
        }
    }

    /// Whether the followed tree extends `checkpoint`.
    fn extends(&self, checkpoint: Trusted) -> Result<(), String> {
        let state = lock_read(&self.follower.state);
        let matches = state
            .tree
            .root_at(checkpoint.size)
            .is_ok_and(|root| root == checkpoint.root);
        if matches {
            Ok(())
        } else {
            Err(format!(
                "the audit log ({} entries) does not extend checkpoint {}",
                state.tree.size(),
                checkpoint.size
            ))
        }
    }

    /// Signs a checkpoint of the stored log, stores it and writes it to the anchors.
    /// Refused when the log does not extend the newest trusted checkpoint.
    pub async fn checkpoint(&self, now: Timestamp) -> Result<String, String> {
        let signer = self
            .signer()
            .ok_or("the audit signing key is not loaded (sealed?)")?;
        self.follower.sync().await.map_err(|e| e.to_string())?;
        let refuse = "refusing to sign: the audit log does not extend the newest anchored checkpoint (see kms_audit_integrity_failed_total)";
        if self.rewritten.load(Ordering::Acquire) {
            return Err(refuse.into());
        }
        let (size, root) = {
            let state = lock_read(&self.follower.state);
            (state.tree.size(), state.tree.root())
        };
        let trusted = *lock_read(&self.trusted);
        if let Some(trusted) = trusted
            && let Err(problem) = self.extends(trusted)
        {
            self.rewritten.store(true, Ordering::Release);
            self.report(&Integrity {
                entries: size,
                failures: vec![problem],
            });
            return Err(refuse.into());
        }
        let note = signer
            .sign(&Checkpoint {
                origin: self.origin.clone(),
                size,
                root,
            })
            .map_err(|e| e.to_string())?;
        self.store()
            .save_checkpoint(size, &note, now)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(dir) = &self.anchor.dir {
            anchor::write_dir(dir, size, &note).map_err(|e| {
                if matches!(e, AnchorError::Conflicting(_)) {
                    self.rewritten.store(true, Ordering::Release);
                    self.report(&Integrity {
                        entries: size,
                        failures: vec![e.to_string()],
                    });
                }
                e.to_string()
            })?;
        }
        if let Some(url) = &self.anchor.url {
            anchor::post(url, &note).await.map_err(|e| e.to_string())?;
        }
        self.trust(Trusted { size, root });
        Ok(note)
    }

    /// The newest stored checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.store().checkpoints().await?.pop())
    }

    /// Waits until every entry queued before this call is committed (or failed):
    /// refusals' entries are queued without waiting, and a reader of the log expects
    /// to see the refusal it was just answered.
    pub async fn settle(&self) {
        let (done, wait) = oneshot::channel();
        let marker = Pending {
            entries: Vec::new(),
            done,
        };
        if self.tx.send(marker).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Stored entries from `from`, as JSON lines (after [`AuditLog::settle`]).
    pub async fn export(&self, from: u64, limit: u64) -> Result<String, StoreError> {
        self.settle().await;
        let rows = self.store().audit_entries(from, limit).await?;
        Ok(rows.into_iter().map(|(_, leaf)| leaf + "\n").collect())
    }

    /// Inclusion proof of `index` in the tree of `size`, with the leaf hash and root.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<(Hash, Vec<Hash>, Hash), String> {
        let state = lock_read(&self.follower.state);
        let tree = &state.tree;
        let proof = tree.inclusion(index, size).map_err(|e| e.to_string())?;
        let leaf = tree.leaf(index).ok_or("index beyond the log")?;
        Ok((leaf, proof, tree.root_at(size).map_err(|e| e.to_string())?))
    }

    /// Consistency proof between sizes, with both roots.
    pub fn consistency(&self, old: u64, new: u64) -> Result<(Vec<Hash>, Hash, Hash), String> {
        let state = lock_read(&self.follower.state);
        let tree = &state.tree;
        let proof = tree.consistency(old, new).map_err(|e| e.to_string())?;
        Ok((
            proof,
            tree.root_at(old).map_err(|e| e.to_string())?,
            tree.root_at(new).map_err(|e| e.to_string())?,
        ))
    }
}

impl AuditLog {
    /// How many integrity problems this log has reported since it was opened (0: the
    /// alarm was never raised by it).
    pub fn integrity_failures(&self) -> u64 {
        self.alarms.load(Ordering::Acquire)
    }

    fn report(&self, integrity: &Integrity) {
        report(&self.alarms, integrity);
    }
}

fn report(alarms: &AtomicU64, integrity: &Integrity) {
    alarms.fetch_add(integrity.failures.len() as u64, Ordering::AcqRel);
    metrics::gauge!("kms_audit_entries").set(integrity.entries as f64);
    for failure in &integrity.failures {
        tracing::error!(target: "coffer::audit", %failure, "audit log integrity check failed");
        metrics::counter!("kms_audit_integrity_failed_total").increment(1);
    }
}

/// `first` and whatever else is queued, up to about [`BATCH`] entries: one commit. A
/// group (a batch request's entries) is never split: it goes whole into one commit,
/// which may then hold somewhat more than `BATCH` entries.
fn gather(first: Pending, rx: &mut mpsc::Receiver<Pending>) -> (Vec<AuditEntry>, Vec<Waiter>) {
    let mut entries = first.entries;
    let mut waiters = vec![first.done];
    while entries.len() < BATCH {
        match rx.try_recv() {
            Ok(pending) => {
                entries.extend(pending.entries);
                waiters.push(pending.done);
            }
            Err(_) => break,
        }
    }
    (entries, waiters)
}

/// Where audit writers run: a thread of their own, with its own runtime, kept for the
/// life of the process. A batch passes from task to task (queued, appended, synced,
/// followed) before its requests are answered; on the request workers each step waited
/// behind whatever requests were queued there. Here each step runs as soon as the one
/// before ends. Kept for good: a database connection opened from here stays registered
/// with it.
fn writer_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the audit writer");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("coffer-audit".into())
            .spawn(move || {
                coffer_core::audit::mark_audit_writer_thread();
                runtime.block_on(std::future::pending::<()>());
            })
            .expect("a thread for the audit writer");
        handle
    })
}

async fn writer(follower: Arc<Follower>, mut rx: mpsc::Receiver<Pending>, alarms: Arc<AtomicU64>) {
    while let Some(first) = rx.recv().await {
        let (entries, waiters) = gather(first, &mut rx);
        if entries.is_empty() {
            // Only `settle` markers: everything queued before them is committed.
            for done in waiters {
                let _ = done.send(Ok(()));
            }
            continue;
        }
        metrics::histogram!("kms_audit_batch_entries").record(entries.len() as f64);
        let started = std::time::Instant::now();
        let outcome = follower.store.append_audit(&entries).await;
        metrics::histogram!("kms_audit_commit_seconds").record(started.elapsed().as_secs_f64());
        let outcome = match outcome {
            Ok(appended) => {
                match follower.absorb(&appended).await {
                    Ok(failures) => report(
                        &alarms,
                        &Integrity {
                            entries: appended.first + appended.leaves.len() as u64,
                            failures,
                        },
                    ),
                    // Committed all the same; the next follow reads the rows.
                    Err(error) => tracing::warn!(%error, "cannot read the audit log"),
                }
                Ok(())
            }
            Err(error) => {
                metrics::counter!("kms_audit_write_failed_total").increment(1);
                tracing::error!(%error, "audit entries could not be committed");
                Err(AuditUnavailable("the audit log cannot be written".into()))
            }
        };
        for done in waiters {
            let _ = done.send(outcome.clone());
        }
    }
}

#[async_trait]
impl AuditSink for AuditLog {
    async fn checkpoint_now(&self) -> Result<u64, AuditUnavailable> {
        let note = self
            .checkpoint(coffer_core::Clock::now(&coffer_core::SystemClock))
            .await
            .map_err(AuditUnavailable)?;
        note.lines()
            .nth(1)
            .and_then(|size| size.parse().ok())
            .ok_or_else(|| AuditUnavailable("malformed checkpoint".into()))
    }

    /// Reads the log from its end, a chunk at a time, and stops at the newest match:
    /// the entry sought (a rotation's anchor request) is usually among the newest, and
    /// reading the whole log for it cost seconds and its size in memory at a million
    /// entries.
    async fn last_index_of(&self, request_id: &str, op: &str) -> Option<u64> {
        let newest = |rows: &[(u64, String)]| {
            rows.iter().rev().find_map(|(index, leaf)| {
                let entry: ExportedEntry = serde_json::from_str(leaf).ok()?;
                (entry.entry.request_id == request_id && entry.entry.op == op).then_some(*index)
            })
        };
        // What was stored past the followed tree (state changes not followed yet).
        let followed = self.size();
        let mut past = Vec::new();
        loop {
            let from = followed + past.len() as u64;
            let chunk = self
                .store()
                .audit_entries(from, follow::READ_CHUNK)
                .await
                .ok()?;
            let done = (chunk.len() as u64) < follow::READ_CHUNK;
            past.extend(chunk);
            if done {
                break;
            }
        }
        if let Some(index) = newest(&past) {
            return Some(index);
        }
        let mut end = followed;
        while end > 0 {
            let start = end.saturating_sub(follow::READ_CHUNK);
            let rows = self.store().audit_entries(start, end - start).await.ok()?;
            if let Some(index) = newest(&rows) {
                return Some(index);
            }
            end = start;
        }
        None
    }

    async fn checkpointed_size(&self) -> Option<u64> {
        self.latest_checkpoint()
            .await
            .ok()
            .flatten()
            .map(|(size, _)| size)
    }

    async fn record(&self, entry: AuditEntry) -> Result<(), AuditUnavailable> {
        self.record_group(vec![entry]).await
    }

    async fn record_refusal(&self, entry: AuditEntry) -> Result<(), AuditUnavailable> {
        count_key_op(&entry);
        // Nobody waits for this commit; the writer ignores a dropped waiter. A full
        // queue still makes the caller wait for room (bounded memory).
        let (done, _) = oneshot::channel();
        self.tx
            .send(Pending {
                entries: vec![entry],
                done,
            })
            .await
            .map_err(|_| AuditUnavailable("the audit writer stopped".into()))
    }

    async fn record_group(&self, entries: Vec<AuditEntry>) -> Result<(), AuditUnavailable> {
        for entry in &entries {
            count_key_op(entry);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { entries, done })
            .await
            .map_err(|_| AuditUnavailable("the audit writer stopped".into()))?;
        wait.await
            .map_err(|_| AuditUnavailable("the audit writer stopped".into()))?
    }
}

/// `kms_key_ops_total{key,op,outcome}`, for outcomes that imply the key was resolved:
/// a caller naming keys that do not exist must not be able to create metric series.
fn count_key_op(entry: &AuditEntry) {
    let resolved = matches!(
        entry.outcome.as_str(),
        "ok" | "version_retired" | "key_disabled" | "key_expired" | "wrong_key_purpose"
    );
    if let (true, Some(key)) = (resolved, &entry.key) {
        metrics::counter!("kms_key_ops_total", "key" => key_label::key_label(key), "op" => entry.op.clone(), "outcome" => entry.outcome.clone()).increment(1);
    }
}

#[cfg(test)]
mod tests;
