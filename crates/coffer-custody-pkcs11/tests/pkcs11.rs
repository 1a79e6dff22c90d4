//! Integration tests of PKCS#11 custody against SoftHSM2, one binary (STYLE rule 12).
//!
//! - this file: the shared conformance suite, init and open, the PIN, the pool.
//! - `pkcs11/softhsm.rs`: tokens in a temp directory.

#[path = "pkcs11/softhsm.rs"]
mod softhsm;

use std::sync::Arc;

use coffer_core::Custody;
use coffer_custody_pkcs11::Pkcs11Custody;

async fn fresh() -> Option<Arc<dyn Custody>> {
    let hsm = softhsm::softhsm()?;
    let label = hsm.new_token();
    let custody = Pkcs11Custody::init(hsm.config(&label)).expect("init");
    Some(custody)
}

/// The shared `Custody` conformance suite, each case on a fresh token.
mod conformance {
    async fn custody() -> std::sync::Arc<dyn coffer_core::Custody> {
        super::fresh()
            .await
            .expect("SoftHSM required for this case")
    }
    coffer_core::custody_conformance!(custody);
}
