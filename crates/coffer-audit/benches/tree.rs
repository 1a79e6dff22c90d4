//! Criterion benchmark of the audit log's tree: the root of a million-leaf log, and an
//! inclusion and a consistency proof in it, from the complete subtrees `Tree` keeps
//! against computing them from every leaf (what a checkpoint, and a request for a
//! proof, cost before, while appends waited). Figures go to PERFORMANCE.md with the
//! command that produced them: `cargo bench -p coffer-audit --bench tree`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::hint::black_box;

use coffer_audit::merkle::{Tree, consistency_proof, inclusion_proof, leaf_hash, root_of};
use criterion::{Criterion, criterion_group, criterion_main};

const LEAVES: u32 = 1_000_000;

fn roots(c: &mut Criterion) {
    let leaves: Vec<_> = (0..LEAVES).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut tree = Tree::new();
    for leaf in &leaves {
        tree.push(*leaf);
    }
    let mut group = c.benchmark_group("merkle");
    group.sample_size(10);
    group.bench_function("root_1M_leaves_from_subtrees", |b| {
        b.iter(|| black_box(tree.root()))
    });
    group.bench_function("root_1M_leaves_from_every_leaf", |b| {
        b.iter(|| black_box(root_of(black_box(&leaves))))
    });
    let (index, old, size) = (123_456u64, 654_321u64, u64::from(LEAVES));
    group.bench_function("inclusion_1M_leaves_from_subtrees", |b| {
        b.iter(|| black_box(tree.inclusion(index, size)))
    });
    group.bench_function("inclusion_1M_leaves_from_every_leaf", |b| {
        b.iter(|| black_box(inclusion_proof(index as usize, black_box(&leaves))))
    });
    group.bench_function("consistency_1M_leaves_from_subtrees", |b| {
        b.iter(|| black_box(tree.consistency(old, size)))
    });
    group.bench_function("consistency_1M_leaves_from_every_leaf", |b| {
        b.iter(|| black_box(consistency_proof(old as usize, black_box(&leaves))))
    });
    group.finish();
}

criterion_group!(benches, roots);
criterion_main!(benches);
