//! RFC 4231's test cases for HMAC-SHA-224/256/384/512 (section 4), through the same
//! `MacKey` the stored keys use. The RFC's keys have other lengths than Coffer
//! generates, so they enter through the unchecked constructor.

use super::*;

/// (key, data, SHA-224, SHA-256, SHA-384, SHA-512), hex; test cases 1–4, 6 and 7
/// (case 5 checks truncated output, which Coffer never produces).
const CASES: &[(&str, &str, [&str; 4])] = &[
    (
        "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        "4869205468657265",
        [
            "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        ],
    ),
    (
        "4a656665",
        "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
        [
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
        ],
    ),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
        [
            "7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea",
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27",
            "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
        ],
    ),
    (
        "0102030405060708090a0b0c0d0e0f10111213141516171819",
        "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",
        [
            "6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a",
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb",
            "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
        ],
    ),
    (
        LONG_KEY,
        // "Test Using Larger Than Block-Size Key - Hash Key First"
        "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
        [
            "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
        ],
    ),
    (
        LONG_KEY,
        // "This is a test using a larger than block-size key and a larger than block-size
        // data. The key needs to be hashed before being used by the HMAC algorithm."
        "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
        [
            "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5a678cc31e799176d3860e6110c46523e",
            "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
        ],
    ),
];

/// 131 bytes of 0xaa (cases 6 and 7).
const LONG_KEY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const SPECS: [KeySpec; 4] = [
    KeySpec::HmacSha224,
    KeySpec::HmacSha256,
    KeySpec::HmacSha384,
    KeySpec::HmacSha512,
];

#[test]
fn rfc4231_test_cases() {
    let mut ran = 0;
    for (key, data, tags) in CASES {
        let (key, data) = (hex::decode(key).unwrap(), hex::decode(data).unwrap());
        for (spec, tag) in SPECS.into_iter().zip(tags) {
            let tag = hex::decode(tag).unwrap();
            let mac = MacKey::with_key(spec, SecretBytes::copy_from(&key)).unwrap();
            assert_eq!(mac.sign(&data), tag, "{spec} on {}", hex::encode(&data));
            mac.verify(&data, &tag).unwrap();
            let mut wrong = tag.clone();
            wrong[0] ^= 1;
            assert!(mac.verify(&data, &wrong).is_err());
            assert!(mac.verify(&data, &tag[..tag.len() - 1]).is_err());
            ran += 1;
        }
    }
    assert_eq!(ran, 24);
}

#[test]
fn generated_keys_are_as_long_as_their_tags_and_stored_lengths_are_checked() {
    for (spec, len) in SPECS.into_iter().zip([28, 32, 48, 64]) {
        let key = MacKey::generate_for(spec).unwrap();
        assert_eq!((key.spec(), key.expose_secret().len()), (spec, len));
        assert_eq!(key.sign(b"m").len(), len);
        let again = MacKey::from_spec_bytes(spec, key.expose_secret()).unwrap();
        assert_eq!(again.sign(b"m"), key.sign(b"m"));
        assert!(MacKey::from_spec_bytes(spec, &vec![7; len + 1]).is_err());
        assert!(MacKey::from_spec_bytes(spec, &vec![7; len - 1]).is_err());
    }
    assert!(MacKey::generate_for(KeySpec::Aes256).is_err());
    // Different hashes, different tags under the same key bytes.
    let bytes = [9u8; 32];
    let a = MacKey::with_key(KeySpec::HmacSha256, SecretBytes::copy_from(&bytes)).unwrap();
    let b = MacKey::with_key(KeySpec::HmacSha512, SecretBytes::copy_from(&bytes)).unwrap();
    assert_ne!(a.sign(b"m")[..], b.sign(b"m")[..32]);
}
