//! The `Idempotency-Key` answer cache: a repeat of a key within the TTL gets the stored
//! answer and starts no new inference; a repeat while the first is still running waits
//! for it. Transient failures are not kept, so a retry with the same key can succeed.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_core::wire::InferenceRequest;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::routing::Routed;

struct Entry {
    created: Instant,
    fingerprint: u64,
    answer: OnceCell<Routed>,
}

/// What the cache did with a request.
pub enum Lookup {
    /// The answer, and whether it was replayed from the cache.
    Answer(Routed, bool),
    /// The key was used before for a different request.
    Conflict,
}

pub struct IdempotencyCache {
    ttl: Duration,
    max_entries: usize,
    map: Mutex<HashMap<String, Arc<Entry>>>,
}

impl IdempotencyCache {
    pub fn new(ttl: Duration, max_entries: usize) -> IdempotencyCache {
        IdempotencyCache {
            ttl,
            max_entries,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers from the cache or runs `route` once for this key.
    pub async fn run<F, Fut>(&self, key: &str, req: &InferenceRequest, route: F) -> Lookup
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Routed>,
    {
        let fingerprint = fingerprint(req);
        let now = Instant::now();
        let entry = {
            let mut map = self.lock();
            if map.len() >= self.max_entries {
                map.retain(|_, e| now.duration_since(e.created) < self.ttl);
            }
            let fresh = map
                .get(key)
                .filter(|e| now.duration_since(e.created) < self.ttl)
                .cloned();
            match fresh {
                Some(e) => e,
                None => {
                    let e = Arc::new(Entry {
                        created: now,
                        fingerprint,
                        answer: OnceCell::new(),
                    });
                    map.insert(key.to_string(), e.clone());
                    e
                }
            }
        };
        if entry.fingerprint != fingerprint {
            return Lookup::Conflict;
        }
        let mut ran = false;
        let routed = entry
            .answer
            .get_or_init(|| {
                ran = true;
                route()
            })
            .await
            .clone();
        if ran && routed.status >= 500 {
            let mut map = self.lock();
            if map.get(key).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                map.remove(key);
            }
        }
        Lookup::Answer(routed, !ran)
    }
}

fn fingerprint(req: &InferenceRequest) -> u64 {
    let mut h = DefaultHasher::new();
    req.model.hash(&mut h);
    req.prompt.hash(&mut h);
    req.region_preference.hash(&mut h);
    req.max_tokens.hash(&mut h);
    req.temperature.to_bits().hash(&mut h);
    req.allow_region_fallback.hash(&mut h);
    h.finish()
}
