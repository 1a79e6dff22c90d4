//! Keeping secrets out of core dumps. A process that holds the unseal key, tenant keys,
//! plaintexts and bearer tokens must not write its memory to disk when it crashes or
//! when someone with a debugger asks: the core-size limit goes to zero (soft and hard,
//! so the process cannot raise it again) and, on Linux, the process is marked not
//! dumpable (no core, no ptrace attach by the same user, `/proc/PID/mem` closed).
//! Done first thing in every `coffer` process, before any secret is loaded.
//!
//! Raw keys also live in pages locked in memory (`coffer_crypto::secret::locked_memory`);
//! [`report_locked_memory`] exports how many of those pages the OS refused to lock and
//! warns once when it did.

use std::sync::atomic::{AtomicBool, Ordering};

use coffer_crypto::secret::{LockedMemory, locked_memory};

use rustix::process::{Resource, Rlimit, setrlimit};
use thiserror::Error;

/// The process could not be hardened.
#[derive(Debug, Error)]
#[error("cannot disable core dumps ({what}): {source}")]
pub struct HardeningError {
    what: &'static str,
    source: rustix::io::Errno,
}

/// Disables core dumps for this process and its children.
pub fn forbid_core_dumps() -> Result<(), HardeningError> {
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    setrlimit(Resource::Core, zero).map_err(|source| HardeningError {
        what: "RLIMIT_CORE",
        source,
    })?;
    #[cfg(target_os = "linux")]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|source| HardeningError {
            what: "PR_SET_DUMPABLE",
            source,
        })?;
    Ok(())
}

/// Sets `kms_secret_pages_locked` and `kms_secret_pages_unlocked`, and warns (once per
/// process) when the OS refused to lock a page of raw keys.
pub fn report_locked_memory() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    report(locked_memory(), &WARNED);
}

/// True when this call warned.
fn report(status: LockedMemory, warned: &AtomicBool) -> bool {
    metrics::gauge!("kms_secret_pages_locked").set(status.locked_pages as f64);
    metrics::gauge!("kms_secret_pages_unlocked").set(status.unlocked_pages as f64);
    if status.unlocked_pages == 0 || warned.swap(true, Ordering::Relaxed) {
        return false;
    }
    tracing::warn!(
        unlocked_pages = status.unlocked_pages,
        "the OS refused to lock memory holding raw keys (RLIMIT_MEMLOCK); they may be \
         swapped to disk. Raise the limit (LimitMEMLOCK= in systemd) or grant CAP_IPC_LOCK"
    );
    true
}

#[cfg(test)]
mod tests {
    use rustix::process::{Resource, getrlimit};

    use super::*;

    #[test]
    fn a_refused_lock_warns_once() {
        let warned = AtomicBool::new(false);
        let locked = LockedMemory {
            locked_pages: 2,
            unlocked_pages: 0,
        };
        assert!(!report(locked, &warned));
        let refused = LockedMemory {
            locked_pages: 2,
            unlocked_pages: 1,
        };
        assert!(report(refused, &warned));
        assert!(!report(refused, &warned));
    }

    #[test]
    fn the_process_writes_no_core() {
        super::forbid_core_dumps().unwrap();
        let limit = getrlimit(Resource::Core);
        assert_eq!((limit.current, limit.maximum), (Some(0), Some(0)));
        #[cfg(target_os = "linux")]
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}
