//! The tree against the Certificate Transparency reference vectors (leaves, roots for
//! every size 0..8 and audit paths, as published with the RFC 6962 reference code and
//! transparency-dev/merkle), against a straight transcription of RFC 6962 §2.1 for
//! larger sizes, and the verifier against corrupted proofs.

use super::*;
use serde_json::json;

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// Root of the tree of the first `n` leaves, n = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, audit path).
const PATHS: [(u64, u64, &[&str]); 7] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        2,
        &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
    ),
    (
        1,
        2,
        &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
    ),
];

fn h(text: &str) -> Hash {
    parse_hash(text).unwrap()
}

fn reference_tree(n: usize) -> MerkleTree<Vec<u8>> {
    let mut t = MerkleTree::new();
    for l in LEAVES.iter().take(n) {
        t.push(hex::decode(l).unwrap()).unwrap();
    }
    t
}

#[test]
fn roots_of_every_size_are_the_reference_roots() {
    for (n, want) in ROOTS.iter().enumerate() {
        assert_eq!(to_hex(&reference_tree(n).root()), *want, "size {n}");
    }
}

#[test]
fn leaf_hashes_are_rfc6962_and_agree_with_the_tree() {
    // The root of a one-leaf tree is that leaf's hash.
    assert_eq!(to_hex(&leaf_hash(b"")), ROOTS[1]);
    for l in LEAVES {
        let data = hex::decode(l).unwrap();
        let mut one = MerkleTree::<Vec<u8>>::new();
        one.push(data.clone()).unwrap();
        assert_eq!(leaf_hash(&data), one.root());
        assert_eq!(leaf_hash(&data), rfc::leaf(&data));
    }
}

#[test]
fn audit_paths_are_the_reference_paths_and_verify() {
    for (index, size, path) in PATHS {
        let tree = reference_tree(size as usize);
        let got = tree.audit_path(index).unwrap();
        let want: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        assert_eq!(got, want, "leaf {index} of {size}");
        let data = hex::decode(LEAVES[index as usize]).unwrap();
        verify_inclusion(&data, index, size, &want, &h(ROOTS[size as usize])).unwrap();
    }
    assert_eq!(reference_tree(3).audit_path(3), None);
    assert_eq!(reference_tree(0).audit_path(0), None);
}

#[test]
fn corrupted_proofs_are_refused() {
    let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (index, size, path) in PATHS {
        let path: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        let root = h(ROOTS[size as usize]);
        let data = hex::decode(LEAVES[index as usize]).unwrap();
        let refused = |d: &[u8], i: u64, n: u64, p: &[Hash], r: &Hash| {
            assert!(
                verify_inclusion(d, i, n, p, r).is_err(),
                "accepted leaf {i} of {n} with {} hashes",
                p.len()
            );
        };
        refused(&data, index.wrapping_sub(1), size, &path, &root);
        refused(&data, index + 1, size, &path, &root);
        refused(&data, index ^ 2, size, &path, &root);
        refused(&data, index, size * 2, &path, &root);
        refused(&data, index, size / 2, &path, &root);
        refused(b"WrongLeaf", index, size, &path, &root);
        refused(&data, index, size, &path, &h(ROOTS[0]));
        refused(&data, index, size, &path, &some);
        refused(
            &data,
            index,
            size,
            &[path.clone(), vec![root]].concat(),
            &root,
        );
        refused(
            &data,
            index,
            size,
            &[vec![root], path.clone()].concat(),
            &root,
        );
        for i in 0..path.len() {
            let mut flipped = path.clone();
            flipped[i][0] ^= 8;
            refused(&data, index, size, &flipped, &root);
        }
        if let Some((_, shorter)) = path.split_last() {
            refused(&data, index, size, shorter, &root);
        }
        if path.len() > 1 {
            let inserted = [&path[..1], &[some], &path[1..]].concat();
            refused(&data, index, size, &inserted, &root);
        }
    }
    // Numbers a hostile server could send: refused, never a panic in the crate.
    let leaf = [0u8; 32];
    assert_eq!(
        verify_inclusion(&leaf, u64::MAX - 1, u64::MAX, &[], &leaf),
        Err(ProofError::TreeSizeTooLarge(u64::MAX))
    );
    assert!(verify_inclusion(&leaf, 0, 0, &[], &leaf).is_err());
}

