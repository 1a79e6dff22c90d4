//! RFC 6962 Merkle tree hashing and proofs.
//!
//! `leaf = SHA-256(0x00 ‖ data)`, `node = SHA-256(0x01 ‖ left ‖ right)`; a tree of n > 1
//! leaves splits at k, the largest power of two below n (RFC 6962 §2.1). Proof
//! generation follows RFC 6962 §2.1.1–2.1.2; verification follows RFC 9162 §2.1.3.2 and
//! §2.1.4.2, an independent algorithm, so the two check each other in the tests.

use coffer_crypto::hash::sha256;

use crate::AuditError;

/// A 32-byte SHA-256 value.
pub type Hash = [u8; 32];

/// The hash of the empty tree.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// `SHA-256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH over leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the inclusion proof of leaf `m` in the tree of `leaves`.
pub fn inclusion_proof(m: usize, leaves: &[Hash]) -> Result<Vec<Hash>, AuditError> {
    if m >= leaves.len() {
        return Err(AuditError::OutOfRange("leaf index beyond tree size"));
    }
    fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
        let n = leaves.len();
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(m, &leaves[..k], out);
            out.push(root_of(&leaves[k..]));
        } else {
            path(m - k, &leaves[k..], out);
            out.push(root_of(&leaves[..k]));
        }
    }
    let mut out = Vec::new();
    path(m, leaves, &mut out);
    Ok(out)
}

/// PROOF(m, D[n]): the consistency proof between the trees of the first `m` and all
/// `leaves`.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Result<Vec<Hash>, AuditError> {
    if m == 0 || m > leaves.len() {
        return Err(AuditError::OutOfRange("old size must be 1..=new size"));
    }
    fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(root_of(leaves));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(m, &leaves[..k], complete, out);
            out.push(root_of(&leaves[k..]));
        } else {
            subproof(m - k, &leaves[k..], false, out);
            out.push(root_of(&leaves[..k]));
        }
    }
    let mut out = Vec::new();
    subproof(m, leaves, true, &mut out);
    Ok(out)
}

/// RFC 9162 §2.1.3.2: verifies that `leaf` is at `index` in a tree of `size` with `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), AuditError> {
    if index >= size {
        return Err(AuditError::BadProof);
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(AuditError::BadProof);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n == 0 && &r == root {
        Ok(())
    } else {
        Err(AuditError::BadProof)
    }
}

/// RFC 9162 §2.1.4.2: verifies that the tree of `old_size` with `old_root` is a prefix
/// of the tree of `new_size` with `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), AuditError> {
    if old_size == 0 || old_size > new_size {
        return Err(AuditError::BadProof);
    }
    if old_size == new_size {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(AuditError::BadProof)
        };
    }
    let mut proof = proof.to_vec();
    if old_size.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(AuditError::BadProof);
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return Err(AuditError::BadProof);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n == 0 && &fr == old_root && &sr == new_root {
        Ok(())
    } else {
        Err(AuditError::BadProof)
    }
}

