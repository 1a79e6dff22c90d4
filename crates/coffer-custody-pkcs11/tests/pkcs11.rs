//! Integration tests of PKCS#11 custody against SoftHSM2, one binary (STYLE rule 12).
//!
//! - this file: the shared conformance suite, init and open, the PIN, the pool.
//! - `pkcs11/keys.rs`: HSM-resident keys (`KeyHsm`).
//! - `pkcs11/softhsm.rs`: tokens in a temp directory.

#[path = "pkcs11/keys.rs"]
mod hsm_keys;
#[path = "pkcs11/softhsm.rs"]
mod softhsm;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use coffer_core::Custody;
use coffer_custody_pkcs11::{Pin, Pkcs11Custody, Pkcs11Error};

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

/// A second process (here: a second custody) opens the root `init` made; `init` refuses
/// a token that already has one, `open` refuses a token that has none.
#[tokio::test]
async fn open_finds_the_root_init_made() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let label = hsm.new_token();
    assert!(matches!(
        Pkcs11Custody::open(hsm.config(&label)),
        Err(Pkcs11Error::NoRootKey(_))
    ));
    let made = Pkcs11Custody::init(hsm.config(&label)).expect("init");
    let wrapped = made.wrap(b"aad", b"kept in the token").expect("wrap");
    assert!(matches!(
        Pkcs11Custody::init(hsm.config(&label)),
        Err(Pkcs11Error::RootKeyExists(_))
    ));
    let opened = Pkcs11Custody::open(hsm.config(&label)).expect("open");
    assert_eq!(
        opened
            .unwrap(b"aad", &wrapped)
            .expect("unwrap")
            .expose_secret(),
        b"kept in the token"
    );
    let health = opened.health();
    assert!(health.up);
    assert_eq!(health.roots.len(), 1);
    assert_eq!(health.token_label.as_deref(), Some(label.as_str()));
}

/// A wrong PIN is a login failure (not a retryable outage), and no error or `Debug`
/// output carries the PIN.
#[tokio::test]
async fn a_wrong_pin_is_refused_and_never_printed() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let label = hsm.new_token();
    let mut config = hsm.config(&label);
    config.pin = Pin::new("wrong-pin-0000".to_owned());
    let error = Pkcs11Custody::init(config.clone()).expect_err("wrong PIN");
    assert!(matches!(error, Pkcs11Error::Login(_)), "{error}");
    assert!(!error.to_string().contains("wrong-pin-0000"));
    assert!(!format!("{config:?}").contains("wrong-pin-0000"));
    let custody = Pkcs11Custody::init(hsm.config(&label)).expect("right PIN");
    assert!(!format!("{custody:?}").contains(softhsm::PIN));
}

/// The PIN file must be the owner's alone.
#[test]
fn pin_files_must_be_private() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("pin");
    std::fs::write(&path, "1234\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(Pin::from_file(&path), Err(Pkcs11Error::Config(_))));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(Pin::from_file(&path).is_ok());
}

/// Many concurrent callers never open more sessions than the pool's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_pool_is_bounded() {
    let Some(hsm) = softhsm::softhsm() else {
        return;
    };
    let label = hsm.new_token();
    let mut config = hsm.config(&label);
    config.pool_size = 2;
    let custody = Pkcs11Custody::init(config).expect("init");
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (custody, peak) = (custody.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let wrapped = custody.wrap(&[i], &[i; 16]).expect("wrap");
                custody.unwrap(&[i], &wrapped).expect("unwrap");
                let open = custody.health().pool.expect("up").open;
                peak.fetch_max(open, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=2).contains(&peak), "peak {peak}");
    assert_eq!(custody.health().pool.expect("up").max, 2);
}
