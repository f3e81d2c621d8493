//! The judge's background task. While `[judge] enabled`, every `interval` it walks the
//! stored answers that have no label of the current rubric (completed, non-empty
//! answers of finished jobs: `Store::judge_candidates`, page by page) and asks the judge
//! model about each, at most `max_concurrency` calls in flight. What it does is decided
//! by what is stored, so a restart or a second instance simply carries on; each call's
//! `Idempotency-Key` is `judge:<rubric>:<execution>`, so the router replays an answer it
//! already sold for that key instead of buying it again.
//!
//! A transient failure leaves the answer unlabelled for a later pass, but after
//! `MAX_BOUGHT_FAILURES` failed calls that may have reached a provider this process
//! stops asking about it. A non-transient one (an unknown model, a refused token) is
//! logged once and that answer is not asked about again by this process: a broken
//! judge must not loop spending money.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use beacon_core::wire::InferenceRequest;
use beacon_store::{JudgeCandidate, JudgeLabel};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::rubric::{self, RUBRIC_VERSION};
use crate::config::JudgeConfig;
use crate::router::{CallResult, new_trace_id, traceparent};
use crate::scheduler::Ctx;

/// Candidates read from the store at a time.
const PAGE: u32 = 64;
/// An idle judge's wait grows to this many `interval`s (5 minutes at the default 10 s).
const IDLE_FACTOR: u32 = 30;
/// Judge calls of one answer that may have been bought and still failed (a provider
/// timing out, say) before this process stops asking about it: each pass would
/// otherwise buy it again, every `interval`, for as long as the judge keeps failing.
const MAX_BOUGHT_FAILURES: u32 = 3;

/// How one answer's turn ended.
enum Step {
    Labelled,
    /// Try again on a later pass (a transient router or store failure); `bought` when
    /// the failed call may have reached a provider (a paid call).
    Later {
        bought: bool,
    },
    /// Do not ask about this answer again in this process; with the router's refusal
    /// (code, message) when that is why.
    Skip(Option<(String, String)>),
    Interrupted,
}

/// Runs until `token` is cancelled. Does nothing unless the judge is enabled.
pub async fn run(ctx: Arc<Ctx>, cfg: JudgeConfig, token: CancellationToken) {
    let Some((model, region)) = cfg.target() else {
        return;
    };
    tracing::info!(model, region, rubric = RUBRIC_VERSION, "judge started");
    let mut state = State::default();
    let mut wait = cfg.interval;
    loop {
        let (asked, labelled) = pass(&ctx, &cfg, &mut state, &token).await;
        if labelled > 0 {
            tracing::info!(labelled, "judge pass done");
        }
        // Each pass reads every completed answer of finished jobs that lacks a label: a
        // judge with nothing to do looks less and less often (doubling, up to
        // IDLE_FACTOR intervals), and at `interval` again once there is work.
        wait = if asked > 0 {
            cfg.interval
        } else {
            (wait * 2).min(cfg.interval * IDLE_FACTOR)
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What the task remembers between passes (nothing a restart needs).
#[derive(Default)]
struct State {
    /// Answers not to ask about again: refused by the router, or empty by the rules.
    skip: HashSet<String>,
    /// Refusal codes already logged: a broken judge logs each reason once, not once
    /// per answer.
    logged: HashSet<String>,
    /// Failed calls per answer that may have been bought (see MAX_BOUGHT_FAILURES).
    bought_failures: HashMap<String, u32>,
}

/// One walk over the answers waiting for a label; returns how many judge calls it made
/// and how many labels it stored.
async fn pass(
    ctx: &Ctx,
    cfg: &JudgeConfig,
    state: &mut State,
    token: &CancellationToken,
) -> (u64, u64) {
    // Each job's plan read once per pass.
    let mut plans = crate::views::Plans::default();
    let mut cursor = String::new();
    let (mut asked, mut labelled) = (0, 0);
    loop {
        if token.is_cancelled() {
            return (asked, labelled);
        }
        let page = match ctx
            .store
            .judge_candidates(RUBRIC_VERSION, &cursor, PAGE)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "judge: cannot read the answers to label; trying later");
                // Not idle: the database is away, look again at `interval`.
                return (asked + 1, labelled);
            }
        };
        let Some(last) = page.last() else {
            return (asked, labelled);
        };
        cursor = last.execution_id.clone();
        let mut work = Vec::new();
        for c in page {
            if state.skip.contains(&c.execution_id) {
                continue;
            }
            let question = plans
                .get(ctx.store.as_ref(), &c.job_id)
                .await
                .and_then(|p| p.question(&c.question_id));
            let rule_q = question.map(crate::analysis::question_of);
            // The stored classification is from the rules of its day: an answer the
            // current rules find empty is not judged (the report does not either).
            if crate::classify::judge(&c.response, rule_q).is_none() {
                state.skip.insert(c.execution_id.clone());
                continue;
            }
            let text = question.map_or(c.question_id.clone(), |q| q.text.clone());
            work.push((c, text));
        }
        let max = cfg.max_concurrency.max(1) as usize;
        let steps: Vec<(String, Step)> = futures_util::stream::iter(work)
            .map(|(c, question)| async move {
                let step = label_one(ctx, cfg, &c, &question, token).await;
                (c.execution_id, step)
            })
            .buffer_unordered(max)
            .collect()
            .await;
        asked += steps.len() as u64;
        for (id, step) in steps {
            match step {
                Step::Labelled => labelled += 1,
                Step::Skip(refusal) => {
                    if let Some((code, message)) = refusal {
                        if state.logged.insert(code.clone()) {
                            tracing::error!(
                                execution = %id,
                                code = %code,
                                message = %message,
                                "the router refuses judge calls; answers refused so are not asked \
                                 about again by this process (this reason is logged once)"
                            );
                        }
                    }
                    state.skip.insert(id);
                }
                Step::Later { bought: false } => {}
                Step::Later { bought: true } => {
                    let n = state.bought_failures.entry(id.clone()).or_default();
                    *n += 1;
                    if *n >= MAX_BOUGHT_FAILURES {
                        tracing::warn!(
                            execution = %id,
                            failures = *n,
                            "judge calls about this answer keep failing after reaching a \
                             provider; it is not asked about again by this process"
                        );
                        state.bought_failures.remove(&id);
                        state.skip.insert(id);
                    }
                }
                Step::Interrupted => return (asked, labelled),
            }
        }
    }
}

