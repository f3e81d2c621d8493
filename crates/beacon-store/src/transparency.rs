//! The transparency log's rows (shared by both backends): queued receipts turned into
//! log entries with dense sequence numbers, and the records the runner reads back to
//! build its Merkle tree and proofs. The leaf format is beacon-core's
//! (`beacon_core::transparency::ReceiptLeaf`); see docs/store.md "Transparency log".

use std::collections::HashSet;

use beacon_core::transparency::{Hash, ReceiptLeaf, parse_hash, to_hex};
use chrono::{DateTime, Utc};

use crate::common::RowExt;
use crate::{Result, StoreError};

/// One entry of the log, with the receipt it commits to.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// The leaf index: 0, 1, 2, … with no gap.
    pub sequence: u64,
    pub execution_id: String,
    pub job_id: String,
    /// The leaf data: SHA-256 of `receipt`.
    pub leaf_data: Hash,
    /// RFC 6962 leaf hash of `leaf_data`.
    pub leaf_hash: Hash,
    /// The receipt's canonical text (the bytes `leaf_data` hashes).
    pub receipt: String,
    pub appended_at: DateTime<Utc>,
}

/// What the tree needs of an entry (no receipt text).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLeaf {
    pub sequence: u64,
    pub execution_id: String,
    pub leaf_data: Hash,
    pub appended_at: DateTime<Utc>,
}

/// The log's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHead {
    /// Entries in the log (= the next sequence number).
    pub size: u64,
    /// When the last entry was appended; `None` while the log is empty.
    pub updated_at: Option<DateTime<Utc>>,
    /// Receipts stored and waiting to be appended.
    pub queued: u64,
}

/// A receipt the database queued when it was written.
pub(crate) struct Queued {
    pub id: i64,
    pub execution_id: String,
    pub job_id: String,
    pub receipt: String,
}

/// A log row about to be written.
pub(crate) struct NewEntry {
    pub sequence: i64,
    pub execution_id: String,
    pub job_id: String,
    pub receipt_sha256: String,
    pub leaf_hash: String,
    pub receipt: String,
}

/// The leaf of each queued receipt, in queue order.
pub(crate) fn leaves(queued: &[Queued]) -> Vec<ReceiptLeaf> {
    queued
        .iter()
        .map(|q| ReceiptLeaf::from_stored(&q.receipt))
        .collect()
}

/// Numbers the queued receipts from `next` on, in queue order, skipping a receipt
/// whose leaf hash is already in the log (`logged`) or earlier in this batch: the same
/// receipt is logged once (appending is idempotent).
pub(crate) fn number(
    queued: Vec<Queued>,
    leaves: Vec<ReceiptLeaf>,
    logged: &HashSet<String>,
    next: i64,
) -> Vec<NewEntry> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(queued.len());
    for (q, leaf) in queued.into_iter().zip(leaves) {
        let leaf_hash = to_hex(&leaf.leaf_hash());
        if logged.contains(&leaf_hash) || !seen.insert(leaf_hash.clone()) {
            continue;
        }
        out.push(NewEntry {
            sequence: next + out.len() as i64,
            execution_id: q.execution_id,
            job_id: q.job_id,
            receipt_sha256: to_hex(&leaf.data),
            leaf_hash,
            receipt: leaf.text,
        });
    }
    out
}

fn hash_col(r: &impl RowExt, col: &str) -> Result<Hash> {
    let text = r.text(col)?;
    parse_hash(&text).ok_or_else(|| StoreError::Corrupt(format!("{col} is not a hash: {text:?}")))
}

/// The columns [`entry_from_row`] reads, as a literal for `concat!`.
macro_rules! entry_cols {
    () => {
        "sequence, execution_id, job_id, receipt_sha256, leaf_hash, receipt, appended_at"
    };
}
pub(crate) use entry_cols;

pub(crate) fn entry_from_row(r: &impl RowExt) -> Result<LogEntry> {
    Ok(LogEntry {
        sequence: crate::common::to_u64(r.int("sequence")?)?,
        execution_id: r.text("execution_id")?,
        job_id: r.text("job_id")?,
        leaf_data: hash_col(r, "receipt_sha256")?,
        leaf_hash: hash_col(r, "leaf_hash")?,
        receipt: r.text("receipt")?,
        appended_at: r.time("appended_at")?,
    })
}

pub(crate) fn leaf_from_row(r: &impl RowExt) -> Result<LogLeaf> {
    Ok(LogLeaf {
        sequence: crate::common::to_u64(r.int("sequence")?)?,
        execution_id: r.text("execution_id")?,
        leaf_data: hash_col(r, "receipt_sha256")?,
        appended_at: r.time("appended_at")?,
    })
}
