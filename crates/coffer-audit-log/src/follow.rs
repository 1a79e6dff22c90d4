//! The tree over the stored log, followed in index order: this process's batches,
//! the entries state changes wrote in their own transactions, and other replicas'.

use std::sync::{Arc, RwLock};

use coffer_audit::merkle::{Hash, Tree};
use coffer_core::{Appended, Store, StoreError};

use crate::chain::{Position, check_rows};

/// Rows read per query.
pub(crate) const READ_CHUNK: u64 = 10_000;

/// The tree over the stored log as far as this process has read it.
pub(crate) struct Followed {
    pub(crate) tree: Tree,
    pub(crate) prev: Hash,
}

impl Followed {
    pub(crate) fn position(&self) -> Position {
        Position {
            next: self.tree.size(),
            prev: self.prev,
        }
    }

    pub(crate) fn push(&mut self, leaves: &[Hash]) {
        for leaf in leaves {
            self.tree.push(*leaf);
            self.prev = *leaf;
        }
    }
}

/// Reads the stored log into the tree, in index order, one follower at a time.
pub(crate) struct Follower {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) state: RwLock<Followed>,
    /// Held while reading and pushing, so two followers never push the same rows.
    pub(crate) turn: tokio::sync::Mutex<()>,
}

impl Follower {
    /// Reads rows `[tree size, until)` (everything stored when `until` is `None`).
    async fn catch_up(&self, until: Option<u64>) -> Result<Vec<String>, StoreError> {
        let mut failures = Vec::new();
        loop {
            let from = lock_read(&self.state).position();
            let want = until.map_or(READ_CHUNK, |u| u.saturating_sub(from.next).min(READ_CHUNK));
            if want == 0 {
                return Ok(failures);
            }
            let rows = self.store.audit_entries(from.next, want).await?;
            let (leaves, problems) = check_rows(from, &rows);
            lock_write(&self.state).push(&leaves);
            let stop = !problems.is_empty() || (rows.len() as u64) < want;
            failures.extend(problems);
            if stop {
                return Ok(failures);
            }
        }
    }

    /// Follows everything stored.
    pub(crate) async fn sync(&self) -> Result<Vec<String>, StoreError> {
        let _turn = self.turn.lock().await;
        self.catch_up(None).await
    }

    /// Adds this process's committed batch, after whatever others committed before it.
    pub(crate) async fn absorb(&self, appended: &Appended) -> Result<Vec<String>, StoreError> {
        let _turn = self.turn.lock().await;
        let failures = self.catch_up(Some(appended.first)).await?;
        let mut state = lock_write(&self.state);
        if state.tree.size() == appended.first {
            state.push(&appended.leaves);
        }
        // Otherwise a sync already read these rows (or a gap stopped it, reported).
        Ok(failures)
    }
}

pub(crate) fn lock_read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn lock_write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
