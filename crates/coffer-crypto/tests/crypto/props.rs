//! Property tests: round trips, tamper detection, and decoders that never panic.

use std::sync::OnceLock;

use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};
use coffer_crypto::{
    AeadKey, EncryptionAlgorithm, EncryptionContext, KeyMaterial, KeySpec, PqVerifyMode, PublicKey,
    SignatureAlgorithm, SigningKey, VerifyingKey,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

const TENANT: [u8; 16] = [7; 16];
const OTHER_TENANT: [u8; 16] = [8; 16];

fn aead_key() -> &'static AeadKey {
    static KEY: OnceLock<AeadKey> = OnceLock::new();
    KEY.get_or_init(|| AeadKey::generate().unwrap())
}

fn context_strategy() -> impl Strategy<Value = EncryptionContext> {
    btree_map("[a-z]{0,8}", ".{0,12}", 0..4)
        .prop_map(|pairs| EncryptionContext::from_pairs(pairs).unwrap())
}

fn seal(header: EnvelopeHeader, context: &EncryptionContext, plaintext: &[u8]) -> Vec<u8> {
    let binding = Binding {
        tenant_id: &TENANT,
        context,
    };
    envelope::seal(aead_key(), header, binding, plaintext).unwrap()
}

proptest! {
    #[test]
    fn envelope_round_trips(
        key_id in any::<[u8; 16]>(),
        key_version in 1u32..,
        context in context_strategy(),
        plaintext in vec(any::<u8>(), 0..512),
    ) {
        let header = EnvelopeHeader { key_id, key_version };
        let blob = seal(header, &context, &plaintext);
        prop_assert_eq!(blob.len(), plaintext.len() + envelope::OVERHEAD);
        prop_assert_eq!(EnvelopeHeader::parse(&blob).unwrap(), header);
        let binding = Binding { tenant_id: &TENANT, context: &context };
        let opened = envelope::open(aead_key(), &blob, binding).unwrap();
        prop_assert_eq!(opened.expose_secret(), &plaintext[..]);
    }

    #[test]
    fn one_flipped_bit_anywhere_is_rejected(
        plaintext in vec(any::<u8>(), 0..64),
        context in context_strategy(),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let blob = seal(EnvelopeHeader { key_id: [1; 16], key_version: 3 }, &context, &plaintext);
        let mut tampered = blob.clone();
        tampered[position.index(blob.len())] ^= 1 << bit;
        let binding = Binding { tenant_id: &TENANT, context: &context };
        prop_assert!(envelope::open(aead_key(), &tampered, binding).is_err());
    }

    #[test]
    fn another_tenant_or_context_is_rejected(
        plaintext in vec(any::<u8>(), 0..64),
        context in context_strategy(),
        other in context_strategy(),
    ) {
        let blob = seal(EnvelopeHeader { key_id: [1; 16], key_version: 1 }, &context, &plaintext);
        let wrong_tenant = Binding { tenant_id: &OTHER_TENANT, context: &context };
        prop_assert!(envelope::open(aead_key(), &blob, wrong_tenant).is_err());
        if other != context {
            let wrong_context = Binding { tenant_id: &TENANT, context: &other };
            prop_assert!(envelope::open(aead_key(), &blob, wrong_context).is_err());
            prop_assert_ne!(other.canonical_bytes(), context.canonical_bytes());
        }
    }

    #[test]
    fn xaes_round_trips(aad in vec(any::<u8>(), 0..64), plaintext in vec(any::<u8>(), 0..1024)) {
        let sealed = aead_key().seal(&aad, &plaintext).unwrap();
        let opened = aead_key().open(&aad, &sealed).unwrap();
        prop_assert_eq!(opened.expose_secret(), &plaintext[..]);
    }

    #[test]
    fn decoders_never_panic(bytes in vec(any::<u8>(), 0..2200), text in ".{0,300}") {
        let context = EncryptionContext::new();
        let _ = EnvelopeHeader::parse(&bytes);
        let _ = envelope::open(aead_key(), &bytes, Binding { tenant_id: &TENANT, context: &context });
        let _ = aead_key().open(b"", &bytes);
        let _ = KeyMaterial::from_stored(&bytes);
        let _ = PublicKey::from_spki_der(&bytes);
        let _ = PublicKey::from_pem(&text);
        let _ = PublicKey::from_pem(&String::from_utf8_lossy(&bytes));
        let _ = PublicKey::from_jwk_json(&text);
        let _ = text.parse::<KeySpec>();
        let _ = text.parse::<PqVerifyMode>();
        let _ = text.parse::<SignatureAlgorithm>();
        let _ = text.parse::<EncryptionAlgorithm>();
        for spec in KeySpec::ALL {
            let _ = PublicKey::from_raw(spec, &bytes);
        }
    }

    #[test]
    fn stored_material_with_a_valid_header_never_panics(
        code in 0u8..16,
        body in vec(any::<u8>(), 0..140),
    ) {
        let mut stored = vec![1, code];
        stored.extend_from_slice(&body);
        let _ = KeyMaterial::from_stored(&stored);
    }
}

