//! No secret in the state file or in `Debug` output; the state file on disk.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use blahaj::{Share, Sharks};
use coffer_core::Custody;
use coffer_crypto::AeadKey;
use coffer_custody_sealed::{SHARE_PREFIX, SealedCustody, UnsealShare};

use super::{cheap, pass, paths, unsealed_key_file};

/// Asserts `secret` appears in `file` neither raw nor as hex or base64.
fn assert_absent(file: &[u8], secret: &[u8], what: &str) {
    assert_eq!(secret.len(), 32);
    let encodings = [
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
        STANDARD.encode(secret).into_bytes(),
    ];
    for encoded in encodings {
        assert!(
            !file.windows(encoded.len()).any(|w| w == encoded.as_slice()),
            "{what} found in the state file"
        );
    }
}

/// Recombines the unseal key from shares, as the custody does.
fn recombine(shares: &[UnsealShare], threshold: u8) -> Vec<u8> {
    let shares: Vec<Share> = shares
        .iter()
        .map(|s| {
            let text = s.expose_secret().strip_prefix(SHARE_PREFIX).unwrap();
            Share::try_from(STANDARD.decode(text).unwrap().as_slice()).unwrap()
        })
        .collect();
    Sharks(threshold).recover(&shares).unwrap()
}

#[test]
fn state_file_holds_neither_unseal_key_nor_root_keys() {
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 5, 3).unwrap();
    for s in &shares[..3] {
        custody.submit_share(s.expose_secret()).unwrap();
    }
    custody.rotate_root().unwrap();
    let unseal_key = AeadKey::from_bytes(&recombine(&shares, 3)).unwrap();
    let file = fs::read(&p.state).unwrap();
    assert_absent(&file, unseal_key.expose_secret(), "the unseal key");

    // Open each sealed root with the recombined key (the documented format), so the
    // test sees the real root keys without a hook into the crate.
    let state: serde_json::Value = serde_json::from_slice(&file).unwrap();
    let roots = state["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 2);
    for root in roots {
        let generation = u32::try_from(root["generation"].as_u64().unwrap()).unwrap();
        let wrapped = STANDARD
            .decode(root["wrapped_root"].as_str().unwrap())
            .unwrap();
        let aad = [b"coffer/root-key/v1".as_slice(), &generation.to_be_bytes()].concat();
        let root_key = unseal_key.open(&aad, &wrapped).unwrap();
        assert_absent(&file, root_key.expose_secret(), "a root key");
        // And it really is the root that wraps: a blob of this generation opens.
        if generation == 2 {
            let blob = custody.wrap(b"x", b"secret").unwrap();
            let aad = [b"coffer/root/v1".as_slice(), &2u32.to_be_bytes(), b"x"].concat();
            let opened = AeadKey::from_bytes(root_key.expose_secret())
                .unwrap()
                .open(&aad, &blob[4..])
                .unwrap();
            assert_eq!(opened.expose_secret(), b"secret");
        }
    }
}

#[test]
fn key_file_bytes_never_reach_the_state_file() {
    let p = paths();
    let custody = unsealed_key_file(&p);
    custody.rotate_root().unwrap();
    let key = fs::read(&p.key).unwrap();
    assert_absent(&fs::read(&p.state).unwrap(), &key, "the key file's key");
}

#[test]
fn state_file_is_private_json_with_the_documented_fields() {
    let p = paths();
    SealedCustody::init_passphrase_with(&p.state, &pass("hunter2 hunter2"), cheap()).unwrap();
    let bytes = fs::read(&p.state).unwrap();
    let mode = fs::metadata(&p.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!String::from_utf8_lossy(&bytes).contains("hunter2"));
    let state: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(state["format"], 1);
    assert_eq!(state["current"], 1);
    let method = &state["method"];
    assert_eq!(method["kind"], "passphrase");
    assert_eq!(method["kdf"], "argon2id");
    assert_eq!(
        STANDARD
            .decode(method["salt"].as_str().unwrap())
            .unwrap()
            .len(),
        16
    );
    assert_eq!(method["memory_kib"], 64);
    assert_eq!(state["roots"][0]["generation"], 1);
    // No temp files left beside it.
    let entries = fs::read_dir(p.state.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1);
}

#[test]
fn a_damaged_state_file_is_refused_on_open() {
    let p = paths();
    SealedCustody::init_key_file(&p.state, &p.key).unwrap();
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&p.state).unwrap()).unwrap();
    state["current"] = 9.into();
    fs::write(&p.state, serde_json::to_vec(&state).unwrap()).unwrap();
    let err = SealedCustody::open(&p.state).unwrap_err();
    assert!(err.to_string().contains("current generation"), "{err}");
    fs::write(&p.state, b"{not json").unwrap();
    assert!(SealedCustody::open(&p.state).is_err());
}

#[test]
fn debug_output_names_no_secret() {
    let p = paths();
    let (custody, shares) = SealedCustody::init_shamir(&p.state, 3, 2).unwrap();
    for share in &shares {
        let text = share.expose_secret();
        let debug = format!("{share:?}");
        assert_eq!(debug, "UnsealShare([secret elided])");
        assert!(!debug.contains(&text[SHARE_PREFIX.len()..]));
    }
    let passphrase = pass("tell no one");
    assert_eq!(format!("{passphrase:?}"), "Passphrase([secret elided])");
    custody.submit_share(shares[0].expose_secret()).unwrap();
    custody.submit_share(shares[1].expose_secret()).unwrap();
    let debug = format!("{custody:?}");
    assert!(
        debug.contains("SealedCustody") && debug.contains("Unsealed"),
        "{debug}"
    );
    let key = recombine(&shares, 2);
    assert!(!debug.contains(&hex::encode(&key)), "{debug}");
    assert!(!debug.contains(&format!("{:?}", &key[..4])), "{debug}");
}
