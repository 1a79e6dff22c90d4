//! Integration tests of sealed custody, one binary (STYLE rule 12).
//!
//! - this file: helpers, the passphrase and key-file methods, wrap/unwrap rules, sealing.
//! - `sealed/shamir.rs`: the Shamir method.
//! - `sealed/rotation.rs`: root generations, rotation and retirement, concurrency.
//! - `sealed/hygiene.rs`: no secret in the state file or in `Debug`; the state file
//!   format on disk.
//! - `sealed/props.rs`: untrusted input never panics.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use coffer_core::{Custody, CustodyError, SealStatus};
use coffer_custody_sealed::{Argon2Params, Passphrase, SealedCustody, UnsealMethod};
use tempfile::TempDir;

/// The shared `Custody` conformance suite, on a key-file custody in a fresh directory
/// (the directory is kept for the process's life; tests are short).
mod conformance {
    use std::sync::Arc;

    use coffer_core::Custody;
    use coffer_custody_sealed::SealedCustody;

    async fn unsealed() -> Arc<dyn Custody> {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let custody =
            SealedCustody::init_key_file(dir.join("custody.json"), dir.join("unseal.key"))
                .expect("init");
        custody
            .unseal_key_file(dir.join("unseal.key"))
            .expect("unseal");
        Arc::new(custody)
    }

    coffer_core::custody_conformance!(unsealed);
}

#[path = "sealed/hygiene.rs"]
mod hygiene;
#[path = "sealed/props.rs"]
mod props;
#[path = "sealed/rotation.rs"]
mod rotation;
#[path = "sealed/shamir.rs"]
mod shamir;

/// Argon2id at its minimum cost: the tests check behaviour, not hardness.
fn cheap() -> Argon2Params {
    Argon2Params::new(64, 1, 1).expect("valid params")
}

fn pass(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned())
}

struct Paths {
    _dir: TempDir,
    state: PathBuf,
    key: PathBuf,
}

fn paths() -> Paths {
    let dir = tempfile::tempdir().expect("tempdir");
    Paths {
        state: dir.path().join("custody.json"),
        key: dir.path().join("unseal.key"),
        _dir: dir,
    }
}

/// A key-file custody, unsealed.
fn unsealed_key_file(p: &Paths) -> SealedCustody {
    let custody = SealedCustody::init_key_file(&p.state, &p.key).expect("init");
    custody.unseal_key_file(&p.key).expect("unseal");
    custody
}

fn assert_roundtrip(custody: &SealedCustody) {
    let wrapped = custody.wrap(b"row-1", b"tenant key bytes").expect("wrap");
    let secret = custody.unwrap(b"row-1", &wrapped).expect("unwrap");
    assert_eq!(secret.expose_secret(), b"tenant key bytes");
}

fn sealed(threshold: u8) -> SealStatus {
    SealStatus::Sealed {
        progress: 0,
        threshold,
    }
}

#[test]
fn passphrase_roundtrip_and_restart() {
    let p = paths();
    let custody =
        SealedCustody::init_passphrase_with(&p.state, &pass("correct horse"), cheap()).unwrap();
    assert_eq!(custody.method(), UnsealMethod::Passphrase);
    assert_eq!(custody.status(), sealed(1));
    custody.unseal_passphrase(&pass("correct horse")).unwrap();
    assert_eq!(custody.status(), SealStatus::Unsealed);
    assert_roundtrip(&custody);
    let old = custody.wrap(b"aad", b"kept across restart").unwrap();
    drop(custody);

    let reopened = SealedCustody::open(&p.state).unwrap();
    assert_eq!(reopened.status(), sealed(1));
    assert_eq!(reopened.method(), UnsealMethod::Passphrase);
    reopened.unseal_passphrase(&pass("correct horse")).unwrap();
    let secret = reopened.unwrap(b"aad", &old).unwrap();
    assert_eq!(secret.expose_secret(), b"kept across restart");
}

#[test]
fn wrong_passphrase_fails_and_changes_nothing() {
    let p = paths();
    let custody = SealedCustody::init_passphrase_with(&p.state, &pass("right"), cheap()).unwrap();
    let before = fs::read(&p.state).unwrap();
    let err = custody.unseal_passphrase(&pass("wrong")).unwrap_err();
    assert!(
        matches!(err, CustodyError::UnsealFailed(m) if m.contains("passphrase")),
        "{err}"
    );
    assert!(
        !err.to_string().contains("wrong\""),
        "no passphrase in {err}"
    );
    assert_eq!(custody.status(), sealed(1));
    assert_eq!(fs::read(&p.state).unwrap(), before);
    custody.unseal_passphrase(&pass("right")).unwrap();
    assert_roundtrip(&custody);
}

#[test]
fn passphrase_params_default_to_owasp_and_are_checked() {
    let params = Argon2Params::default();
    assert_eq!(params, Argon2Params::OWASP);
    assert_eq!(
        (
            params.memory_kib(),
            params.iterations(),
            params.parallelism()
        ),
        (19_456, 2, 1)
    );
    assert!(matches!(
        Argon2Params::new(1, 1, 1),
        Err(CustodyError::Config(_))
    ));
    let p = paths();
    let err = SealedCustody::init_passphrase_with(&p.state, &pass(""), cheap()).unwrap_err();
    assert!(matches!(err, CustodyError::Config(_)), "{err}");
}

