//! Transparency routes (portal-contract 2.3): the log's root, an execution's inclusion
//! proof, and "bundles". There is no IPFS: a bundle id (`cid`) is a leaf hash, and a
//! bundle is that entry's receipt with its proof, everything needed to check it
//! offline. See docs/transparency.md.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use beacon_core::transparency::{ALGORITHM, parse_hash, to_hex};
use beacon_store::LogEntry;
use serde_json::{Value, json};

use super::AppState;
use crate::error::ApiError;
use crate::transparency::TreeHead;

/// The routes under `/api/v1`. The portal's gateway-less `bundleUrl` has no
/// `/api/v1`, so `api/mod.rs` also mounts [`bundle`] at the root.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/transparency/root", get(root))
        .route("/transparency/proof", get(proof))
        .route("/transparency/bundles/{cid}", get(bundle))
        .route("/geo", get(super::geo::geo))
}

fn head_json(h: &TreeHead) -> Value {
    let root = to_hex(&h.root);
    // `sequence` is the tree size (the number of entries; the next leaf index), as a
    // Certificate Transparency tree head counts; the portal only displays it.
    json!({
        "root": root, "merkle_root": root, "sequence": h.size, "size": h.size,
        "tree_size": h.size, "updated_at": h.updated_at, "algorithm": ALGORITHM,
    })
}

/// `GET /transparency/root`: this instance's tree head (it follows the stored log
/// within one poll interval).
#[utoipa::path(
    get,
    path = "/api/v1/transparency/root",
    tag = "transparency",
    operation_id = "transparency_root",
    summary = "The log's tree head",
    responses(
        (status = 200, description = "`{root, size, algorithm, ...}`", body = super::openapi::Json),
    ),
)]
pub async fn root(State(app): State<Arc<AppState>>) -> Json<Value> {
    Json(head_json(&app.transparency.head()))
}

/// `GET /transparency/proof?execution_id=` (or `?ipfs_cid=<leaf hash>`, which the
/// portal sends along): the execution's newest entry with its audit path.
#[utoipa::path(
    get,
    path = "/api/v1/transparency/proof",
    tag = "transparency",
    operation_id = "transparency_proof",
    summary = "An execution's log entry with its inclusion proof",
    params(
        ("execution_id" = Option<String>, Query, description = "The execution"),
        ("ipfs_cid" = Option<String>, Query, description = "A leaf hash (64 hex digits)"),
        ("cid" = Option<String>, Query, description = "A leaf hash (alias)"),
    ),
    responses(
        (status = 200, description = "The entry, its receipt and audit path", body = super::openapi::Json),
        (status = 400, description = "INVALID_REQUEST: no execution_id or cid, or a cid that is not a leaf hash", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such execution or log entry", body = crate::error::ErrorBody),
    ),
)]
pub async fn proof(
    State(app): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let param = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let entry = match (param("execution_id"), param("ipfs_cid").or(param("cid"))) {
        (Some(id), _) => match app.ctx.store.log_entry_for_execution(id).await? {
            Some(e) => e,
            None => return Err(not_logged(&app, id).await?),
        },
        (None, Some(cid)) => by_cid(&app, cid).await?,
        (None, None) => {
            return Err(ApiError::bad(
                "INVALID_REQUEST",
                "execution_id is required (or ipfs_cid, a leaf hash)",
            ));
        }
    };
    Ok(Json(entry_with_proof(&app, entry).await?))
}

