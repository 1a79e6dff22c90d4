//! Keeping secrets out of core dumps. A process that holds the unseal key, tenant keys,
//! plaintexts and bearer tokens must not write its memory to disk when it crashes or
//! when someone with a debugger asks: the core-size limit goes to zero (soft and hard,
//! so the process cannot raise it again) and, on Linux, the process is marked not
//! dumpable (no core, no ptrace attach by the same user, `/proc/PID/mem` closed).
//! Done first thing in every `coffer` process, before any secret is loaded.

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

#[cfg(test)]
mod tests {
    use rustix::process::{Resource, getrlimit};

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
