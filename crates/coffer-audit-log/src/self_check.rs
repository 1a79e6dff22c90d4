//! The self-check: the stored log re-read, a chunk at a time, and compared with the tree
//! this process followed and with every stored checkpoint.

use coffer_audit::checkpoint::CheckpointVerifier;
use coffer_audit::merkle::Tree;
use coffer_core::{Store, StoreError};

use crate::chain::{Position, check_rows};
use crate::follow::{self, lock_read};
use crate::{AuditLog, Integrity};

impl AuditLog {
    /// Re-reads the stored log and checks it against the tree and every stored
    /// checkpoint. The tree is snapshotted and the checkpoints are read before the
    /// rows, and only that much is compared: entries committed and checkpoints signed
    /// meanwhile are not a problem (a checkpoint read after the rows could cover
    /// entries committed after them, and look like a log that shrank). Each problem is
    /// logged and counted in `kms_audit_integrity_failed_total`.
    pub async fn verify_stored(&self) -> Integrity {
        let mut integrity = Integrity::default();
        // The tree only grows: its first `known` leaves stay as they are now, so they
        // are compared after the rows are read, without a copy of the tree.
        let known = self.size();
        let checkpoints = self.store().checkpoints().await;
        let stored = match read_stored(self.store()).await {
            Ok(stored) => stored,
            Err(failure) => {
                integrity.failures.push(failure);
                self.report(&integrity);
                return integrity;
            }
        };
        integrity.entries = stored.rows;
        integrity.failures.extend(stored.failures);
        let leaves = stored.tree.size();
        if leaves < known {
            integrity.failures.push(format!(
                "the stored log has {leaves} entries; {known} were read from it before",
            ));
        }
        let differs = {
            let state = lock_read(&self.follower.state);
            (0..known.min(leaves)).find(|&i| state.tree.leaf(i) != stored.tree.leaf(i))
        };
        if let Some(index) = differs {
            integrity.failures.push(format!(
                "stored audit entry {index} differs from the one read before"
            ));
        }
        self.check_stored_checkpoints(checkpoints, &stored.tree, &mut integrity);
        self.report(&integrity);
        integrity
    }

    /// Each stored checkpoint against the stored log's tree (its root at the
    /// checkpoint's size: O(log n) from the tree's subtrees, where hashing the leaves
    /// anew for each of a day's checkpoints took over a minute at a million entries).
    fn check_stored_checkpoints(
        &self,
        checkpoints: Result<Vec<(u64, String)>, StoreError>,
        stored: &Tree,
        integrity: &mut Integrity,
    ) {
        let Some(signer) = self.signer() else {
            return;
        };
        let verifier = CheckpointVerifier::parse(&signer.verifier_key()).ok();
        match checkpoints {
            Err(e) => integrity
                .failures
                .push(format!("cannot read checkpoints: {e}")),
            Ok(checkpoints) => {
                for (size, note) in checkpoints {
                    let checked = verifier.as_ref().and_then(|v| v.verify(&note).ok());
                    let root = stored.root_at(size).ok();
                    match (checked, root) {
                        (Some(cp), Some(root)) if cp.root == root && cp.size == size => {}
                        (None, _) => integrity
                            .failures
                            .push(format!("checkpoint {size} does not verify")),
                        _ => integrity
                            .failures
                            .push(format!("the log no longer matches checkpoint {size}")),
                    }
                }
            }
        }
    }
}

/// The stored log as the self-check reads it.
struct Stored {
    /// Rows read.
    rows: u64,
    /// The tree of the rows that check, up to the first gap.
    tree: Tree,
    failures: Vec<String>,
}

/// Reads the stored log a chunk at a time, checking each row's index and link and
/// building the tree of their leaves. Parsing and hashing are seconds of CPU on a large
/// log: they run off the workers that serve requests. Rows past a gap are counted, not
/// checked (the gap is the failure).
async fn read_stored(store: &dyn Store) -> Result<Stored, String> {
    let mut stored = Stored {
        rows: 0,
        tree: Tree::new(),
        failures: Vec::new(),
    };
    let (mut from, mut position, mut gap) = (0u64, Some(Position::START), false);
    loop {
        let rows = store
            .audit_entries(from, follow::READ_CHUNK)
            .await
            .map_err(|e| format!("cannot read the audit log: {e}"))?;
        let Some((last, _)) = rows.last() else {
            return Ok(stored);
        };
        let full = rows.len() as u64 == follow::READ_CHUNK;
        stored.rows += rows.len() as u64;
        // Rows come in index order from `from` on; a store that broke that would have
        // this loop read the same chunk forever.
        from = last
            .checked_add(1)
            .filter(|next| *next > from)
            .ok_or_else(|| format!("the audit log was read out of order at entry {last}"))?;
        if let Some(at) = position.filter(|_| !gap) {
            let mut tree = std::mem::take(&mut stored.tree);
            let checked = tokio::task::spawn_blocking(move || {
                let (leaves, failures) = check_rows(at, &rows);
                let whole = leaves.len() == rows.len();
                for leaf in &leaves {
                    tree.push(*leaf);
                }
                (tree, failures, whole)
            })
            .await
            .map_err(|_| "the audit log check stopped before it ended".to_owned())?;
            let (tree, failures, whole) = checked;
            stored.tree = tree;
            stored.failures.extend(failures);
            gap = !whole;
            position = stored.tree.size().checked_sub(1).and_then(|i| {
                Some(Position {
                    next: i + 1,
                    prev: stored.tree.leaf(i)?,
                })
            });
        }
        if !full {
            return Ok(stored);
        }
    }
}
