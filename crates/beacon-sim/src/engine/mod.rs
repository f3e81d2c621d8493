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
use crate::stats::{CallLog, Entry, Outcome, Phase, Route, ServedText, SimStats};
use crate::{modal, openai};

mod redirects;
mod timer;

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
        traceparent: Option<Box<str>>,
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
            served: None,
            hung_up_mid_body: false,
            traceparent,
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
                served: None,
                hung_up_mid_body: false,
                traceparent: req.traceparent.clone(),
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
                    engine.finish(task_call.id, Outcome::CancelledByShutdown, None, None);
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
        // Service starts when the call is admitted (or its cold start ends), unless it
        // has to queue for a slot. Counting from when this task first ran added the
        // task's scheduling delay, which grows in a burst of admissions, to the call.
        let (_slot, serving) = match self.gate.try_acquire() {
            Some(slot) => (slot, cold_until.unwrap_or(admitted).max(admitted)),
            None => (self.gate.acquire().await, Instant::now()),
        };
        self.start_serving(call.id);
        if !plan.latency.is_zero() {
            timer::sleep_until(serving + plan.latency).await;
        }
        if plan.fault == FaultKind::Hang {
            // Never answers: only cancellation (client gone, or shutdown) ends it.
            std::future::pending::<()>().await;
        }
        if plan.fault == FaultKind::Drop {
            self.finish(call.id, Outcome::Dropped, Some(Arc::new(Reply::Drop)), None);
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
        let (mut text, truncated) = answer::truncate_to_tokens(&full, req.max_tokens);
        // NUL and padding shape successful answers with text only: they test what a
        // client does with an answer, not with a failure.
        let shaped = plan.fault == FaultKind::None && !text.is_empty();
        if shaped && plan.nul {
            text = answer::with_nul(&text);
        }
        let pad = if shaped {
            plan.oversize_bytes.saturating_sub(text.len() as u64)
        } else {
            0
        };
        let served = Served {
            engine: self,
            call_id: call.id,
            req,
            plan,
            occurrence,
            text: &text,
            pad,
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
        let answered = matches!(outcome, Outcome::Ok | Outcome::Empty);
        let text_record = answered.then(|| match &reply {
            // The padded text's hash is computed as its filler streams out.
            Reply::Padded(p) => ServedText {
                sha256: None,
                bytes: p.text_bytes(),
            },
            _ => ServedText {
                sha256: Some(Sha256::digest(text.as_bytes()).into()),
                bytes: text.len() as u64,
            },
        });
        self.finish(call.id, outcome, Some(Arc::new(reply)), text_record);
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
    fn finish(
        &self,
        id: u64,
        outcome: Outcome,
        reply: Option<Arc<Reply>>,
        served: Option<ServedText>,
    ) -> bool {
        self.finish_locked(&mut lock(&self.state), id, outcome, reply, served)
    }

    fn finish_locked(
        &self,
        st: &mut State,
        id: u64,
        outcome: Outcome,
        reply: Option<Arc<Reply>>,
        served: Option<ServedText>,
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
        st.log.end(id, from, outcome, status, served);
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

    /// A padded answer's filler went out: the log learns its text's hash.
    pub(crate) fn note_streamed_text(&self, id: u64, sha256: [u8; 32]) {
        lock(&self.state).log.note_streamed_text(id, sha256);
    }

    /// A client hung up before a streamed answer's last byte.
    pub(crate) fn note_hung_up(&self, id: u64) {
        lock(&self.state).log.note_hung_up(id);
    }
}
