//! The transparency-log half of `beacon verify`: for a receipt already checked, fetch
//! its inclusion proof, recompute its leaf from the receipt itself, verify the audit
//! path offline (RFC 6962, beacon-core), and require the proof's root to be the root
//! the runner publishes for that tree size. Nothing the runner says is taken on trust
//! except which root it publishes (docs/transparency.md).

use std::collections::HashMap;
use std::time::Duration;

use beacon_core::transparency::{Hash, ReceiptLeaf, parse_hash, to_hex, verify_inclusion};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::{Client, ClientError};

/// How often the proof is asked for again when the log grew between fetching the
/// proof and fetching the root (a busy runner appends every poll interval).
const ROOT_RETRIES: usize = 5;

/// One execution's standing in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Included at `leaf_index` in the published tree of `tree_size` entries.
    Ok { leaf_index: u64, tree_size: u64 },
    /// The log has no entry for the execution (after waiting).
    Missing(String),
    /// The log answered, and what it answered does not hold up.
    Fails(String),
}

impl Standing {
    pub fn to_json(&self, execution_id: &str) -> Value {
        match self {
            Standing::Ok {
                leaf_index,
                tree_size,
            } => json!({"execution_id": execution_id, "log": "ok",
                        "leaf_index": leaf_index, "tree_size": tree_size}),
            Standing::Missing(why) => {
                json!({"execution_id": execution_id, "log": "missing", "detail": why})
            }
            Standing::Fails(why) => {
                json!({"execution_id": execution_id, "log": "fails", "detail": why})
            }
        }
    }
}

/// Checks receipts against one runner's log.
pub struct LogCheck<'a> {
    client: &'a Client,
    /// Published roots by tree size, as fetched.
    roots: HashMap<u64, Hash>,
    /// The newest published head.
    pub latest: Option<(u64, Hash)>,
    /// Until when a missing entry is waited for (receipts are appended within
    /// seconds of being stored; a job that just ended may not be logged yet).
    wait_until: Instant,
}

impl<'a> LogCheck<'a> {
    /// Starts by reading the published root: a runner without a log fails here once,
    /// instead of once per execution.
    pub async fn start(client: &'a Client, wait: Duration) -> Result<LogCheck<'a>, String> {
        let mut check = LogCheck {
            client,
            roots: HashMap::new(),
            latest: None,
            wait_until: Instant::now() + wait,
        };
        check.fetch_root().await?;
        Ok(check)
    }

    async fn fetch_root(&mut self) -> Result<(), String> {
        let r = self
            .client
            .get("/api/v1/transparency/root")
            .await
            .map_err(|e| format!("the runner publishes no transparency root: {e}"))?;
        let root = r["root"]
            .as_str()
            .or(r["merkle_root"].as_str())
            .and_then(parse_hash);
        let (Some(root), Some(size)) = (root, r["size"].as_u64().or(r["sequence"].as_u64())) else {
            return Err(format!("the published root is unreadable: {r}"));
        };
        if let Some(known) = self.roots.insert(size, root) {
            if known != root {
                return Err(format!(
                    "the runner published two roots for a tree of {size} entries ({} and {})",
                    to_hex(&known),
                    to_hex(&root)
                ));
            }
        }
        self.latest = Some((size, root));
        Ok(())
    }

    /// The proof for `execution_id`, waiting for a missing one until `wait_until`.
    async fn fetch_proof(&self, execution_id: &str) -> Result<Value, Standing> {
        let path = format!("/api/v1/transparency/proof?execution_id={execution_id}");
        loop {
            match self.client.get(&path).await {
                Ok(p) => return Ok(p),
                Err(ClientError::Refused {
                    status: 404,
                    message,
                    ..
                }) => {
                    if Instant::now() >= self.wait_until {
                        return Err(Standing::Missing(format!(
                            "not in the transparency log ({message})"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(Standing::Fails(format!("no proof: {e}"))),
            }
        }
    }

    /// Where `receipt` (the one the runner serves for the execution, already
    /// checked) stands in the log.
    pub async fn check(&mut self, execution_id: &str, receipt: &Value) -> Standing {
        let leaf = ReceiptLeaf::from_value(receipt);
        for _ in 0..ROOT_RETRIES {
            let proof = match self.fetch_proof(execution_id).await {
                Ok(p) => p,
                Err(standing) => return standing,
            };
            let (index, size, root) = match offline(&proof, &leaf) {
                Ok(v) => v,
                Err(why) => return Standing::Fails(why),
            };
            if !self.roots.contains_key(&size) {
                if let Err(why) = self.fetch_root().await {
                    return Standing::Fails(why);
                }
            }
            match self.roots.get(&size) {
                Some(published) if *published == root => {
                    return Standing::Ok {
                        leaf_index: index,
                        tree_size: size,
                    };
                }
                Some(published) => {
                    return Standing::Fails(format!(
                        "the proof leads to root {} but the runner publishes {} for {size} entries",
                        to_hex(&root),
                        to_hex(published)
                    ));
                }
                // The log grew between the proof and the root: ask again.
                None => continue,
            }
        }
        Standing::Fails(format!(
            "the log kept growing: no proof matched a published root in {ROOT_RETRIES} tries"
        ))
    }
}

/// Checks a proof against the receipt, offline. Returns (leaf index, tree size, root).
fn offline(proof: &Value, leaf: &ReceiptLeaf) -> Result<(u64, u64, Hash), String> {
    let field_hash = |k: &str| proof[k].as_str().and_then(parse_hash);
    let (Some(index), Some(size), Some(root), Some(claimed)) = (
        proof["leaf_index"].as_u64(),
        proof["tree_size"].as_u64(),
        field_hash("merkle_root"),
        field_hash("leaf_hash"),
    ) else {
        return Err(format!("the proof is unreadable: {proof}"));
    };
    let path: Option<Vec<Hash>> = proof["audit_path"]
        .as_array()
        .and_then(|a| a.iter().map(|h| h.as_str().and_then(parse_hash)).collect());
    let Some(path) = path else {
        return Err("the proof's audit_path is not a list of hashes".into());
    };
    if claimed != leaf.leaf_hash() {
        return Err(format!(
            "the log holds another receipt for this execution (leaf hash {}; the receipt served now hashes to {})",
            to_hex(&claimed),
            to_hex(&leaf.leaf_hash())
        ));
    }
    verify_inclusion(&leaf.data, index, size, &path, &root)
        .map_err(|e| format!("inclusion proof fails: {e}"))?;
    Ok((index, size, root))
}