/// An append-only tree of leaf hashes.
///
/// Besides the leaf hashes (kept to serve proofs), it keeps the root of every complete
/// subtree of 2^k leaves as they fill (`levels[k][i]` covers leaves `i·2^k ..
/// (i+1)·2^k`), about one more hash per leaf. With them the root of the tree at any
/// size is O(log n) hashes: the complete subtrees its size decomposes into, folded from
/// the right (RFC 6962 §2.1 splits at the largest power of two below the size, which
/// is that decomposition). The server computes roots while appends wait on the tree's
/// lock (a checkpoint, and the check that it extends the trusted one); recomputing them
/// from every leaf took about 140 ms a million entries, and every request waiting on an
/// audit commit waited that long. Proofs use the same subtrees: every sibling on an
/// RFC 6962 proof path is a range starting at a multiple of a power of two larger than
/// its length, so it too decomposes into kept subtrees, and a proof costs O(log² n)
/// hashes instead of hashing every leaf (which a request for a proof did under the
/// lock the audit writer's next batch waits for).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// `levels[0]` are the leaves; `levels[k]` the complete subtrees of 2^k leaves.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.leaves().len() as u64
    }

    /// Appends a leaf hash, and the root of every subtree it completes.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let nodes = &mut self.levels[level];
            nodes.push(node);
            if nodes.len() % 2 == 1 {
                return;
            }
            node = node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
            level += 1;
        }
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.leaves().get(i))
            .copied()
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, AuditError> {
        if size > self.size() {
            return Err(AuditError::OutOfRange("size beyond tree"));
        }
        self.range_root(0, size)
    }

    /// MTH of leaves `offset .. offset + len`, where `offset` is a multiple of a power
    /// of two at least `len` (zero included): the complete subtrees `len` decomposes
    /// into, largest (leftmost) first, are then all kept, and are folded from the right.
    fn range_root(&self, offset: u64, len: u64) -> Result<Hash, AuditError> {
        let mut subtrees = Vec::with_capacity(64);
        let mut at = offset;
        for level in (0..u64::BITS).rev() {
            let width = 1u64 << level;
            if len & width != 0 {
                let node = usize::try_from(at >> level)
                    .ok()
                    .and_then(|i| self.levels.get(level as usize)?.get(i))
                    .ok_or(AuditError::OutOfRange("size beyond tree"))?;
                subtrees.push(*node);
                at += width;
            }
        }
        let Some(mut root) = subtrees.pop() else {
            return Ok(empty_root());
        };
        while let Some(left) = subtrees.pop() {
            root = node_hash(&left, &root);
        }
        Ok(root)
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.root_at(self.size())
            .unwrap_or_else(|_| root_of(self.leaves()))
    }

    /// Inclusion proof of `index` in the tree of the first `size` leaves: PATH(m, D[n])
    /// of RFC 6962 §2.1.1, its siblings read from the kept subtrees.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        if size > self.size() {
            return Err(AuditError::OutOfRange("size beyond tree"));
        }
        if index >= size {
            return Err(AuditError::OutOfRange("leaf index beyond tree size"));
        }
        // Walks down from the whole tree, noting each sibling; the proof lists them
        // from the leaf up.
        let mut siblings = Vec::new();
        let (mut offset, mut n, mut m) = (0u64, size, index);
        while n > 1 {
            let k = split_u64(n);
            if m < k {
                siblings.push(self.range_root(offset + k, n - k)?);
                n = k;
            } else {
                siblings.push(self.range_root(offset, k)?);
                offset += k;
                m -= k;
                n -= k;
            }
        }
        siblings.reverse();
        Ok(siblings)
    }

    /// Consistency proof between sizes `old` and `new`: PROOF(m, D[n]) of RFC 6962
    /// §2.1.2, its subtree roots read from the kept subtrees.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        if new > self.size() {
            return Err(AuditError::OutOfRange("size beyond tree"));
        }
        if old == 0 || old > new {
            return Err(AuditError::OutOfRange("old size must be 1..=new size"));
        }
        // SUBPROOF(m, D[offset .. offset + n], complete), unrolled: each step notes one
        // subtree root, listed from the bottom up.
        let mut noted = Vec::new();
        let (mut offset, mut n, mut m, mut complete) = (0u64, new, old, true);
        while m != n {
            let k = split_u64(n);
            if m <= k {
                noted.push(self.range_root(offset + k, n - k)?);
                n = k;
            } else {
                noted.push(self.range_root(offset, k)?);
                offset += k;
                m -= k;
                n -= k;
                complete = false;
            }
        }
        if !complete {
            noted.push(self.range_root(offset, n)?);
        }
        noted.reverse();
        Ok(noted)
    }
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_u64(n: u64) -> u64 {
    1u64 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests;
