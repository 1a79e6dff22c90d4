//! The Shamir method.

use coffer_core::{Custody, CustodyError, SealStatus};
use coffer_custody_sealed::{SHARE_PREFIX, SealedCustody, UnsealMethod, UnsealShare};

use super::{assert_roundtrip, paths, state_bytes};

fn texts(shares: &[UnsealShare]) -> Vec<&str> {
    shares.iter().map(UnsealShare::expose_secret).collect()
}

/// A share of the same index with its last byte changed, still well-formed.
fn corrupt(share: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let mut bytes = STANDARD
        .decode(share.strip_prefix(SHARE_PREFIX).unwrap())
        .unwrap();
    *bytes.last_mut().unwrap() ^= 0x5a;
    format!("{SHARE_PREFIX}{}", STANDARD.encode(bytes))
}

#[test]
fn any_three_of_five_unseal_and_blobs_survive_restart() {
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 5, 3).unwrap();
    assert_eq!(
        custody.method(),
        UnsealMethod::Shamir {
            shares: 5,
            threshold: 3
        }
    );
    assert_eq!(shares.len(), 5);
    let shares = texts(&shares);
    assert!(shares.iter().all(|s| s.starts_with(SHARE_PREFIX)));
    for s in &shares[..2] {
        custody.submit_share(s).unwrap();
    }
    assert_eq!(
        custody.submit_share(shares[2]).unwrap(),
        SealStatus::Unsealed
    );
    assert_roundtrip(&custody);
    let old = custody.wrap(b"aad", b"kept").unwrap();
    drop(custody);

    for a in 0..5 {
        for b in a + 1..5 {
            for c in b + 1..5 {
                let custody = SealedCustody::open(&p.state).unwrap();
                // Out of order, with surrounding whitespace as pasted from a terminal.
                custody.submit_share(shares[c]).unwrap();
                custody.submit_share(&format!(" {}\n", shares[a])).unwrap();
                let status = custody.submit_share(shares[b]).unwrap();
                assert_eq!(status, SealStatus::Unsealed, "shares {a}, {b}, {c}");
                let secret = custody.unwrap(b"aad", &old).unwrap();
                assert_eq!(secret.expose_secret(), b"kept");
            }
        }
    }
}

#[test]
fn two_of_three_leave_it_sealed_with_progress() {
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 5, 3).unwrap();
    let shares = texts(&shares);
    let one = custody.submit_share(shares[4]).unwrap();
    assert_eq!(
        one,
        SealStatus::Sealed {
            progress: 1,
            threshold: 3
        }
    );
    let two = custody.submit_share(shares[1]).unwrap();
    let expected = SealStatus::Sealed {
        progress: 2,
        threshold: 3,
    };
    assert_eq!(two, expected);
    assert_eq!(custody.status(), expected);
    assert!(matches!(
        custody.wrap(b"a", b"s"),
        Err(CustodyError::Sealed(_))
    ));
    // Sealing drops the progress too.
    custody.seal();
    assert_eq!(custody.submit_share(shares[0]).unwrap(), {
        SealStatus::Sealed {
            progress: 1,
            threshold: 3,
        }
    });
}

#[test]
fn a_corrupted_or_foreign_share_is_refused_on_its_own_and_takes_no_slot() {
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 5, 3).unwrap();
    let shares = texts(&shares);
    let before = state_bytes(&p.state);
    custody.submit_share(shares[0]).unwrap();
    let one = SealStatus::Sealed {
        progress: 1,
        threshold: 3,
    };
    // Damaged, or dealt for another deployment: refused by its tag at once, the
    // progress kept, and the real holder of that index can still submit.
    let q = paths();
    let (_, foreign) = SealedCustody::init_shamir(&q.state, 5, 3).unwrap();
    for bad in [corrupt(shares[1]), foreign[1].expose_secret().to_owned()] {
        let err = custody.submit_share(&bad).unwrap_err();
        assert!(
            matches!(err, CustodyError::UnsealFailed(m) if m.contains("tag")),
            "{err}"
        );
        assert_eq!(custody.status(), one);
    }
    assert_eq!(state_bytes(&p.state), before);
    custody.submit_share(shares[1]).unwrap();
    custody.submit_share(shares[2]).unwrap();
    assert_eq!(custody.status(), SealStatus::Unsealed);
    // Once unsealed, a further share is ignored.
    assert_eq!(custody.submit_share("junk").unwrap(), SealStatus::Unsealed);
}

