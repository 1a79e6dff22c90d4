//! aws-lc-rs against RustCrypto for each primitive Coffer uses, per core (criterion runs one
//! thread). Benchmarks are named `<primitive>/<backend>`, backend being `aws-lc-rs` or
//! `rustcrypto`. Run with `cargo bench` from this directory (see README.md).
//!
//! Fairness rules followed throughout:
//! - Both backends get the same key material (fixed test seeds, not secrets), and each setup
//!   cross-checks that the two agree (same public key, each verifies the other's signatures),
//!   so a faster figure can't come from doing less work.
//! - Keys are parsed or expanded once, outside the timed loop, as a long-lived service holds
//!   them; signatures are verified from bytes, as they arrive from a client.
//! - Each backend is called through its ordinary safe API, the way Coffer would call it.
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Coffer signs and MACs short, fixed-size inputs (digests, headers); 64 bytes stands for them.
const MSG: [u8; 64] = [0x5a; 64];

/// Fixed test key material, shared by both backends so their outputs can be compared.
const SEED_32: [u8; 32] = [0x42; 32];

fn aes_256_gcm(c: &mut Criterion) {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

    // Reusing one nonce is only acceptable because nothing here leaves the process; it keeps
    // nonce generation out of the figure, which would otherwise measure the RNG as well.
    const NONCE: [u8; 12] = [7; 12];

    let lc = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &SEED_32).unwrap());
    let rc = aes_gcm::Aes256Gcm::new(&SEED_32.into());
    let rc_nonce = aes_gcm::Nonce::from(NONCE);

    // Same key, nonce and plaintext must give the same ciphertext and tag.
    {
        let mut a = [0x11u8; 32];
        let mut b = a;
        let lc_tag = lc
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(NONCE), Aad::empty(), &mut a)
            .unwrap();
        let rc_tag = rc
            .encrypt_in_place_detached(&rc_nonce, b"", &mut b)
            .unwrap();
        assert_eq!(a, b, "AES-GCM ciphertexts differ");
        assert_eq!(lc_tag.as_ref(), &rc_tag[..], "AES-GCM tags differ");
    }

    // Seal then open in place with a detached tag on both sides: one round trip, no allocation,
    // and the buffer ends each iteration holding the plaintext again.
    let mut group = c.benchmark_group("aes256gcm_seal_open_32B");
    group.throughput(Throughput::Bytes(32));
    group.bench_function("aws-lc-rs", |b| {
        let mut buf = [0x11u8; 32];
        b.iter(|| {
            let tag = lc
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(NONCE),
                    Aad::empty(),
                    black_box(&mut buf),
                )
                .unwrap();
            lc.open_in_place_separate_tag(
                Nonce::assume_unique_for_key(NONCE),
                Aad::empty(),
                tag.as_ref(),
                black_box(&mut buf),
            )
            .unwrap();
        })
    });
    group.bench_function("rustcrypto", |b| {
        let mut buf = [0x11u8; 32];
        b.iter(|| {
            let tag = rc
                .encrypt_in_place_detached(&rc_nonce, b"", black_box(&mut buf))
                .unwrap();
            rc.decrypt_in_place_detached(&rc_nonce, b"", black_box(&mut buf), &tag)
                .unwrap();
        })
    });
    group.finish();

    // Sealing re-encrypts the previous ciphertext each iteration; cost doesn't depend on content.
    let mut group = c.benchmark_group("aes256gcm_seal_4KiB");
    group.throughput(Throughput::Bytes(4096));
    group.bench_function("aws-lc-rs", |b| {
        let mut buf = vec![0x11u8; 4096];
        b.iter(|| {
            lc.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(NONCE),
                Aad::empty(),
                black_box(&mut buf[..]),
            )
            .unwrap()
        })
    });
    group.bench_function("rustcrypto", |b| {
        let mut buf = vec![0x11u8; 4096];
        b.iter(|| {
            rc.encrypt_in_place_detached(&rc_nonce, b"", black_box(&mut buf[..]))
                .unwrap()
        })
    });
    group.finish();
}

