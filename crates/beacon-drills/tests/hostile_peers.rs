//! Drill: peers that misbehave on purpose. A provider that answers 200 MB, a router
//! that answers without provider and region, a router that answers 200 MB: every body
//! read is bounded (the router's and the runner's resident memory stay ≤ 256 MiB), an
//! answer without provenance is a `ROUTER_BAD_RESPONSE` failure, never `completed` and
//! never signed as served, and none of these is retried (one provider call per
//! execution). Runner and router are child processes so their memory can be read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use beacon_drills::audit::calls_by_cell;
use beacon_drills::fleet::job_prompts;
use beacon_drills::procs::RssSampler;
use beacon_drills::spec::REGIONS;
use beacon_drills::{
    DbProbe, Fleet, Lie, LyingRouter, RouterSettings, RunnerChild, RunnerSettings, Shape, Sims,
    print_figures,
};
use beacon_sim::Faults;
use serde_json::{Value, json};

/// The quality bar's memory ceiling for the router and the runner.
const RSS_LIMIT: u64 = 256 << 20;
/// The size of every hostile answer: far over every limit on the way (4 MiB each).
const HUGE: u64 = 200_000_000;
/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// The region whose provider answers 200 MB.
const OVERSIZE_REGION: &str = "eu-west";

/// Both drills measure memory and share the machine's two cores: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// No early stop (`min_success_rate` 0): every execution meets the fault, whatever the
/// others did.
fn constraints() -> Value {
    json!({"timeout": "5m", "provider_timeout": "30s", "min_success_rate": 0})
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Runs job `id` of `shape` on `runner` to its end while sampling the resident memory
/// of `pids`; returns the executions as the API lists them, the peaks and the time.
async fn run_sampled(
    fleet: &Fleet,
    runner: &RunnerChild,
    id: &str,
    shape: &Shape,
    pids: &[u32],
) -> (Vec<Value>, Vec<u64>, Duration) {
    let spec = fleet.spec(id, shape, constraints()).unwrap();
    let samplers: Vec<RssSampler> = pids
        .iter()
        .map(|p| RssSampler::start(*p, SAMPLE_EVERY))
        .collect();
    let began = Instant::now();
    runner.api.submit_json(&spec).await.unwrap();
    let state = runner
        .api
        .wait_terminal(id, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e:#}{}", runner.log_tail()));
    let took = began.elapsed();
    let mut peaks = Vec::new();
    for (s, p) in samplers.into_iter().zip(pids) {
        peaks.push(s.stop(*p).await);
    }
    // min_success_rate 0: the job completes whatever its executions did.
    assert_eq!(state.status, "completed", "{id}: {:?}", state.progress);
    let execs = runner.api.executions(id).await.unwrap();
    assert_eq!(execs.len() as u64, shape.executions(), "{id}");
    (execs, peaks, took)
}

/// Provider calls of job `id` per cell (`question/model/region/0`).
fn calls_per_cell(fleet: &Fleet, id: &str, shape: &Shape) -> BTreeMap<String, usize> {
    let calls = fleet.sims.live_calls();
    calls_by_cell(&job_prompts(id, shape), &calls)
        .into_iter()
        .map(|(cell, list)| (cell, list.len()))
        .collect()
}

/// Asserts that `e` failed, for good, with `code`, and kept no answer.
fn assert_failed_for_good(e: &Value, code: &str) {
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(e["failure"]["code"], code, "{e}");
    assert_eq!(e["failure"]["transient"], false, "{e}");
    assert_eq!(e["attempts"], 1, "not retried: {e}");
    assert!(e["output"]["response"].is_null(), "no answer kept: {e}");
}

/// No receipt of `execs` says `completed`; every one of them has a receipt.
async fn assert_no_receipt_says_served(db: &DbProbe, id: &str, execs: &[Value]) {
    let receipts = db.receipts(id).await.unwrap();
    for e in execs {
        let eid = e["id"].as_str().unwrap();
        let r = receipts
            .get(eid)
            .unwrap_or_else(|| panic!("a failed execution has a receipt: {e}"));
        assert_eq!(r["status"], "failed", "never signed as served: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_provider_answer_is_cut_off_and_never_bought_twice() {
    let _one_at_a_time = SERIAL.lock().await;
    let Some((store, pg)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    drop(store);
    let began = Instant::now();
    let sims = Sims::start(&REGIONS, 31, |region| Faults {
        latency_ms: 50,
        oversize_bytes: if region == OVERSIZE_REGION { HUGE } else { 0 },
        ..Faults::default()
    })
    .await
    .unwrap();
    // The router would eject the provider after a few oversize answers and make the rest
    // wait for its readmission (the chaos drill's subject); here every execution of the
    // region is to meet the 200 MB answer itself.
    let router = RouterSettings {
        unhealthy_after: 1_000,
        ..RouterSettings::default()
    };
    let fleet = Fleet::start(sims, &router).await.unwrap();
    let runner = fleet
        .runner(&RunnerSettings::fast("runner-a"), pg.url())
        .await
        .unwrap();
    let db = DbProbe::connect(pg.url()).await.unwrap();

    let id = "drill-oversize";
    let shape = Shape::one_run(10);
    let (execs, peaks, took) = run_sampled(
        &fleet,
        &runner,
        id,
        &shape,
        &[fleet.router.pid(), runner.pid()],
    )
    .await;
    fleet
        .sims
        .wait_quiet(Duration::from_secs(15))
        .await
        .unwrap();
    let (router_peak, runner_peak) = (peaks[0], peaks[1]);
    let oversize: Vec<&Value> = execs
        .iter()
        .filter(|e| e["region"] == OVERSIZE_REGION)
        .collect();
    // The region's calls, the router's probes left out (they meet the 200 MB too).
    let served: Vec<_> = fleet
        .sims
        .live_calls()
        .into_iter()
        .filter(|c| c.region == OVERSIZE_REGION)
        .map(|c| c.call)
        .collect();
    let huge_calls: Vec<_> = served
        .iter()
        .filter(|c| c.response_bytes.is_some_and(|b| b >= HUGE))
        .collect();
    let hung_up = huge_calls.iter().filter(|c| c.hung_up_mid_body).count();
    let per_cell = calls_per_cell(&fleet, id, &shape);
    let statuses = status_codes(&execs);
    print_figures(
        "hostile peers: 200 MB provider answer",
        &[
            ("executions", execs.len().to_string()),
            (
                &format!("executions in {OVERSIZE_REGION} (200 MB answers)"),
                oversize.len().to_string(),
            ),
            (
                "provider calls (all regions)",
                per_cell.values().sum::<usize>().to_string(),
            ),
            (
                &format!("{OVERSIZE_REGION} calls with response_bytes >= {HUGE}"),
                huge_calls.len().to_string(),
            ),
            (
                "response_bytes of those",
                format!(
                    "{:?}",
                    huge_calls
                        .iter()
                        .filter_map(|c| c.response_bytes)
                        .collect::<std::collections::BTreeSet<_>>()
                ),
            ),
            (
                "of those hung_up_mid_body (router stopped reading)",
                hung_up.to_string(),
            ),
            (
                "the router's refusal (first)",
                oversize
                    .first()
                    .and_then(|e| e["failure"]["message"].as_str())
                    .unwrap_or("")
                    .chars()
                    .take(160)
                    .collect(),
            ),
            ("router peak RSS", mib(router_peak)),
            ("runner peak RSS", mib(runner_peak)),
            ("final status", format!("{statuses:?}")),
            ("job time", format!("{took:.2?}")),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    assert_eq!(oversize.len() as u64, shape.executions() / 3);
    for e in &execs {
        if e["region"] == OVERSIZE_REGION {
            assert_failed_for_good(e, "PROVIDER_RESPONSE_TOO_LARGE");
            let message = e["failure"]["message"].as_str().unwrap_or("");
            assert!(message.contains("max_response_bytes"), "{e}");
        } else {
            assert_eq!(e["status"], "completed", "{e}");
        }
    }
    assert_eq!(
        per_cell.len() as u64,
        shape.executions(),
        "every cell called"
    );
    assert!(
        per_cell.values().all(|n| *n == 1),
        "one provider call per execution: {per_cell:?}"
    );
    // Every call of the region met the 200 MB answer and was hung up on mid-body.
    assert_eq!(
        served.len(),
        oversize.len(),
        "one call per execution: {served:?}"
    );
    assert_eq!(
        huge_calls.len(),
        served.len(),
        "every one 200 MB: {served:?}"
    );
    assert_eq!(hung_up, huge_calls.len(), "the router stopped reading each");
    let oversize_execs: Vec<Value> = oversize.into_iter().cloned().collect();
    assert_no_receipt_says_served(&db, id, &oversize_execs).await;
    assert!(
        router_peak > 0 && router_peak <= RSS_LIMIT,
        "router peak RSS {} <= 256 MiB",
        mib(router_peak)
    );
    assert!(
        runner_peak > 0 && runner_peak <= RSS_LIMIT,
        "runner peak RSS {} <= 256 MiB",
        mib(runner_peak)
    );

    db.close().await;
    drop(runner);
    fleet.shutdown().await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_router_gets_no_answer_signed_as_served() {
    let _one_at_a_time = SERIAL.lock().await;
    let Some((store, pg)) = beacon_store::testing::postgres_store().await else {
        return;
    };
    drop(store);
    let began = Instant::now();
    let sims = Sims::start(&REGIONS, 37, |_| Faults::default())
        .await
        .unwrap();
    let fleet = Fleet::start(sims, &RouterSettings::default())
        .await
        .unwrap();
    let liar = LyingRouter::start(fleet.router.url(), Lie::NoProvenance)
        .await
        .unwrap();
    // 64 calls in flight (the instance's default ceiling), each reading a hostile body
    // up to `max_router_body_bytes`: the worst case for the runner's memory.
    let settings = RunnerSettings::fast("runner-a").scheduler("max_concurrency_per_job", 64);
    let runner = fleet
        .runner_via(&settings, pg.url(), liar.url())
        .await
        .unwrap();
    let db = DbProbe::connect(pg.url()).await.unwrap();
    let shape = Shape::one_run(10);
    let total = shape.executions();

    // No provenance: `{"success": true}` for every answer the router really got.
    let no_prov = "drill-liar-no-provenance";
    let (execs, _, no_prov_took) = run_sampled(&fleet, &runner, no_prov, &shape, &[]).await;
    let no_prov_calls = calls_per_cell(&fleet, no_prov, &shape);
    let no_prov_forwarded = liar.inference_calls();
    for e in &execs {
        assert_failed_for_good(e, "ROUTER_BAD_RESPONSE");
    }
    assert_no_receipt_says_served(&db, no_prov, &execs).await;
    let no_prov_statuses = status_codes(&execs);

    // 200 MB streamed without a Content-Length, in answer to every inference.
    liar.set_lie(Lie::HugeBody(HUGE));
    let huge = "drill-liar-huge-body";
    let (execs, peaks, huge_took) =
        run_sampled(&fleet, &runner, huge, &shape, &[runner.pid()]).await;
    let runner_peak = peaks[0];
    let huge_calls = calls_per_cell(&fleet, huge, &shape);
    let huge_forwarded = liar.inference_calls() - no_prov_forwarded;
    for e in &execs {
        assert_failed_for_good(e, "ROUTER_RESPONSE_TOO_LARGE");
        let message = e["failure"]["message"].as_str().unwrap_or("");
        assert!(message.contains("max_router_body_bytes"), "{e}");
    }
    assert_no_receipt_says_served(&db, huge, &execs).await;
    let huge_statuses = status_codes(&execs);

    print_figures(
        "hostile peers: lying router",
        &[
            ("executions per job", total.to_string()),
            (
                "no provenance: final status",
                format!("{no_prov_statuses:?}"),
            ),
            (
                "no provenance: inference calls through the liar / provider calls",
                format!(
                    "{no_prov_forwarded} / {}",
                    no_prov_calls.values().sum::<usize>()
                ),
            ),
            ("no provenance: job time", format!("{no_prov_took:.2?}")),
            ("200 MB body: final status", format!("{huge_statuses:?}")),
            (
                "200 MB body: inference calls through the liar / provider calls",
                format!("{huge_forwarded} / {}", huge_calls.values().sum::<usize>()),
            ),
            ("200 MB body: runner peak RSS", mib(runner_peak)),
            ("200 MB body: job time", format!("{huge_took:.2?}")),
            ("drill time", format!("{:.1?}", began.elapsed())),
        ],
    );

    for (what, calls, forwarded) in [
        ("no provenance", &no_prov_calls, no_prov_forwarded),
        ("200 MB body", &huge_calls, huge_forwarded),
    ] {
        assert_eq!(calls.len() as u64, total, "{what}: every cell called");
        assert!(
            calls.values().all(|n| *n == 1),
            "{what}: one provider call per execution: {calls:?}"
        );
        assert_eq!(forwarded, total, "{what}: one inference call each");
    }
    assert!(
        runner_peak > 0 && runner_peak <= RSS_LIMIT,
        "runner peak RSS {} <= 256 MiB",
        mib(runner_peak)
    );

    db.close().await;
    drop(runner);
    drop(liar);
    fleet.shutdown().await;
    pg.cleanup().await;
}

/// Executions per `status error_code`.
fn status_codes(execs: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in execs {
        let key = format!(
            "{} {}",
            e["status"].as_str().unwrap_or("?"),
            e["error_code"].as_str().unwrap_or("")
        );
        *out.entry(key.trim().to_string()).or_insert(0) += 1;
    }
    out
}
