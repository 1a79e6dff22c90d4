//! Tenants' counts kept from one group of key creations to the next (SQLite only), so
//! a group does not count a large tenant's keys again when nothing else wrote since:
//! counting is a scan of the tenant's keys, a few milliseconds at tens of thousands.
//!
//! Exact because SQLite has one writer connection here, in one process (the assumption
//! the in-memory audit head makes too, `audit::AuditHead::Memory`): every other write
//! runs through `in_transaction!`, which counts itself in [`WriterHealth::writes`]
//! while it holds that connection. A group that finds that number where the group that
//! kept the counts left it knows nothing else wrote in between, so the kept counts
//! (with what that group committed) are still the database's. Audit appends
//! (`append_batch`) are not counted: they change no key or alias.
//!
//! PostgreSQL keeps nothing: other replicas write to the same tables, and each group
//! counts under the tenant's row lock.
//!
//! [`WriterHealth::writes`]: crate::health::WriterHealth::writes

use super::Tallies;
use crate::Backend;

/// The counts kept by the last group that committed, and when.
pub struct KeptCounts {
    backend: Backend,
    kept: Option<Kept>,
}

struct Kept {
    /// [`crate::health::WriterHealth::writes`] when the group that kept them began.
    writes: u64,
    tallies: Tallies,
}

impl KeptCounts {
    /// Nothing kept yet; on PostgreSQL, never anything.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            kept: None,
        }
    }

    /// The counts still true for a group that begins when `writes` other writes have
    /// begun (none if another write ran since they were kept). Taken: a group that
    /// fails keeps nothing.
    pub fn take(&mut self, writes: u64) -> Tallies {
        match self.kept.take() {
            Some(kept) if kept.writes == writes => kept.tallies,
            _ => Tallies::new(),
        }
    }

    /// Keeps `tallies`, the counts after a group that began at `writes` committed.
    pub fn keep(&mut self, writes: u64, tallies: Tallies) {
        if self.backend == Backend::Sqlite {
            self.kept = Some(Kept { writes, tallies });
        }
    }
}

#[cfg(test)]
mod tests {
    use coffer_core::TenantId;

    use super::*;

    fn one_tenant() -> Tallies {
        Tallies::from([(TenantId::generate(), None)])
    }

    #[test]
    fn counts_are_kept_until_another_write_begins() {
        let mut kept = KeptCounts::new(Backend::Sqlite);
        kept.keep(7, one_tenant());
        assert_eq!(kept.take(7).len(), 1, "nothing wrote since");
        assert!(kept.take(7).is_empty(), "taken once");
        kept.keep(7, one_tenant());
        assert!(kept.take(8).is_empty(), "another write began since");
    }

    #[test]
    fn postgresql_keeps_nothing() {
        let mut kept = KeptCounts::new(Backend::Postgres);
        kept.keep(7, one_tenant());
        assert!(kept.take(7).is_empty());
    }
}
