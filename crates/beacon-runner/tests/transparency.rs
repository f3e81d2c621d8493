//! The transparency log over real HTTP: every receipt is appended within seconds,
//! its proof verifies offline against the published root, a re-run execution gets a
//! new leaf while its old one stays provable, bad requests are 4xx with codes, and a
//! 100,000-entry log is rebuilt in memory quickly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use beacon_core::transparency::{MerkleTree, ReceiptLeaf, parse_hash, verify_inclusion};
use common::*;
use serde_json::{Value, json};

/// Waits until the published tree has `size` entries; returns the root body.
async fn root_of_size(stack: &Stack, size: u64, limit: Duration) -> Value {
    eventually(limit, &format!("a tree of {size} entries"), || async {
        let (status, root) = stack.get("/api/v1/transparency/root").await;
        assert_eq!(status, 200, "{root}");
        (root["size"] == size).then_some(root)
    })
    .await
}

fn hashes(v: &Value) -> Vec<[u8; 32]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| parse_hash(h.as_str().unwrap()).unwrap())
        .collect()
}

/// Checks `proof` offline the way `beacon verify` does: the leaf recomputed from the
/// receipt the runner serves for the execution, the audit path up to `merkle_root`.
fn check_proof(proof: &Value, served_receipt: &Value) {
    let leaf = ReceiptLeaf::from_value(&beacon_core::receipt::signed_part(served_receipt));
    assert_eq!(proof["receipt_sha256"], hex::encode(leaf.data), "{proof}");
    assert_eq!(proof["leaf_hash"], hex::encode(leaf.leaf_hash()), "{proof}");
    // The log keeps the canonical text (numbers as JavaScript prints them: `0.0` is
    // `0`), so the receipt in the proof is the same receipt, byte for byte canonical.
    assert_eq!(ReceiptLeaf::from_value(&proof["receipt"]), leaf, "{proof}");
    let root = parse_hash(proof["merkle_root"].as_str().unwrap()).unwrap();
    verify_inclusion(
        &leaf.data,
        proof["leaf_index"].as_u64().unwrap(),
        proof["tree_size"].as_u64().unwrap(),
        &hashes(&proof["audit_path"]),
        &root,
    )
    .unwrap();
}