#[test]
fn larger_trees_match_the_rfc_text_for_every_leaf() {
    let data: Vec<Hash> = (0u32..70).map(|i| sha256(&i.to_be_bytes())).collect();
    let mut tree = MerkleTree::<Hash>::new();
    for (n, d) in data.iter().enumerate() {
        tree.push(*d).unwrap();
        let size = n as u64 + 1;
        let leaves = &data[..=n];
        let root = tree.root();
        assert_eq!(root, rfc::mth(leaves), "size {size}");
        for m in 0..size {
            let path = tree.audit_path(m).unwrap();
            assert_eq!(path, rfc::path(m as usize, leaves), "leaf {m} of {size}");
            verify_inclusion(&data[m as usize], m, size, &path, &root).unwrap();
        }
    }
    assert_eq!(tree.leaf(3), Some(&data[3]));
}

#[test]
fn a_receipt_leaf_is_the_sha256_of_its_canonical_text() {
    let stored = r#"{"z": 1, "a": {"y": [1, 2.50], "b": "é"}, "signature": "s"}"#;
    let leaf = ReceiptLeaf::from_stored(stored);
    assert_eq!(
        leaf.text,
        r#"{"a":{"b":"é","y":[1,2.5]},"signature":"s","z":1}"#
    );
    assert_eq!(leaf.data, sha256(leaf.text.as_bytes()));
    assert_eq!(leaf.leaf_hash(), leaf_hash(&leaf.data));
    // A client recomputes the same leaf from the JSON it was served.
    let served = json!({"signature": "s", "z": 1, "a": {"b": "é", "y": [1, 2.5]}});
    assert_eq!(ReceiptLeaf::from_value(&served), leaf);
    // A corrupt stored text is logged as it is.
    let raw = ReceiptLeaf::from_stored("{not json");
    assert_eq!(raw.text, "{not json");
    assert_eq!(raw.data, sha256(b"{not json"));
}

#[test]
fn hashes_parse_from_hex_only() {
    let x = h(ROOTS[0]);
    assert_eq!(parse_hash(&ROOTS[0].to_uppercase()), Some(x));
    assert_eq!(parse_hash("e3b0"), None);
    assert_eq!(parse_hash(&format!("{}00", ROOTS[0])), None);
    assert_eq!(parse_hash(&"zz".repeat(32)), None);
}

#[test]
fn a_100k_leaf_tree_builds_and_proves_quickly() {
    let started = std::time::Instant::now();
    let mut tree = MerkleTree::<Hash>::new();
    for i in 0u32..100_000 {
        tree.push(sha256(&i.to_be_bytes())).unwrap();
    }
    let built = started.elapsed();
    let root = tree.root();
    let started = std::time::Instant::now();
    for m in (0..100_000u64).step_by(100) {
        let path = tree.audit_path(m).unwrap();
        verify_inclusion(&sha256(&(m as u32).to_be_bytes()), m, 100_000, &path, &root).unwrap();
    }
    let proved = started.elapsed();
    eprintln!("100,000 leaves: built in {built:?}; 1,000 proofs made and verified in {proved:?}");
    // Generous bounds (debug build, shared CPU): a regression to quadratic work fails.
    assert!(built.as_secs_f64() < 20.0, "{built:?}");
    assert!(proved.as_secs_f64() < 5.0, "{proved:?}");
}

/// RFC 6962 §2.1 transcribed literally (recursive, slow), only to check the crate.
mod rfc {
    use super::*;

    pub fn leaf(data: &[u8]) -> Hash {
        let mut v = vec![0u8];
        v.extend_from_slice(data);
        sha256(&v)
    }

    fn node(l: &Hash, r: &Hash) -> Hash {
        let mut v = vec![1u8];
        v.extend_from_slice(l);
        v.extend_from_slice(r);
        sha256(&v)
    }

    /// The largest power of two smaller than n (n > 1).
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    pub fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => sha256(b""),
            1 => leaf(&d[0]),
            n => {
                let k = split(n);
                node(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    pub fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n <= 1 {
            return vec![];
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }
}