fn ed25519(c: &mut Criterion) {
    use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, ParsedPublicKey};
    use ed25519_dalek::{Signer, Verifier};

    let lc = Ed25519KeyPair::from_seed_unchecked(&SEED_32).unwrap();
    let lc_pub = ParsedPublicKey::new(&ED25519, lc.public_key().as_ref()).unwrap();
    let rc = ed25519_dalek::SigningKey::from_bytes(&SEED_32);
    let rc_pub = rc.verifying_key();

    // Ed25519 is deterministic: same seed and message must give byte-identical signatures.
    assert_eq!(lc.public_key().as_ref(), rc_pub.as_bytes());
    let sig = lc.sign(&MSG).as_ref().to_vec();
    assert_eq!(sig, rc.sign(&MSG).to_bytes(), "Ed25519 signatures differ");

    let mut group = c.benchmark_group("ed25519_sign");
    group.bench_function("aws-lc-rs", |b| b.iter(|| lc.sign(black_box(&MSG))));
    group.bench_function("rustcrypto", |b| b.iter(|| rc.sign(black_box(&MSG))));
    group.finish();

    let mut group = c.benchmark_group("ed25519_verify");
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| lc_pub.verify_sig(black_box(&MSG), black_box(&sig)).unwrap())
    });
    // `verify` (not `verify_strict`) is dalek's default, RFC 8032 check, like aws-lc's.
    group.bench_function("rustcrypto", |b| {
        b.iter(|| {
            let s = ed25519_dalek::Signature::from_slice(black_box(&sig)).unwrap();
            rc_pub.verify(black_box(&MSG), &s).unwrap()
        })
    });
    group.finish();
}

fn ecdsa_p256(c: &mut Criterion) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
        ParsedPublicKey,
    };
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{DerSignature, Signature, SigningKey};

    let rc = SigningKey::from_slice(&SEED_32).unwrap();
    let rc_pub = *rc.verifying_key();
    let public_sec1 = rc_pub.to_encoded_point(false);
    let lc = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &SEED_32,
        public_sec1.as_bytes(),
    )
    .unwrap();
    let lc_pub = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, lc.public_key().as_ref()).unwrap();
    let rng = SystemRandom::new();

    // ECDSA signatures differ between runs (aws-lc draws a random nonce, p256 derives one per
    // RFC 6979), so check agreement by verifying each backend's DER signature with the other.
    let lc_sig = lc.sign(&rng, &MSG).unwrap().as_ref().to_vec();
    let rc_sig: DerSignature = rc.sign(&MSG);
    rc_pub
        .verify(&MSG, &Signature::from_der(&lc_sig).unwrap())
        .expect("p256 rejects an aws-lc-rs signature");
    lc_pub
        .verify_sig(&MSG, rc_sig.as_bytes())
        .expect("aws-lc-rs rejects a p256 signature");

    // Both produce ASN.1 DER, the encoding Coffer stores.
    let mut group = c.benchmark_group("ecdsa_p256_sign");
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| lc.sign(&rng, black_box(&MSG)).unwrap())
    });
    group.bench_function("rustcrypto", |b| {
        b.iter(|| -> DerSignature { rc.sign(black_box(&MSG)) })
    });
    group.finish();

    let mut group = c.benchmark_group("ecdsa_p256_verify");
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| {
            lc_pub
                .verify_sig(black_box(&MSG), black_box(&lc_sig))
                .unwrap()
        })
    });
    group.bench_function("rustcrypto", |b| {
        b.iter(|| {
            let s = Signature::from_der(black_box(&lc_sig)).unwrap();
            rc_pub.verify(black_box(&MSG), &s).unwrap()
        })
    });
    group.finish();
}

