//! The durable audit log: group-committed appends, the Merkle tree over them, signed
//! checkpoints, anchoring, and the self-check.
//!
//! Appends: every request's entry goes to one writer task through a channel; the task
//! takes everything queued (up to 1024), assigns indices and chain links, and writes the
//! batch in one transaction: one durable write for a burst of concurrent requests. Each
//! request waits for its batch to commit before it answers (fail closed: a failed write
//! fails every request in the batch, and the log state does not advance).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use coffer_audit::checkpoint::{Checkpoint, CheckpointSigner, CheckpointVerifier};
use coffer_audit::entry::ExportedEntry;
use coffer_audit::merkle::{Hash, Tree};
use coffer_core::audit::{AuditEntry, AuditSink, AuditUnavailable};
use coffer_core::{Custody, Store, StoreError, Timestamp};
use coffer_crypto::{KeyMaterial, KeySpec, SigningKey};
use tokio::sync::{mpsc, oneshot};

const SIGNING_SECRET: &str = "audit-signing-key";
const SIGNING_AAD: &[u8] = b"coffer/audit-signing-key/v1";
const KEY_NAME: &str = "coffer-audit";
const BATCH: usize = 1024;
const READ_CHUNK: u64 = 10_000;

struct Pending {
    entry: AuditEntry,
    done: oneshot::Sender<Result<(), String>>,
}

/// What a self-check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Integrity {
    /// Entries checked.
    pub entries: u64,
    /// Problems found (each counted in `kms_audit_integrity_failed_total`).
    pub failures: Vec<String>,
}

/// The audit log.
pub struct AuditLog {
    store: Arc<dyn Store>,
    tx: mpsc::Sender<Pending>,
    tree: Arc<RwLock<Tree>>,
    origin: String,
    signer: RwLock<Option<Arc<CheckpointSigner>>>,
    anchor: Anchor,
}

/// Where checkpoints are copied outside Coffer's own storage.
#[derive(Debug, Clone, Default)]
pub struct Anchor {
    /// A directory: `checkpoint-<size>.txt` and `latest`.
    pub dir: Option<PathBuf>,
    /// An HTTP endpoint that receives each checkpoint as a `text/plain` POST.
    pub url: Option<String>,
}

fn lock_read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn lock_write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads every stored entry, in chunks.
async fn read_all(store: &dyn Store) -> Result<Vec<(u64, String)>, StoreError> {
    let mut all = Vec::new();
    loop {
        let chunk = store.audit_entries(all.len() as u64, READ_CHUNK).await?;
        let done = (chunk.len() as u64) < READ_CHUNK;
        all.extend(chunk);
        if done {
            return Ok(all);
        }
    }
}

/// Checks index order and chain links of stored rows; returns leaf hashes and problems.
fn check_rows(rows: &[(u64, String)]) -> (Vec<Hash>, Vec<String>) {
    let mut leaves = Vec::with_capacity(rows.len());
    let mut failures = Vec::new();
    let mut prev = [0u8; 32];
    for (position, (index, leaf)) in rows.iter().enumerate() {
        let position = position as u64;
        if *index != position {
            failures.push(format!(
                "audit entry {position} is missing or out of order (found {index})"
            ));
            break;
        }
        match serde_json::from_str::<ExportedEntry>(leaf) {
            Ok(entry)
                if entry.index == position && entry.prev == coffer_audit::entry::hex(&prev) => {}
            Ok(_) => failures.push(format!(
                "audit entry {} does not link to its predecessor",
                position
            )),
            Err(_) => failures.push(format!("audit entry {position} does not parse")),
        }
        prev = coffer_audit::merkle::leaf_hash(leaf.as_bytes());
        leaves.push(prev);
    }
    (leaves, failures)
}

impl AuditLog {
    /// Opens the log: reads and checks what is stored, rebuilds the tree, starts the
    /// writer. Problems are reported (and counted), not fatal: the log keeps growing
    /// and operators see the alert.
    pub async fn open(
        store: Arc<dyn Store>,
        origin: &str,
        anchor: Anchor,
    ) -> Result<(Arc<Self>, Integrity), StoreError> {
        let rows = read_all(store.as_ref()).await?;
        let (leaves, failures) = check_rows(&rows);
        let mut tree = Tree::new();
        for leaf in &leaves {
            tree.push(*leaf);
        }
        let next = (tree.size(), leaves.last().copied().unwrap_or([0; 32]));
        let tree = Arc::new(RwLock::new(tree));
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(writer(store.clone(), tree.clone(), rx, next));
        let log = Arc::new(Self {
            store,
            tx,
            tree,
            origin: origin.to_owned(),
            signer: RwLock::new(None),
            anchor,
        });
        let integrity = Integrity {
            entries: rows.len() as u64,
            failures,
        };
        report(&integrity);
        Ok((log, integrity))
    }

