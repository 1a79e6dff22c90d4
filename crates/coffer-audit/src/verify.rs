//! The offline verifier: an exported log (one [`ExportedEntry`] of JSON per line)
//! against a signed checkpoint, without the server.
//!
//! Detection rests on the Merkle root the checkpoint signs: any edit, deletion,
//! reordering, insertion or truncation of the covered entries changes it. Naming the
//! first bad entry rests on the index field and the previous-leaf chain:
//! - an entry whose index is not its position: deleted, swapped or inserted entries
//!   (an index equal to the position before it means an entry was inserted there);
//! - an entry whose `prev` is not the previous leaf's hash: the previous entry was edited;
//! - fewer entries than the checkpoint covers: the tail was cut.

use crate::checkpoint::{Checkpoint, CheckpointVerifier};
use crate::entry::{ExportedEntry, hex};
use crate::merkle::{Hash, root_of};

/// A log that matches its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLog {
    /// The checkpoint (signature checked).
    pub checkpoint: Checkpoint,
    /// Entries read (may exceed the checkpoint's size: newer entries are not covered).
    pub entries: u64,
}

/// Why a log does not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct VerifyFailure {
    /// The first entry that does not match, when it can be named.
    pub first_bad_index: Option<u64>,
    /// What is wrong, for people.
    pub reason: String,
}

fn fail(index: Option<u64>, reason: String) -> VerifyFailure {
    VerifyFailure {
        first_bad_index: index,
        reason,
    }
}

/// Checks `log` (JSON lines) against the signed `checkpoint_note` under `verifier`.
pub fn verify_log(
    log: &str,
    checkpoint_note: &str,
    verifier: &CheckpointVerifier,
) -> Result<VerifiedLog, VerifyFailure> {
    let mut reader = LogVerifier::new(checkpoint_note, verifier)?;
    for line in log.lines() {
        reader.push(line)?;
    }
    reader.finish()
}

/// [`verify_log`] one line at a time, for a log read in pages: it keeps the leaf hashes
/// (32 bytes an entry), never the entries.
#[derive(Debug)]
pub struct LogVerifier {
    checkpoint: Checkpoint,
    leaves: Vec<Hash>,
    prev: Hash,
}

impl LogVerifier {
    /// Starts a check against `checkpoint_note`, whose signature is checked first: a
    /// forged checkpoint fails before any entry is read.
    pub fn new(
        checkpoint_note: &str,
        verifier: &CheckpointVerifier,
    ) -> Result<Self, VerifyFailure> {
        let checkpoint = verifier
            .verify(checkpoint_note)
            .map_err(|e| fail(None, format!("the checkpoint is not trustworthy: {e}")))?;
        Ok(Self {
            checkpoint,
            leaves: Vec::new(),
            prev: [0; 32],
        })
    }

