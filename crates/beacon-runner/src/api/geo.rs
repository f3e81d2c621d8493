//! `GET /geo` (portal-contract 2.3: `{countries: {...}}`). The runner knows regions,
//! not countries: `us-east`, `eu-west` and `asia-pacific` are provider regions that
//! span (or may move between) countries, and no provider reports where it really ran.
//! So `countries` is honestly empty, and what the runner does know is given beside
//! it: completed executions per region. See docs/runner.md.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use beacon_core::region::{ASIA_PACIFIC, EU_WEST, US_EAST};
use beacon_core::status::ExecutionStatus;
use beacon_store::ExecutionFilter;
use serde_json::{Map, Value, json};

use super::AppState;
use crate::error::ApiError;

#[utoipa::path(
    get,
    path = "/api/v1/geo",
    tag = "executions",
    operation_id = "geo",
    summary = "Completed executions per region",
    responses(
        (status = 200, description = "`{countries, regions, basis}`", body = super::openapi::Json),
    ),
)]
pub async fn geo(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let mut regions = Map::new();
    for region in [US_EAST, EU_WEST, ASIA_PACIFIC] {
        // limit 0: only the count (`total`), no rows.
        let page = app
            .ctx
            .store
            .list_executions(&ExecutionFilter {
                region: Some(region.to_string()),
                status: Some(ExecutionStatus::Completed),
                limit: 0,
                ..ExecutionFilter::default()
            })
            .await?;
        regions.insert(region.to_string(), json!({"completed": page.total}));
    }
    Ok(Json(json!({
        "countries": {},
        "regions": regions,
        "basis": "completed executions per region; the runner knows provider regions, not countries",
    })))
}
