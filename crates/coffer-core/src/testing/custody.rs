//! The `Custody` conformance cases. Each takes an unsealed custody with a fresh root.

use std::sync::Arc;

use crate::custody::{Custody, CustodyError, SealStatus};

type C = Arc<dyn Custody>;

/// Wrap then unwrap returns the secret; the wrapped form does not contain it.
pub async fn wraps_and_unwraps(custody: C) {
    assert_eq!(custody.status(), SealStatus::Unsealed);
    assert!(!custody.kind().is_empty());
    let secret = [0x42u8; 32];
    let wrapped = custody.wrap(b"row-1", &secret).unwrap();
    assert!(!wrapped.windows(8).any(|w| w == &secret[..8]));
    assert_eq!(
        custody.unwrap(b"row-1", &wrapped).unwrap().expose_secret(),
        secret
    );
    assert_ne!(
        custody.wrap(b"row-1", &secret).unwrap(),
        wrapped,
        "wrapping is randomised"
    );
}

/// Wrapped bytes are bound to their associated data and to every byte.
pub async fn binds_associated_data_and_detects_tampering(custody: C) {
    let wrapped = custody.wrap(b"tenant-a", b"secret material").unwrap();
    assert!(matches!(
        custody.unwrap(b"tenant-b", &wrapped),
        Err(CustodyError::Unwrap(_))
    ));
    for i in 0..wrapped.len() {
        let mut tampered = wrapped.clone();
        tampered[i] ^= 0x80;
        assert!(custody.unwrap(b"tenant-a", &tampered).is_err(), "byte {i}");
    }
    assert!(
        custody
            .unwrap(b"tenant-a", &wrapped[..wrapped.len() - 1])
            .is_err()
    );
    assert!(custody.unwrap(b"tenant-a", &[]).is_err());
}

/// After a root rotation old blobs still unwrap and are flagged for rewrap; after
/// retiring old roots they no longer unwrap, and new blobs do.
pub async fn rotates_the_root_without_downtime(custody: C) {
    let old = custody.wrap(b"aad", b"before").unwrap();
    assert!(!custody.needs_rewrap(&old));
    custody.rotate_root().unwrap();
    assert!(custody.needs_rewrap(&old));
    assert_eq!(
        custody.unwrap(b"aad", &old).unwrap().expose_secret(),
        b"before"
    );
    let new = custody.wrap(b"aad", b"after").unwrap();
    assert!(!custody.needs_rewrap(&new));
    custody.retire_old_roots().unwrap();
    assert!(custody.unwrap(b"aad", &old).is_err());
    assert_eq!(
        custody.unwrap(b"aad", &new).unwrap().expose_secret(),
        b"after"
    );
}

/// Concurrent wraps and unwraps from many threads all round-trip.
pub async fn serves_concurrent_callers(custody: C) {
    let mut handles = Vec::new();
    for i in 0..4u8 {
        let custody = custody.clone();
        handles.push(std::thread::spawn(move || {
            for j in 0..200u8 {
                let aad = [i, j];
                let wrapped = custody.wrap(&aad, &[i ^ j; 32]).unwrap();
                assert_eq!(
                    custody.unwrap(&aad, &wrapped).unwrap().expose_secret(),
                    [i ^ j; 32]
                );
            }
        }));
    }
    for handle in handles {
        handle.join().unwrap();
    }
}
