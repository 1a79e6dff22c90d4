//! Criterion benchmarks of every primitive Coffer exposes, per core (criterion runs one
//! thread). Figures go to PERFORMANCE.md with the command that produced them:
//! `cargo bench -p coffer-crypto --bench primitives`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;

use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};
use coffer_crypto::{
    AeadKey, EncryptionAlgorithm, EncryptionContext, KeyMaterial, KeySpec, MacKey, PqVerifyMode,
    VerifyingKey,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TENANT: [u8; 16] = [1; 16];

fn envelopes(c: &mut Criterion) {
    let key = AeadKey::generate().unwrap();
    let context = EncryptionContext::from_pairs([("bucket", "invoices")]).unwrap();
    let binding = Binding {
        tenant_id: &TENANT,
        context: &context,
    };
    let header = EnvelopeHeader {
        key_id: [9; 16],
        key_version: 1,
    };
    let mut group = c.benchmark_group("envelope");
    for (name, size) in [("32B", 32usize), ("4KiB", 4096)] {
        let plaintext = vec![0x42u8; size];
        let blob = envelope::seal(&key, header, binding, &plaintext).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("wrap_{name}"), |b| {
            b.iter(|| envelope::seal(&key, header, binding, black_box(&plaintext)).unwrap())
        });
        group.bench_function(format!("unwrap_{name}"), |b| {
            b.iter(|| envelope::open(&key, black_box(&blob), binding).unwrap())
        });
    }
    group.finish();
    c.bench_function("xaes/key_load", |b| {
        b.iter(|| AeadKey::from_bytes(black_box(&[7u8; 32])).unwrap())
    });
}

fn signatures(c: &mut Criterion) {
    let message = [0x17u8; 64];
    let mut group = c.benchmark_group("signature");
    for spec in KeySpec::ALL.into_iter().filter(|s| s.is_signing()) {
        let KeyMaterial::Signing(key) = KeyMaterial::generate(spec).unwrap() else {
            unreachable!()
        };
        let verifier = VerifyingKey::new(key.public_key()).unwrap();
        let signature = key.sign(&message).unwrap();
        group.bench_function(format!("sign_{spec}"), |b| {
            b.iter(|| key.sign(black_box(&message)).unwrap())
        });
        group.bench_function(format!("verify_{spec}"), |b| {
            b.iter(|| {
                verifier
                    .verify(black_box(&message), &signature, PqVerifyMode::And)
                    .unwrap()
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("rsa_oaep");
    for spec in [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096] {
        let KeyMaterial::Signing(key) = KeyMaterial::generate(spec).unwrap() else {
            unreachable!()
        };
        let public = key.public_key();
        let algorithm = EncryptionAlgorithm::RsaOaepSha256;
        let ciphertext = public.encrypt(algorithm, &[0x17; 32]).unwrap();
        group.bench_function(format!("encrypt_{spec}"), |b| {
            b.iter(|| public.encrypt(algorithm, black_box(&[0x17; 32])).unwrap())
        });
        group.bench_function(format!("decrypt_{spec}"), |b| {
            b.iter(|| key.decrypt(algorithm, black_box(&ciphertext)).unwrap())
        });
    }
    group.finish();
    let mac = MacKey::generate().unwrap();
    c.bench_function("mac/hmac_sha256_64B", |b| {
        b.iter(|| mac.sign(black_box(&message)))
    });
}

criterion_group!(benches, envelopes, signatures);
criterion_main!(benches);
