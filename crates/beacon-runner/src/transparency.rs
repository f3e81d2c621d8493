//! The transparency log as this instance serves it: a background task that appends
//! newly stored receipts to the store's log (`Store::append_receipts`) and keeps an
//! in-memory copy of the RFC 6962 tree in step with the stored leaves, so roots and
//! proofs never rehash the log. Every instance runs it: appending is serialised in the
//! store, and each instance's tree follows the one stored log. See
//! docs/transparency.md.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use beacon_core::transparency::{Hash, MerkleTree, to_hex};
use beacon_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;

/// Receipts appended per store transaction.
const APPEND_BATCH: u32 = 1_000;
/// Leaves read from the store per query when the tree catches up.
const READ_BATCH: u32 = 10_000;
/// Leaves pushed per hold of the write lock, so a rebuild at start never blocks a
/// root or proof request for long (1,000 pushes ≈ 20 ms in a debug build).
const PUSH_CHUNK: usize = 1_000;

/// The current tree head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub root: Hash,
    pub size: u64,
    /// When the newest leaf was appended; `None` while the log is empty.
    pub updated_at: Option<DateTime<Utc>>,
}

/// An audit path for one leaf, against the head it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inclusion {
    pub audit_path: Vec<Hash>,
    pub head: TreeHead,
}

/// One leaf joined the tree (published for a live feed; see [`TransparencyLog::subscribe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryAppended {
    pub sequence: u64,
    pub execution_id: String,
    pub leaf_hash: Hash,
    /// The root of the tree that ends with this leaf.
    pub root: Hash,
    pub appended_at: DateTime<Utc>,
}

impl EntryAppended {
    /// The event as the portal's dashboard reads it (`transparency.entry_appended`
    /// with `timestamp`, `merkle_root|root`, `ipfs_cid|cid`, `execution_id`).
    pub fn to_json(&self) -> Value {
        let root = to_hex(&self.root);
        let cid = to_hex(&self.leaf_hash);
        json!({
            "type": "transparency.entry_appended", "event": "transparency.entry_appended",
            "timestamp": self.appended_at, "merkle_root": root, "root": root,
            "cid": cid, "leaf_hash": cid, "execution_id": self.execution_id,
            "sequence": self.sequence, "tree_size": self.sequence + 1,
        })
    }
}

struct Tree {
    tree: MerkleTree,
    updated_at: Option<DateTime<Utc>>,
}

/// The in-memory tree and its appender.
pub struct TransparencyLog {
    tree: RwLock<Tree>,
    /// One catch-up at a time (the task and a proof request may both ask).
    sync_turn: Mutex<()>,
    appended: broadcast::Sender<EntryAppended>,
}

impl Default for TransparencyLog {
    fn default() -> Self {
        TransparencyLog {
            tree: RwLock::new(Tree {
                tree: MerkleTree::new(),
                updated_at: None,
            }),
            sync_turn: Mutex::new(()),
            appended: broadcast::channel(1024).0,
        }
    }
}