fn ml_dsa_65(c: &mut Criterion) {
    use aws_lc_rs::signature::{
        KeyPair, ML_DSA_65, ML_DSA_65_SIGNING, ParsedPublicKey, PqdsaKeyPair,
    };
    use ml_dsa::signature::RandomizedSigner;
    use ml_dsa::{B32, Keypair, MlDsa65, Signature, Verifier};

    let lc = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, &SEED_32).unwrap();
    let lc_pub = ParsedPublicKey::new(&ML_DSA_65, lc.public_key().as_ref()).unwrap();
    let rc = ml_dsa::SigningKey::<MlDsa65>::from_seed(&B32::from(SEED_32));
    let rc_pub = rc.verifying_key();
    let mut sys_rng = getrandom::SysRng;

    assert_eq!(
        lc.public_key().as_ref(),
        rc_pub.encode().as_slice(),
        "ML-DSA-65 public keys from the same seed differ"
    );
    let mut sig = vec![0u8; ML_DSA_65_SIGNING.signature_len()];
    lc.sign(&MSG, &mut sig).unwrap();
    let rc_sig = rc
        .expanded_key()
        .try_sign_with_rng(&mut sys_rng, &MSG)
        .unwrap();
    rc_pub
        .verify(&MSG, &Signature::try_from(sig.as_slice()).unwrap())
        .expect("ml-dsa rejects an aws-lc-rs signature");
    lc_pub
        .verify_sig(&MSG, rc_sig.encode().as_slice())
        .expect("aws-lc-rs rejects an ml-dsa signature");

    // Signing is a rejection-sampling loop whose iteration count depends on message and
    // randomness. aws-lc signs hedged (fresh randomness each call); a deterministic RustCrypto
    // sign of one fixed message would repeat a single lucky or unlucky iteration count
    // forever, so RustCrypto signs randomized too, and both average over the distribution.
    let mut group = c.benchmark_group("mldsa65_sign");
    group.bench_function("aws-lc-rs", |b| {
        let mut buf = vec![0u8; ML_DSA_65_SIGNING.signature_len()];
        b.iter(|| lc.sign(black_box(&MSG), &mut buf).unwrap())
    });
    group.bench_function("rustcrypto", |b| {
        b.iter(|| {
            rc.expanded_key()
                .try_sign_with_rng(&mut sys_rng, black_box(&MSG))
                .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("mldsa65_verify");
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| lc_pub.verify_sig(black_box(&MSG), black_box(&sig)).unwrap())
    });
    group.bench_function("rustcrypto", |b| {
        b.iter(|| {
            let s = Signature::try_from(black_box(sig.as_slice())).unwrap();
            rc_pub.verify(black_box(&MSG), &s).unwrap()
        })
    });
    group.finish();
}

fn hmac_sha256(c: &mut Criterion) {
    use aws_lc_rs::hmac as lc_hmac;
    use hmac::{Hmac, Mac};

    let lc = lc_hmac::Key::new(lc_hmac::HMAC_SHA256, &SEED_32);
    // Keyed once: cloning the keyed state per message is RustCrypto's equivalent of aws-lc's
    // `Key`, which also holds the precomputed inner and outer pads.
    let rc = Hmac::<sha2::Sha256>::new_from_slice(&SEED_32).unwrap();

    assert_eq!(
        lc_hmac::sign(&lc, &MSG).as_ref(),
        &rc.clone().chain_update(MSG).finalize().into_bytes()[..],
        "HMAC-SHA256 tags differ"
    );

    let mut group = c.benchmark_group("hmac_sha256_64B");
    group.throughput(Throughput::Bytes(MSG.len() as u64));
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| lc_hmac::sign(&lc, black_box(&MSG)))
    });
    group.bench_function("rustcrypto", |b| {
        b.iter(|| rc.clone().chain_update(black_box(MSG)).finalize())
    });
    group.finish();
}

criterion_group!(
    benches,
    aes_256_gcm,
    ed25519,
    ecdsa_p256,
    ml_dsa_65,
    hmac_sha256
);
criterion_main!(benches);