#[test]
fn key_file_roundtrip_and_restart() {
    let p = paths();
    let custody = unsealed_key_file(&p);
    assert_eq!(custody.method(), UnsealMethod::KeyFile);
    let mode = fs::metadata(&p.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(fs::read(&p.key).unwrap().len(), 32);
    assert_roundtrip(&custody);
    let old = custody.wrap(b"aad", b"kept").unwrap();
    drop(custody);

    let reopened = SealedCustody::open(&p.state).unwrap();
    assert_eq!(reopened.status(), sealed(1));
    reopened.unseal_key_file(&p.key).unwrap();
    assert_eq!(
        reopened.unwrap(b"aad", &old).unwrap().expose_secret(),
        b"kept"
    );
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let p = paths();
    let custody = SealedCustody::init_key_file(&p.state, &p.key).unwrap();
    fs::set_permissions(&p.key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = custody.unseal_key_file(&p.key).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, CustodyError::Config(_)), "{message}");
    assert!(message.contains(&p.key.display().to_string()), "{message}");
    assert!(message.contains("0644"), "{message}");
    assert_eq!(custody.status(), sealed(1));
}

#[test]
fn wrong_key_file_fails() {
    let (p, other) = (paths(), paths());
    let custody = SealedCustody::init_key_file(&p.state, &p.key).unwrap();
    SealedCustody::init_key_file(&other.state, &other.key).unwrap();
    let err = custody.unseal_key_file(&other.key).unwrap_err();
    assert!(matches!(err, CustodyError::UnsealFailed(_)), "{err}");
    fs::write(&other.key, b"short").unwrap();
    let err = custody.unseal_key_file(&other.key).unwrap_err();
    assert!(matches!(err, CustodyError::UnsealFailed(_)), "{err}");
    assert_eq!(custody.status(), sealed(1));
}

#[test]
fn init_refuses_to_replace_existing_files() {
    let p = paths();
    SealedCustody::init_key_file(&p.state, &p.key).unwrap();
    let before = fs::read(&p.state).unwrap();
    let err = SealedCustody::init_passphrase_with(&p.state, &pass("x"), cheap()).unwrap_err();
    assert!(matches!(err, CustodyError::Config(_)), "{err}");
    let err = SealedCustody::init_shamir(&p.state, 3, 2).unwrap_err();
    assert!(matches!(err, CustodyError::Config(_)), "{err}");
    assert_eq!(fs::read(&p.state).unwrap(), before);

    let q = paths();
    let err = SealedCustody::init_key_file(&q.state, &p.key).unwrap_err();
    assert!(matches!(err, CustodyError::Config(_)), "{err}");
    assert!(!q.state.exists());
}

#[test]
fn wrong_method_is_a_config_error() {
    let p = paths();
    let custody = SealedCustody::init_key_file(&p.state, &p.key).unwrap();
    for err in [
        custody.submit_share("coffer-share-v1:AAAA").unwrap_err(),
        custody.unseal_passphrase(&pass("x")).unwrap_err(),
    ] {
        assert!(matches!(err, CustodyError::Config(_)), "{err}");
    }
}

#[test]
fn sealed_custody_refuses_to_wrap_and_unwrap() {
    let p = paths();
    let custody = SealedCustody::init_key_file(&p.state, &p.key).unwrap();
    assert!(matches!(
        custody.wrap(b"a", b"s"),
        Err(CustodyError::Sealed(_))
    ));
    custody.unseal_key_file(&p.key).unwrap();
    let wrapped = custody.wrap(b"a", b"s").unwrap();
    custody.seal();
    assert_eq!(custody.status(), sealed(1));
    assert!(matches!(
        custody.wrap(b"a", b"s"),
        Err(CustodyError::Sealed(_))
    ));
    assert!(matches!(
        custody.unwrap(b"a", &wrapped),
        Err(CustodyError::Sealed(_))
    ));
    assert!(matches!(
        custody.rotate_root(),
        Err(CustodyError::Sealed(_))
    ));
    // Still answerable while sealed: it needs no key.
    assert!(!custody.needs_rewrap(&wrapped));
}

#[test]
fn tampered_or_misbound_blobs_do_not_unwrap() {
    let p = paths();
    let custody = unsealed_key_file(&p);
    assert_eq!(custody.kind(), "sealed");
    let wrapped = custody.wrap(b"tenant/1/key/2", b"secret").unwrap();
    assert_eq!(&wrapped[..4], &1u32.to_be_bytes());

    let err = custody.unwrap(b"tenant/1/key/3", &wrapped).unwrap_err();
    assert!(matches!(err, CustodyError::Unwrap(_)), "{err}");
    for index in 0..wrapped.len() {
        let mut flipped = wrapped.clone();
        flipped[index] ^= 0x01;
        let err = custody.unwrap(b"tenant/1/key/2", &flipped).unwrap_err();
        assert!(
            matches!(err, CustodyError::Unwrap(_)),
            "bit at {index}: {err}"
        );
    }
    for cut in [0, 3, 4, 20, wrapped.len() - 1] {
        let err = custody
            .unwrap(b"tenant/1/key/2", &wrapped[..cut])
            .unwrap_err();
        assert!(matches!(err, CustodyError::Unwrap(_)), "cut {cut}: {err}");
    }
}

/// The state file's bytes, for tests that compare it before and after.
fn state_bytes(path: &Path) -> Vec<u8> {
    fs::read(path).expect("state file")
}
