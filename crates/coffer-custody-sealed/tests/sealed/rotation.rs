//! Root generations: rotation, retirement, restart, and rotation under concurrent use.

use std::sync::Arc;
use std::thread;

use coffer_core::{Custody, CustodyError};
use coffer_custody_sealed::SealedCustody;

use super::{paths, unsealed_key_file};

#[test]
fn rotation_keeps_old_blobs_and_flags_them_for_rewrap() {
    let p = paths();
    let custody = unsealed_key_file(&p);
    let old = custody.wrap(b"aad", b"old secret").unwrap();
    assert!(!custody.needs_rewrap(&old));

    assert_eq!(custody.rotate_root().unwrap(), 2);
    let new = custody.wrap(b"aad", b"new secret").unwrap();
    assert_eq!(&new[..4], &2u32.to_be_bytes());
    assert!(custody.needs_rewrap(&old));
    assert!(!custody.needs_rewrap(&new));
    assert!(
        !custody.needs_rewrap(b"abc"),
        "too short to name a generation"
    );
    assert_eq!(
        custody.unwrap(b"aad", &old).unwrap().expose_secret(),
        b"old secret"
    );
    assert_eq!(
        custody.unwrap(b"aad", &new).unwrap().expose_secret(),
        b"new secret"
    );
    // A blob relabelled to the other generation does not open under it.
    let mut relabelled = old.clone();
    relabelled[..4].copy_from_slice(&2u32.to_be_bytes());
    assert!(matches!(
        custody.unwrap(b"aad", &relabelled),
        Err(CustodyError::Unwrap(_))
    ));

    // The new generation was persisted: a restart sees both.
    drop(custody);
    let reopened = SealedCustody::open(&p.state).unwrap();
    assert!(reopened.needs_rewrap(&old), "current comes from the file");
    reopened.unseal_key_file(&p.key).unwrap();
    assert!(reopened.unwrap(b"aad", &old).is_ok());
    assert!(reopened.unwrap(b"aad", &new).is_ok());
    assert_eq!(reopened.rotate_root().unwrap(), 3);
}

#[test]
fn retired_roots_stop_unwrapping_here_and_after_restart() {
    let p = paths();
    let custody = unsealed_key_file(&p);
    let old = custody.wrap(b"aad", b"old").unwrap();
    custody.rotate_root().unwrap();
    let rewrapped = {
        let secret = custody.unwrap(b"aad", &old).unwrap();
        custody.wrap(b"aad", secret.expose_secret()).unwrap()
    };
    custody.retire_old_roots().unwrap();
    let err = custody.unwrap(b"aad", &old).unwrap_err();
    assert!(matches!(err, CustodyError::Unwrap(_)), "{err}");
    assert!(custody.unwrap(b"aad", &rewrapped).is_ok());

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p.state).unwrap()).unwrap();
    assert_eq!(state["roots"].as_array().unwrap().len(), 1);
    assert_eq!(state["current"], 2);

    drop(custody);
    let reopened = SealedCustody::open(&p.state).unwrap();
    reopened.unseal_key_file(&p.key).unwrap();
    assert!(matches!(
        reopened.unwrap(b"aad", &old),
        Err(CustodyError::Unwrap(_))
    ));
    assert_eq!(
        reopened.unwrap(b"aad", &rewrapped).unwrap().expose_secret(),
        b"old"
    );
    let fresh = reopened.wrap(b"aad", b"fresh").unwrap();
    assert!(reopened.unwrap(b"aad", &fresh).is_ok());
    // Generations never repeat, even after retirement.
    assert_eq!(reopened.rotate_root().unwrap(), 3);
}

#[test]
fn rotation_is_atomic_with_respect_to_concurrent_wraps() {
    let p = paths();
    let custody = Arc::new(unsealed_key_file(&p));
    let workers: Vec<_> = (0..4u8)
        .map(|worker| {
            let custody = Arc::clone(&custody);
            thread::spawn(move || {
                let mut blobs = Vec::new();
                for i in 0..200u32 {
                    let aad = [worker.to_be_bytes().as_slice(), &i.to_be_bytes()].concat();
                    let wrapped = custody.wrap(&aad, &aad).expect("wrap");
                    // Every blob unwraps at once, whichever root was current.
                    let secret = custody.unwrap(&aad, &wrapped).expect("unwrap");
                    assert_eq!(secret.expose_secret(), aad.as_slice());
                    blobs.push((aad, wrapped));
                }
                blobs
            })
        })
        .collect();
    let rotations: Vec<u32> = (0..5).map(|_| custody.rotate_root().unwrap()).collect();
    assert_eq!(rotations, [2, 3, 4, 5, 6]);
    let blobs: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();

    drop(custody);
    let reopened = SealedCustody::open(&p.state).unwrap();
    reopened.unseal_key_file(&p.key).unwrap();
    for (aad, wrapped) in &blobs {
        let secret = reopened
            .unwrap(aad, wrapped)
            .expect("every generation persisted");
        assert_eq!(secret.expose_secret(), aad.as_slice());
    }
}