impl TransparencyLog {
    // A panic while the lock was held cannot leave the tree half-written (a push
    // either happened or not), so a poisoned lock is still used.
    fn read(&self) -> RwLockReadGuard<'_, Tree> {
        self.tree.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tree> {
        self.tree.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn head(&self) -> TreeHead {
        let t = self.read();
        head_of(&t)
    }

    /// The audit path of leaf `index`, if this tree has it and it holds `leaf_data`
    /// (anything else means the copy and the store disagree, which the caller
    /// reports as an error).
    pub fn prove(&self, index: u64, leaf_data: &Hash) -> Result<Option<Inclusion>, String> {
        let t = self.read();
        let Some(held) = t.tree.leaf(index) else {
            return Ok(None);
        };
        if held != leaf_data {
            return Err(format!(
                "leaf {index} is {} in memory but {} in the store",
                to_hex(held),
                to_hex(leaf_data)
            ));
        }
        Ok(t.tree.audit_path(index).map(|audit_path| Inclusion {
            audit_path,
            head: head_of(&t),
        }))
    }

    /// Entries appended from now on (by any instance: each instance's tree follows the
    /// stored log). The hook for a live feed such as a WebSocket hub.
    pub fn subscribe(&self) -> broadcast::Receiver<EntryAppended> {
        self.appended.subscribe()
    }

    /// Reads the leaves the store has beyond this tree and adds them. Returns how many.
    pub async fn catch_up(&self, store: &dyn Store) -> Result<u64, StoreError> {
        let _turn = self.sync_turn.lock().await;
        let mut added = 0;
        loop {
            let from = self.read().tree.len();
            let leaves = store.log_leaves(from, READ_BATCH).await?;
            let n = leaves.len();
            for chunk in leaves.chunks(PUSH_CHUNK) {
                let mut t = self.write();
                for leaf in chunk {
                    // Sequences are dense from 0; anything else is a damaged log.
                    if leaf.sequence != t.tree.len() {
                        return Err(StoreError::Corrupt(format!(
                            "transparency log sequence {} where {} was expected",
                            leaf.sequence,
                            t.tree.len()
                        )));
                    }
                    t.tree
                        .push(leaf.leaf_data)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    t.updated_at = Some(leaf.appended_at);
                    if self.appended.receiver_count() > 0 {
                        let _ = self.appended.send(EntryAppended {
                            sequence: leaf.sequence,
                            execution_id: leaf.execution_id.clone(),
                            leaf_hash: beacon_core::transparency::leaf_hash(&leaf.leaf_data),
                            root: t.tree.root(),
                            appended_at: leaf.appended_at,
                        });
                    }
                }
            }
            added += n as u64;
            if n < READ_BATCH as usize {
                return Ok(added);
            }
        }
    }
}

fn head_of(t: &Tree) -> TreeHead {
    TreeHead {
        root: t.tree.root(),
        size: t.tree.len(),
        updated_at: t.updated_at,
    }
}

/// Appends every receipt stored since the last round, then brings this instance's
/// tree up to the stored log; again every `interval` until `token` is cancelled.
/// Store calls are not cut short by the token (each is one short transaction).
pub async fn run(
    log: Arc<TransparencyLog>,
    store: Arc<dyn Store>,
    interval: Duration,
    token: CancellationToken,
) {
    let mut failing = false;
    while !token.is_cancelled() {
        let round = async {
            while store.append_receipts(APPEND_BATCH, Utc::now()).await? == u64::from(APPEND_BATCH)
            {
                // A full batch: more may be waiting (e.g. receipts stored before an
                // upgrade); keep going before sleeping.
                if token.is_cancelled() {
                    break;
                }
            }
            log.catch_up(store.as_ref()).await
        };
        match round.await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("transparency log: appending works again");
            }
            Ok(_) => {}
            // Said once per outage, not every interval.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "transparency log: appending or reading failed; will retry");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_core::status::ExecutionStatus;
    use beacon_core::transparency::ReceiptLeaf;
    use beacon_store::{AttemptUpdate, NewExecution, NewJob};

    /// Stores one job of `n` executions, each ended with its own receipt, through the
    /// store's normal write path.
    async fn receipts(store: &Arc<dyn Store>, n: u32) -> Vec<Value> {
        let now = Utc::now();
        let job = NewJob {
            id: "j".into(),
            spec_json: "{}".into(),
            spec_sha256: "s".into(),
            benchmark: None,
            plan_json: json!({}),
            min_success_rate: 0.0,
            min_regions: 0,
            total: u64::from(n),
            submitter_key: None,
            idempotency_key: None,
            nonce: None,
            created_at: now,
        };
        let cells: Vec<NewExecution> = (0..n)
            .map(|seq| NewExecution {
                id: format!("e{seq}"),
                seq,
                question_id: "q".into(),
                model_id: "m".into(),
                region: format!("r{seq}"),
                run_index: 0,
            })
            .collect();
        store.insert_job(&job, &cells).await.unwrap();
        store
            .claim_job("me", Duration::from_secs(60), now, &[])
            .await
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        for c in cells {
            let attempt = store
                .start_attempt(&c.id, "me", now)
                .await
                .unwrap()
                .unwrap()
                .number;
            let receipt = json!({"execution_id": c.id, "signature": "s"});
            let update = AttemptUpdate {
                execution_id: c.id.clone(),
                attempt,
                status: ExecutionStatus::Failed,
                finished_at: now,
                attempt_outcome: "failed".into(),
                error_code: None,
                http_status: None,
                provider_id: None,
                latency_ms: None,
                response: None,
                response_sha256: None,
                classification: None,
                output: None,
                failure: None,
                receipt: Some(receipt.clone()),
                next_attempt_at: None,
            };
            assert!(store.finish_attempt(&update, "me").await.unwrap());
            out.push(receipt);
        }
        out
    }

    #[tokio::test]
    async fn the_tree_follows_the_stored_log_and_publishes_each_entry() {
        let (store, _tmp) = beacon_store::testing::sqlite_store().await;
        let log = Arc::new(TransparencyLog::default());
        let token = CancellationToken::new();
        let mut feed = log.subscribe();
        let task = tokio::spawn(run(
            log.clone(),
            store.clone(),
            Duration::from_millis(20),
            token.clone(),
        ));
        let written = receipts(&store, 3).await;
        let mut roots = Vec::new();
        for (i, receipt) in written.iter().enumerate() {
            let e = tokio::time::timeout(Duration::from_secs(10), feed.recv())
                .await
                .unwrap()
                .unwrap();
            let leaf = ReceiptLeaf::from_value(receipt);
            assert_eq!((e.sequence, e.leaf_hash), (i as u64, leaf.leaf_hash()));
            assert_eq!(e.to_json()["type"], "transparency.entry_appended");
            assert_eq!(e.to_json()["cid"], hex::encode(leaf.leaf_hash()));
            roots.push(e.root);
        }
        let head = log.head();
        assert_eq!((head.size, Some(head.root)), (3, roots.last().copied()));
        let leaf = ReceiptLeaf::from_value(&written[1]);
        let proof = log.prove(1, &leaf.data).unwrap().unwrap();
        beacon_core::transparency::verify_inclusion(
            &leaf.data,
            1,
            3,
            &proof.audit_path,
            &head.root,
        )
        .unwrap();
        // A leaf that is not the one stored is an error, not a proof.
        assert!(log.prove(1, &[0u8; 32]).is_err());
        assert_eq!(log.prove(3, &leaf.data), Ok(None));
        // A fresh copy (another instance, or a restart) rebuilds the same tree.
        let fresh = TransparencyLog::default();
        assert_eq!(fresh.catch_up(store.as_ref()).await.unwrap(), 3);
        assert_eq!(fresh.head(), head);
        token.cancel();
        task.await.unwrap();
    }
}
