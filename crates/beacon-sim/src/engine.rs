//! The call engine: admits inference calls, runs each one as a task on the tracker, shares
//! its result with whoever waits for it (the original request, or reloads of its result
//! URL after a 303), and records every ending exactly once (the first ending wins).
//!
//! Cancellation rules: before any redirect, the original request is the only client, so
//! when it goes away the call is cancelled at once. After a redirect the call keeps
//! running, like Modal's; once no client has waited on its result URL for
//! `orphan_grace`, it is cancelled. Either way the outcome is `cancelled_by_client`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use beacon_core::Region;
use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::answer;
use crate::cold::ColdStart;
use crate::config::{ProviderKind, SimConfig};
use crate::faults::{FaultError, FaultPatch, Faults};
use crate::gate::Gate;
use crate::plan::{FaultKind, Plan};
use crate::reply::{CallRequest, Reply, Served};
use crate::scenario::Scenario;
use crate::stats::{CallLog, Entry, Outcome, Phase, Route, SimStats};
use crate::waiting::{Join, WaiterGuard};
use crate::{modal, openai};

/// Longest model name kept in a record of a refused call (the name is client input).
const MAX_RECORDED_MODEL: usize = 128;

/// A call in progress (or a finished redirected call kept for reloads).
#[derive(Debug)]
pub(crate) struct LiveCall {
    pub id: u64,
    pub token: CancellationToken,
    pub(crate) result: watch::Sender<Option<Arc<Reply>>>,
}

struct Live {
    call: Arc<LiveCall>,
    phase: Phase,
    redirected: bool,
    waiters: u32,
    /// Bumped when a waiter joins, so a stale orphan check does nothing.
    epoch: u64,
}

struct State {
    log: CallLog,
    /// Truncated hash of (model, prompt) → times asked.
    occurrences: HashMap<u64, u32>,
    live: HashMap<u64, Live>,
    /// Finished redirected calls kept for reloads, oldest first.
    kept: VecDeque<u64>,
}

pub(crate) struct Engine {
    pub region: Region,
    pub label: String,
    pub provider_id: String,
    pub kind: ProviderKind,
    models: Vec<Arc<str>>,
    scenario: Option<Scenario>,
    seed: u64,
    orphan_grace: Duration,
    result_capacity: usize,
    faults: Mutex<Faults>,
    state: Mutex<State>,
    cold: ColdStart,
    gate: Gate,
    pub tracker: TaskTracker,
    pub token: CancellationToken,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("region", &self.region)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// The critical sections below never panic half-way, so a poisoned lock still holds
/// consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn limit_of(f: &Faults) -> Option<usize> {
    f.max_concurrency.map(|n| n as usize)
}