#[test]
fn a_state_file_made_before_share_tags_still_unseals_as_before() {
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 5, 3).unwrap();
    let shares = texts(&shares);
    let old = custody.wrap(b"aad", b"kept");
    assert!(old.is_err(), "init leaves custody sealed");
    drop(custody);
    // The file as an earlier Coffer wrote it: no share_tags.
    let mut json: serde_json::Value = serde_json::from_slice(&state_bytes(&p.state)).unwrap();
    assert!(json["method"]["share_tags"].is_array());
    json["method"].as_object_mut().unwrap().remove("share_tags");
    std::fs::write(&p.state, serde_json::to_vec_pretty(&json).unwrap()).unwrap();

    let custody = SealedCustody::open(&p.state).unwrap();
    // Unauthenticated as before: a corrupted share takes a slot, the recombination
    // fails and the progress resets.
    custody.submit_share(shares[0]).unwrap();
    custody.submit_share(&corrupt(shares[1])).unwrap();
    let err = custody.submit_share(shares[2]).unwrap_err();
    assert!(matches!(err, CustodyError::UnsealFailed(_)), "{err}");
    assert_eq!(
        custody.status(),
        SealStatus::Sealed {
            progress: 0,
            threshold: 3
        }
    );
    for s in &shares[2..5] {
        custody.submit_share(s).unwrap();
    }
    assert_eq!(custody.status(), SealStatus::Unsealed);
    assert_roundtrip(&custody);
}

#[test]
fn duplicate_and_malformed_shares_are_refused_without_change() {
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 5, 3).unwrap();
    let shares = texts(&shares);
    custody.submit_share(shares[3]).unwrap();
    let one = SealStatus::Sealed {
        progress: 1,
        threshold: 3,
    };
    let err = custody.submit_share(shares[3]).unwrap_err();
    assert!(
        matches!(err, CustodyError::UnsealFailed(m) if m.contains("duplicate")),
        "{err}"
    );
    // Same index, other bytes: not this share's tag, so not a second share either.
    let err = custody.submit_share(&corrupt(shares[3])).unwrap_err();
    assert!(
        matches!(err, CustodyError::UnsealFailed(m) if m.contains("tag")),
        "{err}"
    );
    let zero_index = format!("{SHARE_PREFIX}{}", "A".repeat(44));
    for bad in [
        "",
        "hello",
        "coffer-share-v1:",
        "coffer-share-v1:!!!!",
        "coffer-share-v2:AAAA",
        &shares[0][..shares[0].len() - 4],
        &zero_index,
    ] {
        let err = custody.submit_share(bad).unwrap_err();
        assert!(
            matches!(err, CustodyError::UnsealFailed(m) if m.contains("malformed")),
            "{bad:?}: {err}"
        );
        assert_eq!(custody.status(), one, "{bad:?}");
    }
}

#[test]
fn share_parameters_are_validated() {
    for (shares, threshold) in [(5, 0), (3, 4), (0, 0), (0, 1)] {
        let p = paths();
        let err = SealedCustody::init_shamir(&p.state, shares, threshold).unwrap_err();
        assert!(matches!(err, CustodyError::Config(_)), "{err}");
        assert!(!p.state.exists());
    }
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 255, 255).unwrap();
    assert_eq!(shares.len(), 255);
    drop(custody);
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 1, 1).unwrap();
    let status = custody.submit_share(shares[0].expose_secret()).unwrap();
    assert_eq!(status, SealStatus::Unsealed);
    assert_roundtrip(&custody);
}