/// Asks the judge about one answer and stores its verdict.
async fn label_one(
    ctx: &Ctx,
    cfg: &JudgeConfig,
    c: &JudgeCandidate,
    question: &str,
    token: &CancellationToken,
) -> Step {
    let Some((model, region)) = cfg.target() else {
        return Step::Skip(None);
    };
    // The same breaker as job calls: a router that is down gets no judge calls either.
    let permit = tokio::select! {
        _ = token.cancelled() => return Step::Interrupted,
        p = ctx.router.breaker.acquire() => p,
    };
    let request = InferenceRequest {
        model: model.to_string(),
        prompt: rubric::prompt(question, &c.response),
        temperature: 0.0,
        max_tokens: cfg.max_tokens,
        region_preference: Some(region.to_string()),
        allow_region_fallback: false,
        cost_priority: true,
        trace_id: None,
        timeout_ms: None,
    };
    let key = format!("judge:{RUBRIC_VERSION}:{}", c.execution_id);
    let timeout = cfg.timeout.min(ctx.router_timeout);
    let parent = traceparent(&new_trace_id());
    let span = tracing::info_span!("judge_call", execution = %c.execution_id, model);
    let result = tokio::select! {
        biased;
        r = tracing::Instrument::instrument(
            ctx.router.infer(permit, &request, &key, &parent, timeout),
            span,
        ) => r,
        _ = token.cancelled() => return Step::Interrupted,
    };
    let answer = match result {
        CallResult::Answer(a) => a,
        CallResult::Failed { failure, bought } if failure.transient => {
            count(ctx, "transient_failure");
            tracing::debug!(execution = %c.execution_id, code = %failure.code, bought, "judge call failed; trying later");
            return Step::Later { bought };
        }
        CallResult::Failed { failure, .. } => {
            count(ctx, "refused");
            return Step::Skip(Some((failure.code.to_string(), failure.message)));
        }
    };
    let reply = answer.response.unwrap_or_default();
    let verdict = rubric::parse(&reply);
    count(
        ctx,
        if verdict == rubric::Verdict::Unparsed {
            "unparsed"
        } else {
            "labelled"
        },
    );
    let label = JudgeLabel {
        execution_id: c.execution_id.clone(),
        rubric: RUBRIC_VERSION.to_string(),
        label: verdict.as_str().to_string(),
        model: model.to_string(),
        provider_id: answer.provider_used,
        raw: reply,
        created_at: chrono::Utc::now(),
    };
    store_label(ctx, &label, token).await
}

fn count(ctx: &Ctx, outcome: &'static str) {
    ctx.metrics.inc(
        "beacon_runner_judge_calls_total",
        vec![("outcome", outcome.to_string())],
    );
}

/// Stores a bought label, waiting out a database outage a little (the answer was paid
/// for; asking again on a later pass would be replayed by the router, but only while
/// its idempotency cache holds it).
async fn store_label(ctx: &Ctx, label: &JudgeLabel, token: &CancellationToken) -> Step {
    let mut wait = Duration::from_millis(200);
    for _ in 0..5 {
        match ctx.store.insert_judge_label(label).await {
            Ok(_) => return Step::Labelled,
            Err(e) if e.is_transient() => {
                tracing::warn!(execution = %label.execution_id, error = %e, "judge: cannot store a label yet");
                tokio::select! {
                    _ = token.cancelled() => return Step::Interrupted,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(execution = %label.execution_id, error = %e, "judge: the database refused a label");
                return Step::Skip(None);
            }
        }
    }
    Step::Later { bought: false }
}
