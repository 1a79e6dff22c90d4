//! Argon2id's memory goes back to the system after each derivation. Its own test
//! binary: the resident set it measures is this process's, with nothing else running.

use coffer_core::CustodyError;
use coffer_custody_sealed::{Passphrase, SealedCustody};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Wrong passphrases at the default cost (19 MiB each) from 16 threads, as the blocking
/// pool ran them: through the allocator, each thread's arena kept its 19 MiB (the
/// process grew by hundreds of MiB and stayed there); mapped and unmapped, the
/// resident set returns to where it was.
#[test]
fn wrong_passphrases_from_many_threads_leave_the_resident_set_where_it_was() {
    let dir = std::env::temp_dir().join(format!("coffer-kdf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("custody.json");
    let custody = SealedCustody::init_passphrase(&state, &Passphrase::new("right".into())).unwrap();
    let before = rss_kib();
    std::thread::scope(|scope| {
        for i in 0..16 {
            let custody = &custody;
            scope.spawn(move || {
                let err = custody
                    .unseal_passphrase(&Passphrase::new(format!("wrong {i}")))
                    .unwrap_err();
                assert!(matches!(err, CustodyError::UnsealFailed(_)), "{err}");
            });
        }
    });
    let grown_kib = rss_kib().saturating_sub(before);
    eprintln!("RSS grew by {grown_kib} KiB after 16 derivations on 16 threads");
    assert!(grown_kib < 16 * 1024, "RSS grew by {grown_kib} KiB");
    std::fs::remove_dir_all(&dir).unwrap();
}
