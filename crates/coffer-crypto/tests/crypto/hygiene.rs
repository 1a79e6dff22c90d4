//! Secret hygiene: no secret type's `Debug` output holds its bytes, and errors carry no
//! secret bytes.

use coffer_crypto::{AeadKey, KeyMaterial, KeySpec, MacKey, SecretBytes, SigningKey};

/// True when `text` contains `secret` in any of the renderings a careless `Debug` would
/// produce: the byte list, lower and upper hex.
fn leaks(text: &str, secret: &[u8]) -> bool {
    let window = &secret[..secret.len().min(16)];
    let as_list = format!("{window:?}");
    let as_list = &as_list[1..as_list.len() - 1]; // without brackets
    text.contains(as_list)
        || text.contains(&hex::encode(window))
        || text.contains(&hex::encode_upper(window))
}

#[test]
fn debug_of_every_secret_type_shows_no_bytes() {
    for spec in KeySpec::ALL {
        let material = KeyMaterial::generate(spec).unwrap();
        let stored = material.to_stored().unwrap();
        let raw = &stored.expose_secret()[2..]; // the key bytes, past the header
        let renderings = [
            format!("{material:?}"),
            format!("{material:#?}"),
            format!("{stored:?}"),
        ];
        for text in &renderings {
            assert!(!leaks(text, raw), "{spec}: {text}");
        }
        match &material {
            KeyMaterial::Signing(key) => {
                let text = format!("{key:?}");
                assert!(!leaks(&text, raw), "{spec}: {text}");
            }
            KeyMaterial::Aes256(key) => assert!(!leaks(&format!("{key:?}"), raw)),
            KeyMaterial::Hmac(key) => assert!(!leaks(&format!("{key:?}"), raw)),
        }
    }
    let bytes = [0xA5u8; 32];
    for text in [
        format!("{:?}", AeadKey::from_bytes(&bytes).unwrap()),
        format!("{:?}", MacKey::from_bytes(&bytes).unwrap()),
        format!("{:?}", SecretBytes::copy_from(&bytes)),
    ] {
        assert!(!leaks(&text, &bytes), "{text}");
        assert!(text.contains("elided"), "{text}");
    }
}

#[test]
fn errors_carry_no_secret_bytes() {
    let bytes = [0x5Au8; 31]; // one byte short: rejected
    let errors = [
        AeadKey::from_bytes(&bytes).unwrap_err(),
        MacKey::from_bytes(&bytes).unwrap_err(),
        KeyMaterial::from_stored(&[&[1u8, 2][..], &bytes].concat()).unwrap_err(),
        SigningKey::generate(KeySpec::Aes256).unwrap_err(),
    ];
    for error in errors {
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!leaks(&text, &bytes), "{text}");
        }
    }
}
