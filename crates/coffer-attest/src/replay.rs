//! The nonces already presented, each kept until its document is too old to pass the
//! age check, so a captured document cannot be presented twice.
//!
//! Kept per process: replicas do not share it (docs/attestation.md, "not covered").
//! Keyed by SHA-256 of format and nonce, so memory per entry is fixed whatever the
//! nonce's length. Bounded: when full after dropping expired entries, new documents are
//! refused (`Busy`) rather than old entries dropped early, which would reopen replay.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest;

use crate::{AttestError, Format};

/// Entries kept at most (about 100 bytes each).
pub(crate) const CAPACITY: usize = 200_000;

pub(crate) struct Seen {
    entries: Mutex<HashMap<[u8; 32], i64>>,
    capacity: usize,
}

impl Seen {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Remembers `nonce` until `forget_at`; `Replayed` if it is remembered already.
    pub(crate) fn first_use(
        &self,
        format: Format,
        nonce: &[u8],
        forget_at: i64,
        now_ms: i64,
    ) -> Result<(), AttestError> {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(format.as_str().as_bytes());
        ctx.update(&[0]);
        ctx.update(nonce);
        let mut id = [0u8; 32];
        id.copy_from_slice(ctx.finish().as_ref());
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(until) = entries.get(&id)
            && *until >= now_ms
        {
            return Err(AttestError::Replayed);
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, until| *until >= now_ms);
            if entries.len() >= self.capacity {
                return Err(AttestError::Busy);
            }
        }
        entries.insert(id, forget_at);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_the_second_time_until_it_expires() {
        let seen = Seen::new(10);
        seen.first_use(Format::Nitro, b"nonce-01", 1_000, 0)
            .unwrap();
        assert_eq!(
            seen.first_use(Format::Nitro, b"nonce-01", 1_000, 500),
            Err(AttestError::Replayed)
        );
        // The same bytes in another format are another nonce.
        seen.first_use(Format::CofferTest, b"nonce-01", 1_000, 500)
            .unwrap();
        // Once expired the document would be stale anyway; the entry may go.
        seen.first_use(Format::Nitro, b"nonce-01", 3_000, 1_001)
            .unwrap();
    }

    #[test]
    fn a_full_memory_drops_expired_entries_and_refuses_when_none_expired() {
        let seen = Seen::new(2);
        seen.first_use(Format::Nitro, b"a-nonce-1", 100, 0).unwrap();
        seen.first_use(Format::Nitro, b"a-nonce-2", 1_000, 0)
            .unwrap();
        assert_eq!(
            seen.first_use(Format::Nitro, b"a-nonce-3", 1_000, 50),
            Err(AttestError::Busy)
        );
        // At 200 the first has expired and makes room.
        seen.first_use(Format::Nitro, b"a-nonce-3", 1_000, 200)
            .unwrap();
        assert_eq!(
            seen.first_use(Format::Nitro, b"a-nonce-2", 1_000, 200),
            Err(AttestError::Replayed)
        );
    }
}
