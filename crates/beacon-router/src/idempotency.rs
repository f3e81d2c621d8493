//! The `Idempotency-Key` answer cache: a repeat of a key within the TTL gets the stored
//! answer and starts no new inference; a repeat while the first is still running waits
//! for it. Transient failures are not kept, so a retry with the same key can succeed.
//!
//! Keys are scoped by caller (which inference token matched, or the peer address when
//! the router runs without tokens): a key sent by one caller never conflicts with, nor
//! replays for, another, so nobody can pre-empt someone else's key. The cache is a
//! `moka` cache bounded by the bytes it holds (`[idempotency] max_bytes`, least
//! recently used first out) whose entries expire `ttl` after they were stored; a
//! sweeper task (`sweep`) drops expired entries on time even when no request comes.
//! Only a fingerprint of each request is kept, never its prompt.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use beacon_core::wire::InferenceRequest;
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::IdempotencyConfig;
use crate::routing::Routed;

/// Who sent a request, for scoping keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// The index of the configured inference token it sent.
    Token(usize),
    /// Its peer address (unauthenticated routers only); `None` when unknown.
    Peer(Option<IpAddr>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    caller: Caller,
    key: String,
}

/// Bytes charged for an entry on top of its key and answer: the cache's node, the
/// `Arc`, the fingerprint and the answer's fixed fields. An estimate that errs high,
/// so the bound also bounds the number of entries.
const ENTRY_OVERHEAD: usize = 256;

/// A kept answer, or a transient one handed to the requests that waited for it.
struct Stored {
    fingerprint: [u8; 32],
    routed: Routed,
    /// Bytes this entry holds, measured once when stored.
    weight: u32,
}

/// What the cache did with a request.
pub enum Lookup {
    /// The answer, and whether it was replayed from the cache.
    Answer(Routed, bool),
    /// The key was used before for a different request.
    Conflict,
}

pub struct IdempotencyCache {
    cache: Cache<Key, Arc<Stored>>,
    ttl: Duration,
}

impl IdempotencyCache {
    pub fn new(cfg: &IdempotencyConfig) -> IdempotencyCache {
        let cache = Cache::builder()
            // Least recently used out first: a key's repeats come soon after it (a
            // client's retry), so the newest answers are the ones worth keeping.
            // TinyLFU, moka's default, would refuse a new key in favour of old ones.
            .eviction_policy(EvictionPolicy::lru())
            .max_capacity(cfg.max_bytes)
            .weigher(|_k: &Key, v: &Arc<Stored>| v.weight)
            .time_to_live(cfg.ttl)
            .build();
        IdempotencyCache {
            cache,
            ttl: cfg.ttl,
        }
    }

    /// Answers from the cache or runs `route` once for this caller's key.
    pub async fn run<F, Fut>(
        &self,
        caller: Caller,
        key: &str,
        req: &InferenceRequest,
        route: F,
    ) -> Lookup
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Routed>,
    {
        let fingerprint = fingerprint(req);
        let key = Key {
            caller,
            key: key.to_string(),
        };
        let key_bytes = key.key.len();
        let ran = AtomicBool::new(false);
        // `try_get_with` evaluates one init per key at a time and hands its result to
        // every request that waited; an `Err` (a transient failure) is handed over the
        // same way but not kept.
        let result = self
            .cache
            .try_get_with(key, async {
                ran.store(true, Ordering::Relaxed);
                let routed = route().await;
                let stored = Stored {
                    fingerprint,
                    weight: weight(key_bytes, &routed),
                    routed,
                };
                if stored.routed.status >= 500 {
                    Err(stored)
                } else {
                    Ok(Arc::new(stored))
                }
            })
            .await;
        let stored: &Stored = match &result {
            Ok(s) => s,
            Err(s) => s,
        };
        if stored.fingerprint != fingerprint {
            return Lookup::Conflict;
        }
        Lookup::Answer(stored.routed.clone(), !ran.load(Ordering::Relaxed))
    }

    /// Bytes the kept entries hold (as weighed), after pending evictions.
    pub async fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.weighted_size()
    }

    /// Keys kept, after pending evictions and expiries.
    pub async fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }

    /// Drops expired entries on time: an expired entry is never served, and this frees
    /// its memory even when no request touches the cache. Runs until `shutdown`.
    pub async fn sweep(&self, shutdown: CancellationToken) {
        let every = (self.ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => self.cache.run_pending_tasks().await,
            }
        }
    }
}

/// Bytes an entry holds: its key, its answer as served, and [`ENTRY_OVERHEAD`].
fn weight(key_bytes: usize, routed: &Routed) -> u32 {
    let body = serde_json::to_vec(&routed.body).map_or(0, |b| b.len());
    let total = key_bytes + body + ENTRY_OVERHEAD;
    u32::try_from(total).unwrap_or(u32::MAX)
}

/// SHA-256 of the fields that make two requests the same request.
fn fingerprint(req: &InferenceRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    // Length-prefixed, so no two different field lists hash the same text.
    let region = req.region_preference.as_deref();
    for part in [
        req.model.as_str(),
        req.prompt.as_str(),
        region.unwrap_or(""),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update([u8::from(region.is_some())]);
    h.update(req.max_tokens.to_le_bytes());
    h.update(req.temperature.to_bits().to_le_bytes());
    h.update([u8::from(req.allow_region_fallback)]);
    h.finalize().into()
}