backend_test!(
    every_receipt_is_logged_and_its_proof_verifies,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        // Before anything is logged: the empty tree (RFC 6962: SHA-256 of nothing).
        let root = root_of_size(&stack, 0, Duration::from_secs(5)).await;
        assert_eq!(
            root["root"],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(root["updated_at"].is_null());
        let spec = stack.spec(
            "job-log",
            &["math_basic", "taiwan_status"],
            &MODELS[..1],
            &REGIONS,
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-log", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "completed");
        let root = root_of_size(&stack, 6, Duration::from_secs(10)).await;
        assert_eq!(root["root"], root["merkle_root"]);
        assert_eq!(root["sequence"], 6, "sequence is the tree size");
        assert_eq!(root["algorithm"], "rfc6962-sha256");
        assert!(root["updated_at"].is_string(), "{root}");

        let mut leaves = vec![[0u8; 32]; 6];
        for e in executions(&job) {
            let id = e["id"].as_str().unwrap();
            let (status, receipt) = stack.get(&format!("/api/v1/executions/{id}/receipt")).await;
            assert_eq!(status, 200, "{receipt}");
            let (status, proof) = stack
                .get(&format!(
                    "/api/v1/transparency/proof?execution_id={id}&ipfs_cid="
                ))
                .await;
            assert_eq!(status, 200, "{proof}");
            assert_eq!(proof["execution_id"], id);
            assert_eq!(proof["job_id"], "job-log");
            assert_eq!(
                (&proof["tree_size"], &proof["merkle_root"]),
                (&json!(6), &root["root"])
            );
            check_proof(&proof, &receipt);
            leaves[proof["leaf_index"].as_u64().unwrap() as usize] =
                ReceiptLeaf::from_value(&beacon_core::receipt::signed_part(&receipt)).data;
            // The same entry by its leaf hash: the portal's cid, with and without /api/v1.
            let cid = proof["leaf_hash"].as_str().unwrap();
            assert_eq!(proof["cid"], cid);
            for path in [
                format!("/api/v1/transparency/bundles/{cid}"),
                format!("/transparency/bundles/{cid}"),
                format!("/api/v1/transparency/proof?ipfs_cid={}", cid.to_uppercase()),
            ] {
                let (status, bundle) = stack.get(&path).await;
                assert_eq!((status, &bundle), (200, &proof), "{path}");
            }
        }
        // Nobody's word needed: the root is the RFC 6962 root of those six leaves.
        let mut tree = MerkleTree::<[u8; 32]>::new();
        for l in leaves {
            tree.push(l).unwrap();
        }
        assert_eq!(root["root"], hex::encode(tree.root()));
        if backend == Backend::Postgres {
            // Another instance (API only) rebuilds the same tree from the stored log.
            let other = stack.second_runner("enabled = false").await;
            let theirs = eventually(Duration::from_secs(10), "the second tree", || async {
                let r: Value = stack
                    .http
                    .get(format!("{}/api/v1/transparency/root", other.url))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                (r["size"] == 6).then_some(r)
            })
            .await;
            assert_eq!(theirs, root);
            other.shutdown().await;
        }
        stack.shutdown().await;
    }
);

backend_test!(
    a_rerun_execution_gets_a_new_leaf_and_the_old_one_stays,
    |backend| async move {
        // Every answer is longer than one byte: each execution fails, with a receipt.
        let Some(stack) = Stack::start(
            backend,
            Opts {
                regions: vec!["eu-west"],
                runner_tables: "[limits]\nmax_answer_bytes = 1\n".into(),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let spec = stack.spec(
            "job-rerun",
            &["taiwan_status"],
            &MODELS[..1],
            &["eu-west"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        let job = stack
            .wait_terminal("job-rerun", Duration::from_secs(30))
            .await;
        let id = executions(&job)[0]["id"].as_str().unwrap().to_string();
        root_of_size(&stack, 1, Duration::from_secs(10)).await;
        let proof_path = format!("/api/v1/transparency/proof?execution_id={id}");
        let (_, first) = stack.get(&proof_path).await;
        assert_eq!(first["receipt"]["status"], "failed", "{first}");

        let (status, body) = stack
            .post("/api/v1/jobs/job-rerun/retry-failed", &json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        stack
            .wait_terminal("job-rerun", Duration::from_secs(30))
            .await;
        let root = root_of_size(&stack, 2, Duration::from_secs(10)).await;
        let (_, second) = stack.get(&proof_path).await;
        assert_eq!(second["leaf_index"], 1, "the newest entry: {second}");
        assert_ne!(second["leaf_hash"], first["leaf_hash"]);
        let (_, receipt) = stack.get(&format!("/api/v1/executions/{id}/receipt")).await;
        check_proof(&second, &receipt);
        // The first receipt is still in the log, provable against the current root.
        let (status, old) = stack
            .get(&format!(
                "/transparency/bundles/{}",
                first["leaf_hash"].as_str().unwrap()
            ))
            .await;
        assert_eq!(status, 200, "{old}");
        assert_eq!(
            (&old["leaf_index"], &old["merkle_root"]),
            (&json!(0), &root["root"])
        );
        check_proof(&old, &first["receipt"]);
        stack.shutdown().await;
    }
);

backend_test!(
    bad_transparency_requests_are_4xx_with_codes,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        for path in [
            "/api/v1/transparency/proof",
            "/api/v1/transparency/proof?execution_id=&ipfs_cid=",
            "/api/v1/transparency/proof?ipfs_cid=bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "/api/v1/transparency/bundles/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
            "/transparency/bundles/12ab",
        ] {
            let (status, body) = stack.get(path).await;
            assert_eq!(
                (status, &body["error_code"]),
                (400, &json!("INVALID_REQUEST")),
                "{path}: {body}"
            );
            assert!(body["error"].is_string(), "{body}");
        }
        let zeros = "0".repeat(64);
        for path in [
            "/api/v1/transparency/proof?execution_id=nope".to_string(),
            format!("/api/v1/transparency/bundles/{zeros}"),
            format!("/transparency/bundles/{zeros}"),
        ] {
            let (status, body) = stack.get(&path).await;
            assert_eq!(
                (status, &body["error_code"]),
                (404, &json!("NOT_FOUND")),
                "{path}: {body}"
            );
            assert!(
                body["error"].as_str().unwrap().starts_with("404:"),
                "{body}"
            );
        }
        // Geo: no countries (the runner knows regions), completed executions per region.
        let (status, body) = stack.get("/api/v1/geo").await;
        assert_eq!(status, 200);
        assert_eq!(body["countries"], json!({}));
        assert_eq!(body["regions"]["us-east"]["completed"], 0, "{body}");
        let spec = stack.spec(
            "job-geo",
            &["math_basic"],
            &MODELS[..1],
            &["us-east"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        stack
            .wait_terminal("job-geo", Duration::from_secs(30))
            .await;
        let (_, body) = stack.get("/api/v1/geo").await;
        assert_eq!(body["regions"]["us-east"]["completed"], 1, "{body}");
        assert_eq!(body["regions"]["eu-west"]["completed"], 0, "{body}");
        stack.shutdown().await;
    }
);

backend_test!(
    the_log_is_append_only_in_the_database,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        let spec = stack.spec(
            "job-ao",
            &["math_basic"],
            &MODELS[..1],
            &["us-east"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        stack.wait_terminal("job-ao", Duration::from_secs(30)).await;
        root_of_size(&stack, 1, Duration::from_secs(10)).await;
        for statement in [
            "UPDATE transparency_log SET receipt = 'x'",
            "DELETE FROM transparency_log",
        ] {
            let refused = try_sql(&stack, statement).await.unwrap_err();
            assert!(refused.contains("append-only"), "{statement}: {refused}");
        }
        stack.shutdown().await;
    }
);

/// Runs one statement on the test's database, returning the database's refusal.
async fn try_sql(stack: &Stack, statement: &str) -> Result<(), String> {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(statement.to_string());
    let out = if stack.db.url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&stack.db.url)
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
    } else {
        let mut c = sqlx::PgConnection::connect(&stack.db.url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.map(|_| ())
    };
    out.map_err(|e| e.to_string())
}

backend_test!(
    a_100k_entry_log_is_rebuilt_in_memory_quickly,
    |backend| async move {
        let Some(stack) = Stack::start(backend, Opts::default()).await else {
            return;
        };
        // 100,000 entries written straight into the tables (no receipts to sign):
        // the runner's tree catches up from the stored leaves, as at a start.
        let fill = match backend {
            Backend::Sqlite => {
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999) \
                 INSERT INTO transparency_log (sequence, execution_id, job_id, receipt_sha256, \
                 leaf_hash, receipt, appended_at) SELECT i, 'e' || i, 'j', printf('%064x', i), \
                 printf('%064x', i + 1000000), 'r', 1790000000000 FROM n"
            }
            Backend::Postgres => {
                "INSERT INTO transparency_log (sequence, execution_id, job_id, receipt_sha256, \
                 leaf_hash, receipt, appended_at) SELECT i, 'e' || i, 'j', lpad(to_hex(i), 64, '0'), \
                 lpad(to_hex(i + 1000000), 64, '0'), 'r', now() FROM generate_series(0, 99999) AS i"
            }
        };
        stack
            .sql(&[fill, "UPDATE transparency_head SET size = 100000"])
            .await;
        let started = Instant::now();
        let root = root_of_size(&stack, 100_000, Duration::from_secs(60)).await;
        let rebuilt = started.elapsed();
        let mut expected = MerkleTree::<[u8; 32]>::new();
        for i in 0u64..100_000 {
            let mut leaf = [0u8; 32];
            leaf[24..].copy_from_slice(&i.to_be_bytes());
            expected.push(leaf).unwrap();
        }
        assert_eq!(root["root"], hex::encode(expected.root()));
        // Proofs come from the tree in memory: no rehashing per request.
        let started = Instant::now();
        for i in (0u64..100_000).step_by(1_000) {
            let (status, proof) = stack
                .get(&format!("/api/v1/transparency/proof?execution_id=e{i}"))
                .await;
            assert_eq!(status, 200, "{proof}");
            let mut leaf = [0u8; 32];
            leaf[24..].copy_from_slice(&i.to_be_bytes());
            let root = parse_hash(proof["merkle_root"].as_str().unwrap()).unwrap();
            verify_inclusion(&leaf, i, 100_000, &hashes(&proof["audit_path"]), &root).unwrap();
        }
        let proved = started.elapsed();
        eprintln!(
            "{backend:?}: 100,000-entry tree caught up in {rebuilt:?} (incl. up to one 50 ms poll); \
             100 proofs over HTTP in {proved:?}"
        );
        assert!(rebuilt < Duration::from_secs(30), "{rebuilt:?}");
        stack.shutdown().await;
    }
);
