//! The bundle's checks: each kind of damage is refused with its own reason.

use coffer_crypto::{AeadKey, SecretBytes};

use super::*;
use crate::backup::{Cell, Table};
use crate::custody::SealStatus;

/// Custody over one XAES key (the sealed custody's construction, without its state
/// file), named `kind`.
struct KeyCustody(AeadKey, &'static str);

impl KeyCustody {
    fn new(kind: &'static str) -> Self {
        Self(AeadKey::generate().unwrap(), kind)
    }
}

impl Custody for KeyCustody {
    fn kind(&self) -> &'static str {
        self.1
    }
    fn status(&self) -> SealStatus {
        SealStatus::Unsealed
    }
    fn wrap(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, CustodyError> {
        self.0
            .seal(aad, secret)
            .map_err(|_| CustodyError::Backend("seal"))
    }
    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes, CustodyError> {
        self.0
            .open(aad, wrapped)
            .map_err(|_| CustodyError::Unwrap("authentication failed"))
    }
    fn needs_rewrap(&self, _: &[u8]) -> bool {
        false
    }
    fn rotate_root(&self) -> Result<u32, CustodyError> {
        Err(CustodyError::Backend("no"))
    }
    fn retire_old_roots(&self) -> Result<(), CustodyError> {
        Ok(())
    }
}

fn snapshot() -> Snapshot {
    Snapshot {
        schema: vec![1, 2],
        tables: vec![
            Table {
                name: "audit_entries".into(),
                columns: vec!["idx".into(), "leaf".into()],
                rows: (0..3)
                    .map(|i| vec![Cell::Int(i), Cell::Text(format!("leaf {i}"))])
                    .collect(),
            },
            Table {
                name: "audit_checkpoints".into(),
                columns: vec!["size".into(), "note".into()],
                rows: vec![
                    vec![Cell::Int(2), Cell::Text("a".into())],
                    vec![Cell::Int(3), Cell::Text("b".into())],
                ],
            },
            Table {
                name: "tenant_keks".into(),
                columns: vec!["wrapped".into()],
                rows: vec![vec![Cell::Blob(vec![9; 40])]],
            },
        ],
    }
}

fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - TRAILER;
    let trailer = sha256(&[&bytes[..body]]);
    bytes[body..].copy_from_slice(&trailer);
    bytes
}

#[test]
fn a_bundle_opens_under_its_custody_and_says_what_it_holds() {
    let custody = KeyCustody::new("sealed");
    let bundle = seal(
        &snapshot(),
        &custody,
        Timestamp::from_millis(1_700_000_000_000),
    )
    .unwrap();
    let header = inspect(&bundle).unwrap();
    assert_eq!(header.audit_size, 3);
    assert_eq!(header.checkpoint_size, Some(3));
    assert_eq!(header.schema, vec![1, 2]);
    assert!(header.counts.contains(&("tenant_keks".into(), 1)));
    let (_, opened) = open(&bundle, &custody).unwrap();
    assert_eq!(opened, snapshot());
}

#[test]
fn every_flipped_byte_and_every_cut_is_refused_offline() {
    let custody = KeyCustody::new("sealed");
    let bundle = seal(&snapshot(), &custody, Timestamp::from_millis(1)).unwrap();
    for at in 0..bundle.len() {
        let mut bad = bundle.clone();
        bad[at] ^= 0x01;
        let error = inspect(&bad).unwrap_err();
        if at < MAGIC.len() {
            assert!(matches!(error, BundleError::NotABundle), "{at}: {error}");
        } else {
            assert!(matches!(error, BundleError::HashMismatch), "{at}: {error}");
        }
        assert!(open(&bad, &custody).is_err());
    }
    for len in 0..bundle.len() {
        let error = inspect(&bundle[..len]).unwrap_err();
        assert!(
            matches!(
                error,
                BundleError::NotABundle | BundleError::HashMismatch | BundleError::Truncated(_)
            ),
            "{len}: {error}"
        );
    }
}

#[test]
fn a_changed_body_with_a_recomputed_trailer_fails_the_mac() {
    let custody = KeyCustody::new("sealed");
    let bundle = seal(&snapshot(), &custody, Timestamp::from_millis(1)).unwrap();
    let mut bad = bundle.clone();
    let last_sealed = bad.len() - TRAILER - 1;
    bad[last_sealed] ^= 0x80;
    let bad = resealed(bad);
    // The offline checks pass (the trailer was recomputed); the MAC does not.
    inspect(&bad).unwrap();
    assert!(matches!(open(&bad, &custody), Err(BundleError::Mac)));
}

#[test]
fn another_custody_cannot_open_a_bundle_and_says_why() {
    let custody = KeyCustody::new("sealed");
    let bundle = seal(&snapshot(), &custody, Timestamp::from_millis(1)).unwrap();
    let other = KeyCustody::new("sealed");
    let error = open(&bundle, &other).unwrap_err();
    assert!(matches!(error, BundleError::ForeignCustody(_)), "{error}");
    assert!(error.to_string().contains("another deployment's custody"));
    let hsm = KeyCustody::new("pkcs11");
    let error = open(&bundle, &hsm).unwrap_err();
    assert!(
        error.to_string().contains("made under sealed custody"),
        "{error}"
    );
}

#[test]
fn a_header_from_a_newer_format_is_named() {
    let custody = KeyCustody::new("sealed");
    let bundle = seal(&snapshot(), &custody, Timestamp::from_millis(1)).unwrap();
    let text = String::from_utf8_lossy(&bundle).into_owned();
    assert!(text.contains("\"format\":1"));
    let at = bundle
        .windows(10)
        .position(|w| w == b"\"format\":1")
        .unwrap();
    let mut bad = bundle.clone();
    bad[at + 9] = b'7';
    let error = inspect(&resealed(bad)).unwrap_err();
    assert!(matches!(error, BundleError::UnknownFormat(7)), "{error}");
}

#[test]
fn the_manifest_is_a_sha256sum_line_and_a_mismatch_names_both_hashes() {
    let custody = KeyCustody::new("sealed");
    let bundle = seal(&snapshot(), &custody, Timestamp::from_millis(1)).unwrap();
    let text = manifest(&bundle, "b.bundle");
    assert!(text.ends_with("  b.bundle\n"));
    check_manifest(&text, &bundle).unwrap();
    let mut other = bundle.clone();
    other.push(0);
    let error = check_manifest(&text, &other).unwrap_err().to_string();
    assert!(error.contains("records SHA-256"), "{error}");
    assert!(check_manifest("", &bundle).is_err());
    assert!(check_manifest("zz  b.bundle\n", &bundle).is_err());
}

proptest::proptest! {
    /// Any bytes, and any bytes after a real bundle's magic: an error, never a panic.
    #[test]
    fn arbitrary_bytes_are_refused_without_a_panic(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
    ) {
        let _ = inspect(&bytes);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&bytes);
        proptest::prop_assert!(inspect(&framed).is_err());
        let _ = crate::backup::Snapshot::from_json(&bytes);
    }
}