/// `GET /transparency/bundles/{cid}` (also at the root, without `/api/v1`:
/// [`bundle_at_root`]).
#[utoipa::path(
    get,
    path = "/api/v1/transparency/bundles/{cid}",
    tag = "transparency",
    operation_id = "transparency_bundle",
    summary = "A log entry with its proof, by leaf hash",
    params(
        ("cid" = String, Path, description = "A leaf hash (64 hex digits)"),
    ),
    responses(
        (status = 200, description = "The entry, its receipt and audit path", body = super::openapi::Json),
        (status = 400, description = "INVALID_REQUEST: not a leaf hash", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such log entry", body = crate::error::ErrorBody),
    ),
)]
pub async fn bundle(
    State(app): State<Arc<AppState>>,
    Path(cid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let entry = by_cid(&app, &cid).await?;
    Ok(Json(entry_with_proof(&app, entry).await?))
}

/// `GET /transparency/bundles/{cid}` at the root: the same bundle.
#[utoipa::path(
    get,
    path = "/transparency/bundles/{cid}",
    tag = "transparency",
    operation_id = "transparency_bundle_root",
    summary = "A log entry with its proof, by leaf hash (the portal's gateway-less bundleUrl)",
    params(
        ("cid" = String, Path, description = "A leaf hash (64 hex digits)"),
    ),
    responses(
        (status = 200, description = "The entry, its receipt and audit path", body = super::openapi::Json),
        (status = 400, description = "INVALID_REQUEST: not a leaf hash", body = crate::error::ErrorBody),
        (status = 404, description = "NOT_FOUND: no such log entry", body = crate::error::ErrorBody),
    ),
)]
pub async fn bundle_at_root(
    state: State<Arc<AppState>>,
    cid: Path<String>,
) -> Result<Json<Value>, ApiError> {
    bundle(state, cid).await
}

async fn by_cid(app: &AppState, cid: &str) -> Result<LogEntry, ApiError> {
    let Some(hash) = parse_hash(cid) else {
        return Err(ApiError::bad(
            "INVALID_REQUEST",
            "a bundle id is the leaf hash of a log entry (64 hex digits); this runner publishes no IPFS bundles",
        ));
    };
    app.ctx
        .store
        .log_entry_by_leaf_hash(&hash)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no transparency log entry has leaf hash {}",
                to_hex(&hash)
            ))
        })
}

/// Why an execution has no entry: unknown, nothing signed (yet), or signed but not
/// appended yet (receipts are appended within seconds).
async fn not_logged(app: &AppState, id: &str) -> Result<ApiError, ApiError> {
    let shown: String = id.chars().take(128).collect();
    Ok(ApiError::NotFound(
        match app.ctx.store.get_execution(id).await? {
            None => format!("execution {shown} not found"),
            Some(e) if e.receipt.is_none() => format!(
                "execution {shown} has no receipt (it has not ended, or was cancelled), so nothing is logged"
            ),
            Some(_) => format!(
                "execution {shown} is not in the transparency log yet; receipts are appended within seconds"
            ),
        },
    ))
}

async fn entry_with_proof(app: &AppState, e: LogEntry) -> Result<Value, ApiError> {
    let log = &app.transparency;
    let mut inclusion = log
        .prove(e.sequence, &e.leaf_data)
        .map_err(ApiError::Internal)?;
    if inclusion.is_none() {
        // Appended (maybe by another instance) after this tree last caught up.
        log.catch_up(app.ctx.store.as_ref()).await?;
        inclusion = log
            .prove(e.sequence, &e.leaf_data)
            .map_err(ApiError::Internal)?;
    }
    let Some(inclusion) = inclusion else {
        return Err(ApiError::Internal(format!(
            "log entry {} is stored but the tree cannot reach it",
            e.sequence
        )));
    };
    let receipt: Value = serde_json::from_str(&e.receipt).unwrap_or(Value::String(e.receipt));
    let root = to_hex(&inclusion.head.root);
    let leaf_hash = to_hex(&e.leaf_hash);
    Ok(json!({
        "execution_id": e.execution_id, "job_id": e.job_id,
        "leaf_index": e.sequence, "tree_size": inclusion.head.size,
        "leaf_hash": leaf_hash, "receipt_sha256": to_hex(&e.leaf_data),
        "audit_path": inclusion.audit_path.iter().map(to_hex).collect::<Vec<_>>(),
        "merkle_root": root, "root": root, "algorithm": ALGORITHM,
        "appended_at": e.appended_at,
        "cid": leaf_hash, "bundle_url": format!("/transparency/bundles/{leaf_hash}"),
        "receipt": receipt,
    }))
}
