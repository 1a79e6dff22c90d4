//! ML-DSA-65 known answers: Wycheproof (keygen from seed, verify with and without a
//! context, sign with a context) and the NIST-format deterministic KAT file shipped in
//! the PyPI package `cryptography-vectors` 50.0.2 (`asymmetric/MLDSA/kat_MLDSA_65_det_pure.rsp`).
//!
//! Coffer signs with FIPS 204's hedged (randomised) mode, so a fresh signature cannot be
//! compared byte for byte with a deterministic vector. Signing is checked instead by:
//! the key derived from the vector's seed equals the vector's public key, the vector's
//! own signature verifies, and Coffer's signature on the same message and context
//! verifies under the vector's public key.

use coffer_crypto::{KeyMaterial, KeySpec, PqVerifyMode, PublicKey, SigningKey, VerifyingKey};

use super::vectors::{hex_field, is_valid, path, wycheproof_cases};

fn key_from_seed(seed: &[u8]) -> Option<SigningKey> {
    let mut stored = vec![0x01, 0x04];
    stored.extend_from_slice(seed);
    match KeyMaterial::from_stored(&stored).ok()? {
        KeyMaterial::Signing(key) => Some(key),
        _ => None,
    }
}

fn verifier(public: &[u8]) -> Option<VerifyingKey> {
    VerifyingKey::new(PublicKey::from_raw(KeySpec::MlDsa65, public).ok()?).ok()
}

fn verify_ctx(v: &VerifyingKey, ctx: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    if ctx.is_empty() {
        v.verify(msg, sig, PqVerifyMode::And).is_ok()
    } else {
        v.verify_ml_dsa_with_context(ctx, msg, sig).is_ok()
    }
}

#[test]
fn wycheproof_ml_dsa_65_verify() {
    let mut ran = 0;
    for (group, case) in wycheproof_cases("wycheproof_mldsa_65_verify_test.json") {
        let public = hex_field(&group, "publicKey");
        let Some(v) = verifier(&public) else {
            assert!(
                !is_valid(&case),
                "tcId {}: valid case with a refused key",
                case["tcId"]
            );
            ran += 1;
            continue;
        };
        let der = hex_field(&group, "publicKeyDer");
        assert_eq!(PublicKey::from_spki_der(&der).unwrap().raw(), public);
        let ok = verify_ctx(
            &v,
            &hex_field(&case, "ctx"),
            &hex_field(&case, "msg"),
            &hex_field(&case, "sig"),
        );
        assert_eq!(ok, is_valid(&case), "tcId {}", case["tcId"]);
        ran += 1;
    }
    assert!(ran > 50);
    println!("Wycheproof ML-DSA-65 verify vectors: {ran} ran");
}

#[test]
fn wycheproof_ml_dsa_65_sign_from_seed() {
    let (mut ran, mut internal_only) = (0, 0);
    for (group, case) in wycheproof_cases("wycheproof_mldsa_65_sign_seed_test.json") {
        if case.get("msg").is_none() {
            // Sign_internal vectors (μ given, no message): not an operation Coffer offers.
            internal_only += 1;
            continue;
        }
        let Some(key) = key_from_seed(&hex_field(&group, "privateSeed")) else {
            assert!(
                !is_valid(&case),
                "tcId {}: valid case with a refused seed",
                case["tcId"]
            );
            ran += 1;
            continue;
        };
        let public = hex_field(&group, "publicKey");
        assert_eq!(
            key.public_key().raw(),
            public,
            "tcId {}: keygen",
            case["tcId"]
        );
        let (ctx, msg) = (hex_field(&case, "ctx"), hex_field(&case, "msg"));
        let signed = key.sign_ml_dsa_with_context(&ctx, &msg);
        assert_eq!(signed.is_ok(), is_valid(&case), "tcId {}", case["tcId"]);
        if let Ok(ours) = signed {
            let v = verifier(&public).unwrap();
            assert!(
                verify_ctx(&v, &ctx, &msg, &ours),
                "tcId {}: own signature",
                case["tcId"]
            );
            assert!(
                verify_ctx(&v, &ctx, &msg, &hex_field(&case, "sig")),
                "tcId {}",
                case["tcId"]
            );
        }
        ran += 1;
    }
    assert!(ran > 50);
    println!(
        "Wycheproof ML-DSA-65 sign vectors: {ran} ran ({internal_only} Sign_internal-only skipped)"
    );
}

#[test]
fn nist_kat_ml_dsa_65_deterministic() {
    let text = std::fs::read_to_string(path("nist_kat_MLDSA_65_det_pure.rsp")).unwrap();
    let mut ran = 0;
    // Records are runs of `name = hex` lines, each starting at `count = `.
    for block in text.split("count = ").filter(|b| b.contains("xi = ")) {
        let field = |name: &str| {
            let prefix = format!("{name} = ");
            let line = block.lines().find(|l| l.starts_with(&prefix)).unwrap();
            hex::decode(&line[prefix.len()..]).unwrap()
        };
        let key = key_from_seed(&field("xi")).unwrap();
        assert_eq!(key.public_key().raw(), field("pk"), "count {ran}: keygen");
        let (msg, ctx, sm) = (field("msg"), field("ctx"), field("sm"));
        let signature = &sm[..sm.len() - msg.len()];
        let v = verifier(&field("pk")).unwrap();
        assert!(
            verify_ctx(&v, &ctx, &msg, signature),
            "count {ran}: KAT signature"
        );
        let ours = key.sign_ml_dsa_with_context(&ctx, &msg).unwrap();
        assert!(
            verify_ctx(&v, &ctx, &msg, &ours),
            "count {ran}: own signature"
        );
        ran += 1;
    }
    assert_eq!(ran, 100);
    println!("NIST ML-DSA-65 deterministic KAT vectors: {ran} ran");
}