fn signer(spec: KeySpec) -> &'static (SigningKey, VerifyingKey) {
    static KEYS: OnceLock<Vec<(SigningKey, VerifyingKey)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        KeySpec::ALL
            .into_iter()
            .filter(|s| s.is_signing())
            .map(|s| {
                let KeyMaterial::Signing(key) = KeyMaterial::generate(s).unwrap() else {
                    unreachable!()
                };
                let verifier = VerifyingKey::new(key.public_key()).unwrap();
                (key, verifier)
            })
            .collect()
    });
    keys.iter().find(|(key, _)| key.spec() == spec).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn signatures_round_trip_and_garbage_never_verifies(
        message in vec(any::<u8>(), 0..256),
        garbage in vec(any::<u8>(), 0..3400),
    ) {
        for spec in KeySpec::ALL.into_iter().filter(|s| s.is_signing()) {
            let (key, verifier) = signer(spec);
            let signature = key.sign(&message).unwrap();
            prop_assert!(verifier.verify(&message, &signature, PqVerifyMode::And).is_ok());
            for mode in [PqVerifyMode::And, PqVerifyMode::Or, PqVerifyMode::PqOnly] {
                prop_assert!(verifier.verify(&message, &garbage, mode).is_err());
            }
        }
    }
}

/// A real RSA key's SPKI, stored PKCS #8 and JWK, to mutate.
fn rsa_encodings() -> &'static (Vec<u8>, Vec<u8>, String) {
    static ENCODINGS: OnceLock<(Vec<u8>, Vec<u8>, String)> = OnceLock::new();
    ENCODINGS.get_or_init(|| {
        let material = KeyMaterial::generate(KeySpec::Rsa2048).unwrap();
        let public = material.public_key().unwrap();
        let jwk = serde_json::to_string(&public.to_jwk(None)).unwrap();
        let stored = material.to_stored().unwrap().expose_secret().to_vec();
        (public.to_spki_der(), stored, jwk)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The RSA decoders (SPKI, PEM, stored PKCS #8, JWK) on a real key with bytes
    /// changed, cut or appended: a typed error or the key itself, never a panic, and
    /// whatever decodes re-encodes to exactly the bytes given (one key, one SPKI).
    #[test]
    fn mutated_rsa_encodings_never_panic(
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
        extra in vec(any::<u8>(), 0..4),
        text_at in any::<prop::sample::Index>(),
        ch in any::<char>(),
    ) {
        let (spki, stored, jwk) = rsa_encodings();
        let mut der = spki.clone();
        let i = at.index(der.len());
        der[i] = value;
        if let Ok(key) = PublicKey::from_spki_der(&der) {
            prop_assert_eq!(key.to_spki_der(), der.clone());
        }
        let short = &spki[..cut.index(spki.len())];
        prop_assert!(PublicKey::from_spki_der(short).is_err());
        let mut long = spki.clone();
        long.extend_from_slice(&extra);
        prop_assert_eq!(PublicKey::from_spki_der(&long).is_ok(), extra.is_empty());
        let _ = PublicKey::from_pem(&format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64_of(&der)
        ));
        let mut material = stored.clone();
        let j = 2 + at.index(material.len() - 2);
        material[j] ^= value | 1;
        let _ = KeyMaterial::from_stored(&material);
        let _ = KeyMaterial::from_stored(&stored[..cut.index(stored.len())]);
        let mut text: Vec<char> = jwk.chars().collect();
        let k = text_at.index(text.len());
        text[k] = ch;
        let _ = PublicKey::from_jwk_json(&text.into_iter().collect::<String>());
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
