//! Stored rows → leaf hashes, checking that each row sits at its index and links to the
//! leaf before it.

use coffer_audit::entry::{ExportedEntry, hex};
use coffer_audit::merkle::{Hash, leaf_hash};

/// Where a run of rows starts: the index of its first row and the previous leaf's hash.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    pub next: u64,
    pub prev: Hash,
}

impl Position {
    pub const START: Self = Self {
        next: 0,
        prev: [0; 32],
    };
}

/// Checks `rows` as the continuation of the log at `from`; returns the leaf hashes of
/// the rows that check (up to the first gap) and the problems found.
pub fn check_rows(from: Position, rows: &[(u64, String)]) -> (Vec<Hash>, Vec<String>) {
    let mut leaves = Vec::with_capacity(rows.len());
    let mut failures = Vec::new();
    let mut prev = from.prev;
    for (offset, (index, leaf)) in rows.iter().enumerate() {
        let position = from.next + offset as u64;
        if *index != position {
            failures.push(format!(
                "audit entry {position} is missing or out of order (found {index})"
            ));
            break;
        }
        match serde_json::from_str::<ExportedEntry>(leaf) {
            Ok(entry) if entry.index == position && entry.prev == hex(&prev) => {}
            Ok(_) => failures.push(format!(
                "audit entry {position} does not link to its predecessor"
            )),
            Err(_) => failures.push(format!("audit entry {position} does not parse")),
        }
        prev = leaf_hash(leaf.as_bytes());
        leaves.push(prev);
    }
    (leaves, failures)
}
