//! `GET /api/v1/router/providers`: what the router says about its providers and
//! regions, seen through the runner, so `beacon doctor --runner URL` can name a broken
//! region without the router's address or any token. Public: the router's own
//! `/providers` already leaves out endpoint URLs and secrets, and this route removes the
//! failure URLs again in case an older router still sends them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use beacon_core::wire::{ProviderEntry, ProviderState};
use serde::Serialize;

use super::AppState;
use crate::error::ApiError;

/// The router is asked each time (the doctor wants the state now, not the catalog's
/// 30 s old copy), with a short bound so a stuck router cannot hold the request.
const ASK_ROUTER_WITHIN: Duration = Duration::from_secs(3);

/// The answer: per region whether it can be routed to, and every provider.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RouterView {
    pub regions: Vec<RegionRoute>,
    /// The router's `/providers` entries, failure URLs removed.
    pub providers: Vec<ProviderEntry>,
}

/// One region of the router.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegionRoute {
    pub region: String,
    /// A provider there is `healthy`, or `unknown` with no evidence against it (the
    /// router routes to both).
    pub routable: bool,
    /// The names of the region's providers.
    pub providers: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/router/providers",
    tag = "service",
    operation_id = "router_providers",
    summary = "The router's providers and regions, as the router says now",
    responses(
        (status = 200, description = "Regions and providers (no URLs)", body = RouterView),
        (status = 503, description = "ROUTER_UNAVAILABLE: the router did not answer", body = crate::error::ErrorBody),
    ),
)]
pub async fn providers(State(app): State<Arc<AppState>>) -> Result<Json<RouterView>, ApiError> {
    let list = app
        .ctx
        .router
        .providers(ASK_ROUTER_WITHIN)
        .await
        .map_err(|f| {
            ApiError::RouterUnavailable(format!(
                "the router's provider list is unavailable: {} ({})",
                f.message, f.code
            ))
        })?;
    let providers: Vec<ProviderEntry> = list.providers.into_iter().map(public).collect();
    Ok(Json(RouterView {
        regions: regions(&providers),
        providers,
    }))
}

/// An entry without anything that addresses the provider.
fn public(mut p: ProviderEntry) -> ProviderEntry {
    if let Some(f) = p.last_failure.as_mut() {
        f.url = None;
    }
    p
}

/// Per region: whether the router can route there (a provider `healthy`, or `unknown`
/// with no evidence against it — the router routes to both) and which providers serve it.
fn regions(providers: &[ProviderEntry]) -> Vec<RegionRoute> {
    let mut by_region: BTreeMap<&str, (bool, Vec<&str>)> = BTreeMap::new();
    for p in providers {
        let e = by_region.entry(p.region.as_str()).or_default();
        e.0 |= matches!(p.state, ProviderState::Healthy | ProviderState::Unknown);
        e.1.push(p.name.as_str());
    }
    by_region
        .into_iter()
        .map(|(region, (routable, names))| RegionRoute {
            region: region.to_string(),
            routable,
            providers: names.into_iter().map(str::to_string).collect(),
        })
        .collect()
}
