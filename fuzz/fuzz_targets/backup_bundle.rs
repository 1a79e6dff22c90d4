//! Arbitrary bytes as a backup bundle, and as a bundle's snapshot: typed errors or a
//! value, never a panic; a snapshot that parses serialises back to one that parses equal.
#![no_main]

use coffer_core::backup::Snapshot;
use coffer_core::backup::bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bundle::inspect(data);
    let _ = bundle::check_manifest(&String::from_utf8_lossy(data), data);
    if let Ok(snapshot) = Snapshot::from_json(data) {
        assert_eq!(Snapshot::from_json(&snapshot.to_json()).unwrap(), snapshot);
    }
});