    /// Loads (or, the first time, creates) the checkpoint signing key; needs custody
    /// unsealed.
    pub async fn load_signer(&self, custody: &dyn Custody) -> Result<(), String> {
        let wrapped = match self
            .store
            .get_secret(SIGNING_SECRET)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(wrapped) => wrapped,
            None => {
                let material =
                    KeyMaterial::generate(KeySpec::Ed25519).map_err(|e| e.to_string())?;
                let stored = material.to_stored().map_err(|e| e.to_string())?;
                let wrapped = custody
                    .wrap(SIGNING_AAD, stored.expose_secret())
                    .map_err(|e| e.to_string())?;
                match self.store.put_secret(SIGNING_SECRET, &wrapped).await {
                    Ok(()) => wrapped,
                    // Another replica created it first: use theirs.
                    Err(StoreError::Conflict(_)) => self
                        .store
                        .get_secret(SIGNING_SECRET)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("audit key vanished")?,
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        let stored = custody
            .unwrap(SIGNING_AAD, &wrapped)
            .map_err(|e| e.to_string())?;
        let KeyMaterial::Signing(key @ SigningKey::Ed25519(_)) =
            KeyMaterial::from_stored(stored.expose_secret()).map_err(|e| e.to_string())?
        else {
            return Err("the audit signing key is not Ed25519".into());
        };
        let signer = CheckpointSigner::new(KEY_NAME, key).map_err(|e| e.to_string())?;
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

    /// Entries committed so far.
    pub fn size(&self) -> u64 {
        lock_read(&self.tree).size()
    }

    /// Signs a checkpoint of the current tree, stores it and writes it to the anchor.
    pub async fn checkpoint(&self, now: Timestamp) -> Result<String, String> {
        let signer = self
            .signer()
            .ok_or("the audit signing key is not loaded (sealed?)")?;
        let (size, root) = {
            let tree = lock_read(&self.tree);
            (tree.size(), tree.root())
        };
        let note = signer
            .sign(&Checkpoint {
                origin: self.origin.clone(),
                size,
                root,
            })
            .map_err(|e| e.to_string())?;
        self.store
            .save_checkpoint(size, &note, now)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(dir) = &self.anchor.dir {
            anchor(dir, size, &note).map_err(|e| format!("anchoring to {}: {e}", dir.display()))?;
        }
        if let Some(url) = &self.anchor.url {
            post_anchor(url, &note)
                .await
                .map_err(|e| format!("anchoring to {url}: {e}"))?;
        }
        Ok(note)
    }

    /// The newest stored checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.store.checkpoints().await?.pop())
    }

    /// Stored entries from `from`, as JSON lines.
    pub async fn export(&self, from: u64, limit: u64) -> Result<String, StoreError> {
        let rows = self.store.audit_entries(from, limit).await?;
        Ok(rows.into_iter().map(|(_, leaf)| leaf + "\n").collect())
    }

    /// Inclusion proof of `index` in the tree of `size`, with the leaf hash and root.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<(Hash, Vec<Hash>, Hash), String> {
        let tree = lock_read(&self.tree);
        let proof = tree.inclusion(index, size).map_err(|e| e.to_string())?;
        let leaf = tree.leaf(index).ok_or("index beyond the log")?;
        Ok((leaf, proof, tree.root_at(size).map_err(|e| e.to_string())?))
    }

    /// Consistency proof between sizes, with both roots.
    pub fn consistency(&self, old: u64, new: u64) -> Result<(Vec<Hash>, Hash, Hash), String> {
        let tree = lock_read(&self.tree);
        let proof = tree.consistency(old, new).map_err(|e| e.to_string())?;
        Ok((
            proof,
            tree.root_at(old).map_err(|e| e.to_string())?,
            tree.root_at(new).map_err(|e| e.to_string())?,
        ))
    }

    /// Re-reads the stored log and checks it against what this process committed and
    /// against every stored checkpoint. Each problem is logged and counted in
    /// `kms_audit_integrity_failed_total`.
    pub async fn verify_stored(&self) -> Integrity {
        let mut integrity = Integrity::default();
        match read_all(self.store.as_ref()).await {
            Err(e) => integrity
                .failures
                .push(format!("cannot read the audit log: {e}")),
            Ok(rows) => {
                integrity.entries = rows.len() as u64;
                let (leaves, failures) = check_rows(&rows);
                integrity.failures.extend(failures);
                let tree = lock_read(&self.tree).clone();
                if (leaves.len() as u64) < tree.size() {
                    integrity.failures.push(format!(
                        "the stored log has {} entries; {} were committed",
                        leaves.len(),
                        tree.size()
                    ));
                }
                if let Some(index) =
                    (0..tree.size()).find(|&i| tree.leaf(i) != leaves.get(i as usize).copied())
                {
                    if index < leaves.len() as u64 {
                        integrity.failures.push(format!(
                            "stored audit entry {index} differs from the one committed"
                        ));
                    }
                }
                if let Some(signer) = self.signer() {
                    let verifier = CheckpointVerifier::parse(&signer.verifier_key()).ok();
                    match self.store.checkpoints().await {
                        Err(e) => integrity
                            .failures
                            .push(format!("cannot read checkpoints: {e}")),
                        Ok(checkpoints) => {
                            for (size, note) in checkpoints {
                                let checked = verifier.as_ref().and_then(|v| v.verify(&note).ok());
                                let root = (size as usize <= leaves.len()).then(|| {
                                    coffer_audit::merkle::root_of(&leaves[..size as usize])
                                });
                                match (checked, root) {
                                    (Some(cp), Some(root))
                                        if cp.root == root && cp.size == size => {}
                                    (None, _) => integrity
                                        .failures
                                        .push(format!("checkpoint {size} does not verify")),
                                    _ => integrity.failures.push(format!(
                                        "the log no longer matches checkpoint {size}"
                                    )),
                                }
                            }
                        }
                    }
                }
            }
        }
        report(&integrity);
        integrity
    }
}

fn report(integrity: &Integrity) {
    metrics::gauge!("kms_audit_entries").set(integrity.entries as f64);
    for failure in &integrity.failures {
        tracing::error!(target: "coffer::audit", %failure, "audit log integrity check failed");
        metrics::counter!("kms_audit_integrity_failed_total").increment(1);
    }
}

/// Writes `checkpoint-<size>.txt` and `latest` into `dir`, each atomically.
fn anchor(dir: &Path, size: u64, note: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in [format!("checkpoint-{size}.txt"), "latest".to_owned()] {
        // A unique temporary name: two checkpoints may be anchored at once.
        let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        std::fs::write(&tmp, note)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}

/// POSTs a checkpoint to an HTTP anchor; any non-2xx answer is a failure.
async fn post_anchor(url: &str, note: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(url)
        .header("content-type", "text/plain; charset=utf-8")
        .body(note.to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the anchor answered {}", response.status()))
    }
}

async fn writer(
    store: Arc<dyn Store>,
    tree: Arc<RwLock<Tree>>,
    mut rx: mpsc::Receiver<Pending>,
    (mut next, mut prev): (u64, Hash),
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let (mut index, mut link) = (next, prev);
        let mut rows = Vec::with_capacity(batch.len());
        let mut hashes = Vec::with_capacity(batch.len());
        for pending in &batch {
            let exported = ExportedEntry::new(index, &link, pending.entry.clone());
            link = exported.leaf_hash();
            rows.push((
                index,
                String::from_utf8(exported.leaf_bytes()).unwrap_or_default(),
            ));
            hashes.push(link);
            index += 1;
        }
        metrics::histogram!("kms_audit_batch_entries").record(rows.len() as f64);
        let started = std::time::Instant::now();
        let outcome = store.append_audit(&rows).await.map_err(|e| e.to_string());
        metrics::histogram!("kms_audit_commit_seconds").record(started.elapsed().as_secs_f64());
        if outcome.is_ok() {
            let mut tree = lock_write(&tree);
            for hash in hashes {
                tree.push(hash);
            }
            (next, prev) = (index, link);
        } else {
            metrics::counter!("kms_audit_write_failed_total").increment(1);
        }
        for pending in batch {
            let _ = pending.done.send(outcome.clone());
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

    async fn last_index_of(&self, request_id: &str, op: &str) -> Option<u64> {
        let rows = read_all(self.store.as_ref()).await.ok()?;
        rows.iter().rev().find_map(|(index, leaf)| {
            let entry: ExportedEntry = serde_json::from_str(leaf).ok()?;
            (entry.entry.request_id == request_id && entry.entry.op == op).then_some(*index)
        })
    }

    async fn checkpointed_size(&self) -> Option<u64> {
        self.latest_checkpoint()
            .await
            .ok()
            .flatten()
            .map(|(size, _)| size)
    }

    async fn record(&self, entry: AuditEntry) -> Result<(), AuditUnavailable> {
        // Only outcomes that imply the key was resolved: a caller naming keys that do not
        // exist must not be able to create metric series.
        let resolved = matches!(
            entry.outcome.as_str(),
            "ok" | "version_retired" | "key_disabled" | "key_expired" | "wrong_key_purpose"
        );
        if let (true, Some(key)) = (resolved, &entry.key) {
            metrics::counter!("kms_key_ops_total", "key" => key.clone(), "op" => entry.op.clone(), "outcome" => entry.outcome.clone()).increment(1);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { entry, done })
            .await
            .map_err(|_| AuditUnavailable("the audit writer stopped".into()))?;
        wait.await
            .map_err(|_| AuditUnavailable("the audit writer stopped".into()))?
            .map_err(AuditUnavailable)
    }
}