    /// Checks the next line of the log (blank lines are skipped).
    pub fn push(&mut self, line: &str) -> Result<(), VerifyFailure> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let p = self.leaves.len() as u64;
        let entry: ExportedEntry = serde_json::from_str(line)
            .map_err(|_| fail(Some(p), format!("entry {p} does not parse")))?;
        if entry.index != p {
            return Err(if p > 0 && entry.index == p - 1 {
                fail(
                    Some(p - 1),
                    format!("an entry was inserted at index {}", p - 1),
                )
            } else {
                fail(
                    Some(p),
                    format!(
                        "entry {p} is missing or out of order (found index {} there)",
                        entry.index
                    ),
                )
            });
        }
        if entry.prev != hex(&self.prev) {
            return Err(if p == 0 {
                fail(Some(0), "entry 0 does not start the chain".into())
            } else {
                fail(
                    Some(p - 1),
                    format!(
                        "entry {} was modified (entry {p} no longer links to it)",
                        p - 1
                    ),
                )
            });
        }
        self.prev = entry.leaf_hash();
        self.leaves.push(self.prev);
        Ok(())
    }

    /// Checks the lines read so far cover the checkpoint and hash to its root.
    pub fn finish(self) -> Result<VerifiedLog, VerifyFailure> {
        let Self {
            checkpoint, leaves, ..
        } = self;
        let size = usize::try_from(checkpoint.size).unwrap_or(usize::MAX);
        if leaves.len() < size {
            return Err(fail(
                Some(leaves.len() as u64),
                format!(
                    "the log ends after {} entries but the checkpoint covers {}: the tail was cut",
                    leaves.len(),
                    checkpoint.size
                ),
            ));
        }
        if root_of(&leaves[..size]) != checkpoint.root {
            // The chain held, so either the last covered entry was edited or the whole
            // chain was recomputed; either way the log is not the one the checkpoint signed.
            return Err(fail(
                Some(checkpoint.size.saturating_sub(1)),
                format!(
                    "the root over the first {} entries does not match the checkpoint",
                    checkpoint.size
                ),
            ));
        }
        Ok(VerifiedLog {
            checkpoint,
            entries: leaves.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use coffer_crypto::{KeyMaterial, KeySpec};

    use super::*;
    use crate::checkpoint::CheckpointSigner;
    use crate::entry::AuditEntry;

    fn build(n: u64) -> (Vec<ExportedEntry>, String, CheckpointVerifier) {
        let mut prev = [0u8; 32];
        let mut entries = Vec::new();
        for i in 0..n {
            let entry = AuditEntry {
                at: 1_700_000_000_000 + i as i64,
                tenant: "t".into(),
                principal: "p".into(),
                op: if i % 2 == 0 {
                    "wrap".into()
                } else {
                    "unwrap".into()
                },
                key: Some("k".into()),
                version: Some(1),
                outcome: "ok".into(),
                request_id: format!("r{i}"),
                detail: None,
            };
            let exported = ExportedEntry::new(i, &prev, entry);
            prev = exported.leaf_hash();
            entries.push(exported);
        }
        let KeyMaterial::Signing(key) = KeyMaterial::generate(KeySpec::Ed25519).unwrap() else {
            unreachable!()
        };
        let signer = CheckpointSigner::new("coffer-audit", key).unwrap();
        let root = root_of(
            &entries
                .iter()
                .map(ExportedEntry::leaf_hash)
                .collect::<Vec<_>>(),
        );
        let note = signer
            .sign(&Checkpoint {
                origin: "coffer/test".into(),
                size: n,
                root,
            })
            .unwrap();
        (
            entries,
            note,
            CheckpointVerifier::parse(&signer.verifier_key()).unwrap(),
        )
    }

    fn lines(entries: &[ExportedEntry]) -> String {
        entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect()
    }

    #[test]
    fn an_untouched_log_verifies() {
        let (entries, note, verifier) = build(10);
        assert_eq!(
            verify_log(&lines(&entries), &note, &verifier)
                .unwrap()
                .entries,
            10
        );
    }

    #[test]
    fn every_kind_of_tampering_names_the_first_bad_entry() {
        let (entries, note, verifier) = build(10);
        let check = |log: Vec<ExportedEntry>, expected: u64| {
            let failure = verify_log(&lines(&log), &note, &verifier).unwrap_err();
            assert_eq!(
                failure.first_bad_index,
                Some(expected),
                "{}",
                failure.reason
            );
        };
        let mut edited = entries.clone();
        edited[4].entry.op = "datakey".into();
        check(edited, 4);
        let mut deleted = entries.clone();
        deleted.remove(6);
        check(deleted, 6);
        let mut swapped = entries.clone();
        swapped.swap(2, 5);
        check(swapped, 2);
        check(entries[..7].to_vec(), 7);
        let mut inserted = entries.clone();
        let forged = ExportedEntry::new(3, &entries[2].leaf_hash(), entries[3].entry.clone());
        inserted.insert(
            3,
            ExportedEntry {
                entry: AuditEntry {
                    op: "sign".into(),
                    ..forged.entry.clone()
                },
                ..forged
            },
        );
        check(inserted, 3);
        let mut last = entries.clone();
        last[9].entry.outcome = "forbidden".into();
        check(last, 9);
    }

    #[test]
    fn line_by_line_agrees_with_the_whole_log() {
        let (entries, note, verifier) = build(10);
        let mut reader = LogVerifier::new(&note, &verifier).unwrap();
        for entry in &entries {
            reader.push(&serde_json::to_string(entry).unwrap()).unwrap();
        }
        assert_eq!(
            reader.finish().unwrap(),
            verify_log(&lines(&entries), &note, &verifier).unwrap()
        );
        let mut cut = LogVerifier::new(&note, &verifier).unwrap();
        for entry in &entries[..9] {
            cut.push(&serde_json::to_string(entry).unwrap()).unwrap();
        }
        assert_eq!(cut.finish().unwrap_err().first_bad_index, Some(9));
    }

    #[test]
    fn a_forged_checkpoint_is_refused() {
        let (entries, note, _) = build(3);
        let (_, _, other_verifier) = build(1);
        let failure = verify_log(&lines(&entries), &note, &other_verifier).unwrap_err();
        assert_eq!(failure.first_bad_index, None);
    }
}
