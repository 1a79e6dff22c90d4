use super::*;

/// The eight leaves of the RFC 6962 test vectors used by certificate-transparency-go
/// (`merkle` package tests) and their tree heads for sizes 1..=8; the same values come
/// out of a direct Python transcription of RFC 6962 §2.1.
fn vector_leaves() -> Vec<Vec<u8>> {
    vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        (0x50..0x58).collect(),
        (0x60..0x70).collect(),
    ]
}

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn rfc6962_tree_heads() {
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let mut tree = Tree::new();
    for (leaf, expected) in vector_leaves().iter().zip(ROOTS) {
        tree.push(leaf_hash(leaf));
        assert_eq!(hex::encode(tree.root()), expected, "size {}", tree.size());
    }
    println!("RFC 6962 tree-head vectors: {} ran", ROOTS.len());
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&(i as u32).to_be_bytes()))
        .collect()
}

/// Proofs made by the RFC 6962 §2.1.1–2.1.2 algorithms verify under the independent
/// RFC 9162 §2.1.3.2 / §2.1.4.2 algorithms for every index and size pair up to 40, and
/// any change to a proof is rejected.
#[test]
fn every_proof_up_to_40_leaves_verifies_and_tampering_fails() {
    let all = leaves(40);
    let mut checked = 0;
    for n in 1..=all.len() {
        let root = root_of(&all[..n]);
        for m in 0..n {
            let proof = inclusion_proof(m, &all[..n]).unwrap();
            verify_inclusion(m as u64, n as u64, &all[m], &proof, &root).unwrap();
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                bad[0] = node_hash(first, first);
                assert!(verify_inclusion(m as u64, n as u64, &all[m], &bad, &root).is_err());
            }
            checked += 1;
        }
        for old in 1..=n {
            let proof = consistency_proof(old, &all[..n]).unwrap();
            let old_root = root_of(&all[..old]);
            verify_consistency(old as u64, n as u64, &old_root, &root, &proof).unwrap();
            if old < n {
                let wrong = root_of(&all[1..old + 1]);
                assert!(verify_consistency(old as u64, n as u64, &wrong, &root, &proof).is_err());
                let mut short = proof.clone();
                short.pop();
                assert!(
                    verify_consistency(old as u64, n as u64, &old_root, &root, &short).is_err()
                );
            }
            checked += 1;
        }
    }
    println!("Merkle proofs cross-checked: {checked}");
}

proptest::proptest! {
    #[test]
    fn verifiers_never_panic(index in 0u64..100, size in 0u64..100, proof in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 0..10)) {
        let zero = [0u8; 32];
        let _ = verify_inclusion(index, size, &zero, &proof, &zero);
        let _ = verify_consistency(index, size, &zero, &zero, &proof);
    }
}

proptest::proptest! {
    /// The root at every size, from the complete subtrees the tree keeps, is the root
    /// RFC 6962 §2.1 defines over the leaves (`root_of`), and so is the current root.
    #[test]
    fn roots_from_complete_subtrees_are_the_rfc_6962_roots(n in 0usize..300) {
        let all = leaves(n);
        let mut tree = Tree::new();
        for leaf in &all {
            tree.push(*leaf);
            proptest::prop_assert_eq!(tree.root(), root_of(&all[..tree.size() as usize]));
        }
        for size in 0..=n {
            proptest::prop_assert_eq!(tree.root_at(size as u64).unwrap(), root_of(&all[..size]));
        }
        proptest::prop_assert!(tree.root_at(n as u64 + 1).is_err());
    }
}

/// Every proof the tree reads from its kept subtrees is the proof RFC 6962 §2.1.1–2.1.2
/// define over the leaves (`inclusion_proof`, `consistency_proof`), for every index and
/// size pair up to 70 leaves; sizes beyond the tree are refused.
#[test]
fn proofs_from_kept_subtrees_are_the_rfc_6962_proofs_up_to_70_leaves() {
    let all = leaves(70);
    let mut tree = Tree::new();
    for leaf in &all {
        tree.push(*leaf);
    }
    for n in 1..=all.len() {
        for m in 0..n {
            assert_eq!(
                tree.inclusion(m as u64, n as u64).unwrap(),
                inclusion_proof(m, &all[..n]).unwrap(),
                "inclusion of {m} in {n}"
            );
        }
        for old in 1..=n {
            assert_eq!(
                tree.consistency(old as u64, n as u64).unwrap(),
                consistency_proof(old, &all[..n]).unwrap(),
                "consistency of {old} with {n}"
            );
        }
        assert!(tree.inclusion(n as u64, n as u64).is_err());
        assert!(tree.consistency(0, n as u64).is_err());
        assert!(tree.consistency(n as u64 + 1, n as u64).is_err());
    }
    assert!(tree.inclusion(0, 71).is_err());
    assert!(tree.consistency(1, 71).is_err());
}

proptest::proptest! {
    /// The same at larger sizes, for sampled pairs.
    #[test]
    fn proofs_from_kept_subtrees_are_the_rfc_6962_proofs(
        n in 1usize..5000,
        picks in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 1..8),
    ) {
        let all = leaves(n);
        let mut tree = Tree::new();
        for leaf in &all {
            tree.push(*leaf);
        }
        for (a, b) in picks {
            let size = 1 + ((n - 1) as f64 * a) as usize;
            let index = ((size - 1) as f64 * b) as usize;
            proptest::prop_assert_eq!(
                tree.inclusion(index as u64, size as u64).unwrap(),
                inclusion_proof(index, &all[..size]).unwrap()
            );
            let old = index + 1;
            proptest::prop_assert_eq!(
                tree.consistency(old as u64, size as u64).unwrap(),
                consistency_proof(old, &all[..size]).unwrap()
            );
        }
    }
}
