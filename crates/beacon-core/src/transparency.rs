//! The transparency log's shared contract, no I/O: what a leaf is (the SHA-256 of a
//! receipt's canonical text), the RFC 6962 Merkle tree over the leaves, audit paths,
//! and their offline verification (what `beacon verify` runs). See
//! docs/transparency.md.
//!
//! The tree is `ct-merkle`'s (RFC 6962: leaf hash SHA-256(0x00 || data), node hash
//! SHA-256(0x01 || left || right), the left subtree the largest power of two smaller
//! than the size, the empty tree's root SHA-256 of nothing); this module only adapts
//! it to fixed 32-byte hashes and guards the inputs on which the crate would panic.
//! The tests pin it to the Certificate Transparency reference vectors.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{InclusionProof, RootHash};
use serde_json::Value;
use sha2_merkle::{Digest, Sha256};

use crate::canonical::to_canonical_string;

/// The `algorithm` the runner publishes with its root.
pub const ALGORITHM: &str = "rfc6962-sha256";

/// A SHA-256 value (leaf data, leaf hash, node hash or root).
pub type Hash = [u8; 32];

/// Most leaves a tree accepts. ct-merkle panics past `usize::MAX / 2` leaves and its
/// index math past `u64::MAX / 2`; a log of 2^40 receipts is far beyond any runner.
pub const MAX_LEAVES: u64 = 1 << 40;

/// The bytes a stored receipt is logged as, and its leaf data (their SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptLeaf {
    /// The receipt's canonical text (`crate::canonical`), or the stored text itself
    /// when it is not JSON (a corrupt row is logged as it is, not skipped).
    pub text: String,
    /// SHA-256 of `text`: the tree's leaf data.
    pub data: Hash,
}

impl ReceiptLeaf {
    /// The leaf of a receipt as the store holds it (JSON text).
    pub fn from_stored(text: &str) -> ReceiptLeaf {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => ReceiptLeaf::from_value(&v),
            Err(_) => ReceiptLeaf {
                text: text.to_string(),
                data: sha256(text.as_bytes()),
            },
        }
    }

    /// The leaf of a receipt as a client received it (e.g. from
    /// `GET /executions/{id}/receipt`): the same canonical text the runner logged.
    pub fn from_value(receipt: &Value) -> ReceiptLeaf {
        let text = to_canonical_string(receipt);
        let data = sha256(text.as_bytes());
        ReceiptLeaf { text, data }
    }

    /// The RFC 6962 leaf hash of this leaf.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.data)
    }
}

fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// RFC 6962 §2.1 leaf hash: SHA-256(0x00 || leaf data). The tree computes the same
/// internally; this copy is for clients that name a leaf by its hash (a proof's
/// `leaf_hash`, a bundle's id), and a test keeps the two equal.
pub fn leaf_hash(leaf_data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf_data);
    h.finalize().into()
}

/// Hex text of a hash, lower case.
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

/// A hash from 64 hex digits (either case); `None` for anything else.
pub fn parse_hash(text: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// An append-only RFC 6962 tree held in memory: per leaf its data (generic so the
/// tests can use the reference vectors' variable-length leaves; the runner's leaves
/// are 32-byte receipt digests) and ct-merkle's node hashes, about 100 bytes a leaf.
#[derive(Debug, Clone)]
pub struct MerkleTree<L: AsRef<[u8]> = Hash> {
    inner: MemoryBackedTree<Sha256, L>,
}

/// The tree already holds [`MAX_LEAVES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the transparency tree is full ({MAX_LEAVES} leaves)")]
pub struct TreeFull;

impl<L: AsRef<[u8]>> Default for MerkleTree<L> {
    fn default() -> Self {
        MerkleTree {
            inner: MemoryBackedTree::new(),
        }
    }
}

impl<L: AsRef<[u8]>> MerkleTree<L> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf (its leaf data, hashed by the tree).
    pub fn push(&mut self, leaf: L) -> Result<(), TreeFull> {
        if self.inner.len() >= MAX_LEAVES {
            return Err(TreeFull);
        }
        self.inner.push(leaf);
        Ok(())
    }

    /// The number of leaves (the tree size).
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The Merkle Tree Hash of every leaf (SHA-256 of nothing when empty).
    pub fn root(&self) -> Hash {
        (*self.inner.root().as_bytes()).into()
    }

    /// The leaf data at `index`.
    pub fn leaf(&self, index: u64) -> Option<&L> {
        self.inner.get(usize::try_from(index).ok()?)
    }

    /// The audit path (RFC 6962 §2.1.1 `PATH(m, D[n])`, leaf to root) of the leaf at
    /// `index` in the current tree; `None` when there is no such leaf.
    pub fn audit_path(&self, index: u64) -> Option<Vec<Hash>> {
        if index >= self.len() {
            return None;
        }
        let proof = self.inner.prove_inclusion(usize::try_from(index).ok()?);
        Some(split_hashes(proof.as_bytes()))
    }
}

fn split_hashes(bytes: &[u8]) -> Vec<Hash> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| Hash::try_from(c).ok())
        .collect()
}

/// Why an inclusion proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is not in a tree of {tree_size} leaves")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("tree size {0} is implausible")]
    TreeSizeTooLarge(u64),
    #[error("the audit path has the wrong length for this leaf index and tree size")]
    WrongPathLength,
    #[error("the audit path does not lead from this leaf to this root")]
    RootMismatch,
}

/// Checks offline that `leaf_data` is leaf `index` of the tree of `tree_size` leaves
/// whose root is `root`, given its audit path (leaf to root).
pub fn verify_inclusion(
    leaf_data: &[u8],
    index: u64,
    tree_size: u64,
    audit_path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // ct-merkle's index math asserts indices up to u64::MAX / 2; a hostile server's
    // numbers must fail here, not panic there.
    if tree_size > MAX_LEAVES {
        return Err(ProofError::TreeSizeTooLarge(tree_size));
    }
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    let bytes: Vec<u8> = audit_path.iter().flatten().copied().collect();
    let proof =
        InclusionProof::<Sha256>::try_from_bytes(bytes).map_err(|_| ProofError::WrongPathLength)?;
    let root = RootHash::<Sha256>::new((*root).into(), tree_size);
    root.verify_inclusion(&leaf_data, index, &proof)
        .map_err(|e| match e {
            ct_merkle::InclusionVerifError::MalformedProof => ProofError::WrongPathLength,
            ct_merkle::InclusionVerifError::IndexOutOfRange
            | ct_merkle::InclusionVerifError::TreeEmpty => {
                ProofError::IndexOutOfRange { index, tree_size }
            }
            ct_merkle::InclusionVerifError::IncorrectHash => ProofError::RootMismatch,
        })
}

#[cfg(test)]
#[path = "transparency_tests.rs"]
mod tests;
