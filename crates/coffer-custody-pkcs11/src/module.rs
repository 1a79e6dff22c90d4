//! The process's PKCS#11 contexts, one per module path.
//!
//! Why shared: a module may be initialised once per process (a second `C_Initialize`
//! fails), so every custody on the same module uses one context. Why it can be
//! reloaded: some modules (SoftHSM among them) look for tokens only in `C_Initialize`,
//! so a token that came back is seen only after the context is finalised and loaded
//! again. Reloading finalises only once the last session on the old context closed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, Pkcs11};

use crate::error::Pkcs11Error;

/// A context and the number of its load, so a reload drops only the load it saw fail.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) pkcs11: Pkcs11,
    pub(crate) load: u64,
}

struct Registry {
    loaded: HashMap<PathBuf, Context>,
    loads: u64,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Mutex::new(Registry {
            loaded: HashMap::new(),
            loads: 0,
        })
    })
}

/// The context of `module`, loading and initialising it on first use.
pub(crate) fn context(module: &Path) -> Result<Context, Pkcs11Error> {
    let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(context) = registry.loaded.get(module) {
        return Ok(context.clone());
    }
    let failed = |reason: String| Pkcs11Error::Module {
        path: module.display().to_string(),
        reason,
    };
    let pkcs11 = Pkcs11::new(module).map_err(|e| failed(e.to_string()))?;
    // OS threads: the pool calls the module from several blocking threads at once.
    pkcs11
        .initialize(CInitializeArgs::OsThreads)
        .map_err(|e| failed(e.to_string()))?;
    registry.loads += 1;
    let context = Context {
        pkcs11,
        load: registry.loads,
    };
    registry.loaded.insert(module.to_owned(), context.clone());
    Ok(context)
}

/// Forgets `module`'s context if it is still load `load`: the next [`context`] loads
/// it afresh once every session on the old one has closed.
pub(crate) fn reload(module: &Path, load: u64) {
    let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if registry.loaded.get(module).is_some_and(|c| c.load == load) {
        registry.loaded.remove(module);
    }
}

/// Forgets whatever context `module` has: after a failed reconnect, so the next attempt
/// initialises the module again and sees a token that came back meanwhile.
pub(crate) fn forget(module: &Path) {
    let mut registry = registry().lock().unwrap_or_else(PoisonError::into_inner);
    registry.loaded.remove(module);
}