impl Engine {
    pub fn new(config: &SimConfig, tracker: TaskTracker, token: CancellationToken) -> Engine {
        Engine {
            provider_id: format!("beacon-sim-{}", config.region),
            label: config.effective_label(),
            region: config.region.clone(),
            kind: config.kind,
            models: config
                .models
                .iter()
                .map(|m| Arc::from(m.as_str()))
                .collect(),
            scenario: config.scenario.clone(),
            seed: config.seed,
            orphan_grace: config.orphan_grace,
            result_capacity: config.result_capacity,
            gate: Gate::new(limit_of(&config.faults)),
            faults: Mutex::new(config.faults.clone()),
            state: Mutex::new(State {
                log: CallLog::new(config.log_capacity),
                occurrences: HashMap::new(),
                live: HashMap::new(),
                kept: VecDeque::new(),
            }),
            cold: ColdStart::default(),
            tracker,
            token,
        }
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub fn set_faults(&self, patch: &FaultPatch) -> Result<Faults, FaultError> {
        let mut faults = lock(&self.faults);
        let new = faults.patched(patch)?;
        self.gate.set_limit(limit_of(&new));
        *faults = new.clone();
        Ok(new)
    }

    pub fn model(&self, name: &str) -> Option<Arc<str>> {
        self.models.iter().find(|m| &***m == name).cloned()
    }

    pub fn models(&self) -> &[Arc<str>] {
        &self.models
    }

    pub fn stats(&self, since_id: u64, limit: usize) -> SimStats {
        lock(&self.state)
            .log
            .snapshot(self.region.as_str(), &self.label, since_id, limit)
    }

    /// Records a call refused before any work (validation error, unknown model, broken
    /// inference route).
    pub fn record_refused(
        &self,
        route: Route,
        model: &str,
        prompt: &str,
        outcome: Outcome,
        status: u16,
    ) -> u64 {
        let model = self.model(model).unwrap_or_else(|| {
            Arc::from(model.chars().take(MAX_RECORDED_MODEL).collect::<String>())
        });
        let now = Utc::now();
        lock(&self.state).log.push(Entry {
            route,
            model,
            prompt_sha256: Sha256::digest(prompt.as_bytes()).into(),
            occurrence: 0,
            fault: FaultKind::None,
            cold_start: false,
            phase: Phase::Ended,
            redirects: 0,
            started_at: now,
            ended_at: Some(now),
            outcome,
            http_status: Some(status),
        })
    }

    /// Admits a call: draws its plan, logs it and starts its task.
    pub fn start(self: &Arc<Self>, req: CallRequest, faults: &Faults) -> Arc<LiveCall> {
        let admitted = Instant::now();
        let started_at = Utc::now();
        let cold_until = self.cold.enter(faults, admitted);
        let mut key_hasher = Sha256::new();
        key_hasher.update(req.model.as_bytes());
        key_hasher.update([0u8]);
        key_hasher.update(req.prompt.as_bytes());
        let key_digest = key_hasher.finalize();
        let mut key = [0u8; 8];
        key.copy_from_slice(&key_digest[..8]);
        let key = u64::from_le_bytes(key);

        let (call, plan, occurrence) = {
            let mut st = lock(&self.state);
            let counter = st.occurrences.entry(key).or_insert(0);
            let occurrence = *counter;
            *counter = counter.saturating_add(1);
            let plan = Plan::draw(
                self.seed,
                &req.model,
                &req.prompt,
                occurrence,
                req.temperature,
                faults,
            );
            let id = st.log.push(Entry {
                route: req.route,
                model: req.model.clone(),
                prompt_sha256: Sha256::digest(req.prompt.as_bytes()).into(),
                occurrence,
                fault: plan.fault,
                cold_start: cold_until.is_some(),
                phase: Phase::Queued,
                redirects: 0,
                started_at,
                ended_at: None,
                outcome: Outcome::Running,
                http_status: None,
            });
            let call = Arc::new(LiveCall {
                id,
                token: self.token.child_token(),
                result: watch::channel(None).0,
            });
            st.live.insert(
                id,
                Live {
                    call: call.clone(),
                    phase: Phase::Queued,
                    redirected: false,
                    waiters: 0,
                    epoch: 0,
                },
            );
            (call, plan, occurrence)
        };
        let engine = self.clone();
        let task_call = call.clone();
        self.tracker.spawn(async move {
            let token = task_call.token.clone();
            tokio::select! {
                biased;
                _ = token.cancelled() => {
                    // A client cancellation was recorded before the token fired; this
                    // only records anything when the whole simulator is shutting down.
                    engine.finish(task_call.id, Outcome::CancelledByShutdown, None);
                }
                () = engine.work(&task_call, &req, &plan, occurrence, cold_until, admitted, started_at) => {}
            }
            engine.cold.leave();
        });
        call
    }

    #[allow(clippy::too_many_arguments)]
    async fn work(
        &self,
        call: &LiveCall,
        req: &CallRequest,
        plan: &Plan,
        occurrence: u32,
        cold_until: Option<Instant>,
        admitted: Instant,
        started_at: chrono::DateTime<Utc>,
    ) {
        if let Some(at) = cold_until {
            tokio::time::sleep_until(at).await;
        }
        let _slot = self.gate.acquire().await;
        self.start_serving(call.id);
        let serving = Instant::now();
        if !plan.latency.is_zero() {
            tokio::time::sleep(plan.latency).await;
        }
        if plan.fault == FaultKind::Hang {
            // Never answers: only cancellation (client gone, or shutdown) ends it.
            std::future::pending::<()>().await;
        }
        if plan.fault == FaultKind::Drop {
            self.finish(call.id, Outcome::Dropped, Some(Arc::new(Reply::Drop)));
            return;
        }
        let composed = answer::compose(
            self.scenario.as_ref(),
            &self.region,
            &req.model,
            &req.prompt,
            plan.variant,
        );
        let full = if plan.fault == FaultKind::Empty {
            String::new()
        } else {
            composed.text
        };
        let (text, truncated) = answer::truncate_to_tokens(&full, req.max_tokens);
        let served = Served {
            engine: self,
            call_id: call.id,
            req,
            plan,
            occurrence,
            text: &text,
            truncated,
            started_at,
            completed_at: Utc::now(),
            duration_secs: admitted.elapsed().as_secs_f64(),
            inference_secs: serving.elapsed().as_secs_f64(),
        };
        let (reply, outcome) = match req.route {
            Route::Modal => modal::render(&served),
            Route::Openai => openai::render(&served),
        };
        self.finish(call.id, outcome, Some(Arc::new(reply)));
        // `_slot` is released only now, after the call was recorded as ended, so
        // `in_flight` never exceeds the limit.
    }

    fn start_serving(&self, id: u64) {
        let mut st = lock(&self.state);
        let Some(live) = st.live.get_mut(&id) else {
            return;
        };
        if live.phase != Phase::Queued {
            return;
        }
        live.phase = Phase::Serving;
        st.log.start_serving(id);
    }

    /// Records the ending of a call and publishes its reply; only the first ending of a
    /// call counts. Publishing under the state lock means "ended" and "reply visible"
    /// change together for anyone who checks under the lock.
    fn finish(&self, id: u64, outcome: Outcome, reply: Option<Arc<Reply>>) -> bool {
        self.finish_locked(&mut lock(&self.state), id, outcome, reply)
    }

    fn finish_locked(
        &self,
        st: &mut State,
        id: u64,
        outcome: Outcome,
        reply: Option<Arc<Reply>>,
    ) -> bool {
        let Some(live) = st.live.get_mut(&id) else {
            return false;
        };
        if live.phase == Phase::Ended {
            return false;
        }
        let from = live.phase;
        live.phase = Phase::Ended;
        let status = reply.as_ref().and_then(|r| r.status());
        let keep = live.redirected && reply.is_some();
        if let Some(reply) = reply {
            live.call.result.send_replace(Some(reply));
        }
        st.log.end(id, from, outcome, status);
        if keep {
            st.kept.push_back(id);
            while st.kept.len() > self.result_capacity {
                if let Some(old) = st.kept.pop_front() {
                    st.live.remove(&old);
                }
            }
        } else {
            st.live.remove(&id);
        }
        true
    }

    /// Ends a call as `cancelled_by_client` if `still_abandoned` holds, checked and
    /// recorded under one lock so a client arriving meanwhile cannot be cut off; then
    /// stops its task.
    fn cancel_if(&self, id: u64, still_abandoned: impl FnOnce(&mut Live) -> bool) {
        let call = {
            let mut st = lock(&self.state);
            let Some(live) = st.live.get_mut(&id) else {
                return;
            };
            if !still_abandoned(live) {
                return;
            }
            let call = live.call.clone();
            if !self.finish_locked(&mut st, id, Outcome::CancelledByClient, None) {
                return;
            }
            call
        };
        call.token.cancel();
    }

    /// The original request went away before its answer was written.
    pub(crate) fn origin_gone(&self, id: u64) {
        self.cancel_if(id, |l| {
            if l.redirected || l.phase == Phase::Ended {
                return false;
            }
            if l.waiters > 0 {
                // Someone already waits on the result URL: the call now belongs to them.
                l.redirected = true;
                return false;
            }
            true
        });
    }

    /// Turns a timed-out wait into a 303, unless the call ended meanwhile.
    pub fn redirect(self: &Arc<Self>, call: &LiveCall) -> Result<(), Option<Arc<Reply>>> {
        let orphan = {
            let mut guard = lock(&self.state);
            let st = &mut *guard;
            let live = match st.live.get_mut(&call.id) {
                Some(live) if live.phase != Phase::Ended => live,
                _ => return Err(call.result.borrow().clone()),
            };
            live.redirected = true;
            let orphan = (live.waiters == 0).then_some(live.epoch);
            st.log.note_redirect(call.id);
            orphan
        };
        if let Some(epoch) = orphan {
            self.schedule_orphan_check(call.id, epoch);
        }
        Ok(())
    }

    /// A result-URL request: the reply if ready, else a registration as waiter.
    pub fn join(self: &Arc<Self>, id: u64) -> Join {
        let mut st = lock(&self.state);
        let known = id >= 1 && id <= st.log.last_id();
        let Some(live) = st.live.get_mut(&id) else {
            return if known { Join::NoResult } else { Join::Unknown };
        };
        if live.phase == Phase::Ended {
            return match live.call.result.borrow().clone() {
                Some(r) => Join::Ready(r),
                None => Join::NoResult,
            };
        }
        live.waiters += 1;
        live.epoch += 1;
        Join::Wait(
            live.call.clone(),
            WaiterGuard {
                engine: self.clone(),
                id,
            },
        )
    }

    pub(crate) fn leave(self: &Arc<Self>, id: u64) {
        let mut st = lock(&self.state);
        let Some(live) = st.live.get_mut(&id) else {
            return;
        };
        live.waiters = live.waiters.saturating_sub(1);
        // Without a redirect the original request still owns the call.
        if live.waiters > 0 || live.phase == Phase::Ended || !live.redirected {
            return;
        }
        let epoch = live.epoch;
        drop(st);
        self.schedule_orphan_check(id, epoch);
    }

    fn schedule_orphan_check(self: &Arc<Self>, id: u64, epoch: u64) {
        // Guards run in destructors, possibly while the runtime itself is being torn
        // down; then there is nothing left to cancel for.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let engine = self.clone();
        let token = self.token.clone();
        let grace = self.orphan_grace;
        self.tracker.spawn_on(
            async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = tokio::time::sleep(grace) => engine.orphan_check(id, epoch),
                }
            },
            &handle,
        );
    }

    fn orphan_check(&self, id: u64, epoch: u64) {
        self.cancel_if(id, |l| {
            l.redirected && l.phase != Phase::Ended && l.waiters == 0 && l.epoch == epoch
        });
    }
}
