//! What the router serves, from its `GET /providers`, cached so job submission can
//! refuse unknown regions and models without a router round trip each time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use beacon_core::Failure;
use tokio::time::Instant;

use super::RouterClient;

/// How long a fetched catalog is trusted.
const TTL: Duration = Duration::from_secs(30);

/// Regions and the models each serves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    pub regions: BTreeMap<String, BTreeSet<String>>,
}

impl Catalog {
    pub fn serves_region(&self, region: &str) -> bool {
        self.regions.contains_key(region)
    }
    pub fn serves(&self, region: &str, model: &str) -> bool {
        self.regions.get(region).is_some_and(|m| m.contains(model))
    }
}

/// The cached catalog.
#[derive(Default)]
pub struct RouterCatalog {
    cached: Mutex<Option<(Instant, Catalog)>>,
}

impl RouterCatalog {
    /// A fresh catalog, or the last one when the router cannot be asked now.
    pub async fn get(&self, client: &RouterClient) -> Result<Catalog, Failure> {
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, c)) = &cached {
            if at.elapsed() < TTL {
                return Ok(c.clone());
            }
        }
        match client.providers(Duration::from_secs(5)).await {
            Ok(list) => {
                let mut catalog = Catalog::default();
                for p in list.providers {
                    catalog
                        .regions
                        .entry(p.region)
                        .or_default()
                        .extend(p.models);
                }
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), catalog.clone()));
                Ok(catalog)
            }
            Err(f) => match cached {
                Some((_, c)) => {
                    tracing::warn!(failure = %f, "router catalog refresh failed; using the previous one");
                    Ok(c)
                }
                None => Err(f),
            },
        }
    }
}
