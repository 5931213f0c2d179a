//! Merkle tree hashing of a log, as RFC 9162 §2.1 defines it (unchanged
//! from RFC 6962 §2.1): the tree head of a list of entries, audit
//! (inclusion) paths and consistency proofs, and their verification. Pure
//! functions over leaf hashes, so the audit log's tree, its checkpoints and
//! an offline verifier share one definition.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of one entry: `SHA-256(0x00 || entry)` (RFC 9162 §2.1.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an inner node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (`n` > 1): where RFC 9162
/// splits a list into its left and right subtrees.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1); the
/// empty list's is `SHA-256()`.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [one] => *one,
        _ => {
            let (left, right) = leaves.split_at(split(leaves.len()));
            node_hash(&root(left), &root(right))
        }
    }
}

/// The audit path of leaf `m` in the tree of `leaves` (RFC 9162
/// §2.1.3.1, `PATH(m, D[n])`); `None` when `m` is not a leaf.
pub fn inclusion_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    (m < leaves.len()).then(|| path(leaves, m))
}

fn path(leaves: &[Hash], m: usize) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (left, right) = leaves.split_at(k);
    if m < k {
        let mut p = path(left, m);
        p.push(root(right));
        p
    } else {
        let mut p = path(right, m - k);
        p.push(root(left));
        p
    }
}

/// The consistency proof between the tree of the first `m` leaves and the
/// tree of all of them (RFC 9162 §2.1.4.1, `PROOF(m, D[n])`); `None`
/// unless 0 < `m` <= n.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    (m > 0 && m <= leaves.len()).then(|| subproof(m, leaves, true))
}

fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole { Vec::new() } else { vec![root(leaves)] };
    }
    let k = split(n);
    let (left, right) = leaves.split_at(k);
    if m <= k {
        let mut p = subproof(m, left, whole);
        p.push(root(right));
        p
    } else {
        let mut p = subproof(m - k, right, false);
        p.push(root(left));
        p
    }
}

/// Whether `proof` shows the leaf hash `leaf` at `index` in a tree of
/// `size` leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
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
    s_n == 0 && r == *root
}

/// Whether `proof` shows the tree of `size1` leaves with root `root1` to be
/// the first `size1` leaves of the tree of `size2` leaves with root `root2`
/// (RFC 9162 §2.1.4.2): the log was only appended to.
pub fn verify_consistency(size1: u64, size2: u64, root1: &Hash, root2: &Hash, proof: &[Hash]) -> bool {
    if size1 == 0 || size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    // A first tree that is a full left subtree is not in the proof: it
    // starts it.
    let mut nodes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        nodes.push(*root1);
    }
    nodes.extend_from_slice(proof);
    let Some((first, rest)) = nodes.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
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
    fr == *root1 && sr == *root2 && s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use proptest::prelude::*;

    /// The test entries of RFC 6962's reference implementation and the
    /// roots of their first 1 to 8 (as published with it; recomputed
    /// independently when this was written).
    const ENTRIES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
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

    fn leaves() -> Vec<Hash> {
        ENTRIES
            .iter()
            .map(|e| {
                let bytes: Vec<u8> = (0..e.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&e[i..i + 2], 16).unwrap())
                    .collect();
                leaf_hash(&bytes)
            })
            .collect()
    }

    #[test]
    fn roots_match_the_reference_vectors() {
        let l = leaves();
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(&root(&l[..=n])), *want, "{} leaves", n + 1);
        }
        assert_eq!(
            hex::encode(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_reference_paths_and_proofs_have_their_published_lengths() {
        let l = leaves();
        // RFC 6962 §2.1.3's example tree of seven leaves (a…f and j the
        // leaves, g h i their pairs, k the first four, l = i + j): the
        // audit paths of d0, d3, d4 and d6 are [b, h, l], [c, g, l],
        // [f, j, k], [i, k]; PROOF(3, D[7]) = [c, d, g, l],
        // PROOF(4, D[7]) = [l], PROOF(6, D[7]) = [i, j, k].
        let seven = &l[..7];
        let lens = |m| inclusion_proof(seven, m).unwrap().len();
        assert_eq!([lens(0), lens(3), lens(4), lens(6)], [3, 3, 3, 2]);
        let proof = |m| consistency_proof(seven, m).unwrap().len();
        assert_eq!([proof(3), proof(4), proof(6)], [4, 1, 3]);
        // d6's path is [i, k]: i is d4 and d5 hashed, k the first four.
        let i = node_hash(&l[4], &l[5]);
        assert_eq!(inclusion_proof(seven, 6).unwrap(), vec![i, root(&l[..4])]);
        assert_eq!(consistency_proof(seven, 6).unwrap(), vec![i, l[6], root(&l[..4])]);
        assert_eq!(inclusion_proof(&l, 8), None);
        assert_eq!(consistency_proof(&l, 0), None);
    }

    fn tree(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect()
    }

    proptest! {
        /// Every leaf's path verifies against the root, and a path checked
        /// for another leaf, index or root does not.
        #[test]
        fn inclusion_proofs_verify_and_nothing_else_does(n in 1usize..70, pick in any::<proptest::sample::Index>()) {
            let l = tree(n);
            let r = root(&l);
            let m = pick.index(n);
            let p = inclusion_proof(&l, m).unwrap();
            let (m64, n64) = (m as u64, n as u64);
            prop_assert!(verify_inclusion(&l[m], m64, n64, &p, &r));
            prop_assert!(!verify_inclusion(&leaf_hash(b"forged"), m64, n64, &p, &r));
            prop_assert!(!verify_inclusion(&l[m], m64, n64, &p, &leaf_hash(b"other root")));
            if n > 1 {
                prop_assert!(!verify_inclusion(&l[m], (m64 + 1) % n64, n64, &p, &r));
            }
        }

        /// Every prefix of a log is consistent with the log; a changed
        /// entry in the prefix, or a proof for another size, is not.
        #[test]
        fn consistency_proofs_verify_and_a_rewrite_does_not(n in 1usize..70, pick in any::<proptest::sample::Index>()) {
            let l = tree(n);
            let m = pick.index(n) + 1;
            let p = consistency_proof(&l, m).unwrap();
            let (r1, r2) = (root(&l[..m]), root(&l));
            let (m64, n64) = (m as u64, n as u64);
            prop_assert!(verify_consistency(m64, n64, &r1, &r2, &p));
            let mut rewritten = l.clone();
            rewritten[m - 1] = leaf_hash(b"rewritten");
            prop_assert!(!verify_consistency(m64, n64, &root(&rewritten[..m]), &r2, &p));
            prop_assert!(!verify_consistency(m64, n64, &r1, &root(&rewritten), &p));
            if m < n {
                prop_assert!(!verify_consistency(m64 + 1, n64, &r1, &r2, &p));
            }
        }
    }
}
