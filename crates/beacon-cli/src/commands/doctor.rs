//! `beacon doctor`: the checks an operator would run by hand, each with a verdict (ok,
//! warn, fail), what was seen, and the next step. Exits non-zero when a check fails.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::client::Client;
use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        }
    }
}

struct Check {
    name: String,
    verdict: Verdict,
    detail: String,
    next: Option<String>,
}

fn check(
    name: impl Into<String>,
    verdict: Verdict,
    detail: impl Into<String>,
    next: Option<&str>,
) -> Check {
    Check {
        name: name.into(),
        verdict,
        detail: detail.into(),
        next: next.map(str::to_string),
    }
}

pub async fn doctor(
    runner: &str,
    router: Option<String>,
    token: Option<String>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let client = Client::new(runner);
    let mut checks = Vec::new();
    runner_checks(&client, &mut checks).await;
    let providers = provider_list(&client, router.as_deref(), token.as_deref(), &mut checks).await;
    if let Some(list) = providers {
        provider_checks(&list, &mut checks);
    }
    region_checks(&client, &mut checks).await;
    failure_checks(&client, &mut checks).await;

    let worst = checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Ok);
    if as_json {
        let list: Vec<Value> = checks
            .iter()
            .map(|c| json!({"check": c.name, "verdict": c.verdict.word().to_lowercase(), "detail": c.detail, "next": c.next}))
            .collect();
        println!("{}", json!({"ok": worst != Verdict::Fail, "checks": list}));
    } else {
        for c in &checks {
            println!("{:<5} {:<34} {}", c.verdict.word(), c.name, c.detail);
            if let Some(n) = &c.next {
                println!("{:<5} {:<34} → {n}", "", "");
            }
        }
        let fails = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
        let warns = checks.iter().filter(|c| c.verdict == Verdict::Warn).count();
        println!(
            "\n{} checks: {fails} failed, {warns} warnings",
            checks.len()
        );
    }
    Ok(if worst == Verdict::Fail {
        exit::FAILED
    } else {
        exit::OK
    })
}

async fn runner_checks(client: &Client, checks: &mut Vec<Check>) {
    match client.get_any("/livez").await {
        Ok((200, _)) => checks.push(check(
            "runner reachable",
            Verdict::Ok,
            client.base.clone(),
            None,
        )),
        Ok((s, _)) => checks.push(check(
            "runner reachable",
            Verdict::Fail,
            format!("/livez answered HTTP {s}"),
            Some("check the runner's logs"),
        )),
        Err(e) => {
            checks.push(check(
                "runner reachable",
                Verdict::Fail,
                e.to_string(),
                Some("start the runner, or pass --runner / BEACON_RUNNER_URL"),
            ));
            return;
        }
    }
    match client.get("/api/v1/health").await {
        Ok(h) => {
            for s in h["services"].as_array().into_iter().flatten() {
                let name = s["name"].as_str().unwrap_or("?");
                let healthy = s["status"] == "healthy";
                let (label, next) = match name {
                    "database" => (
                        "runner database",
                        "check DATABASE_URL, that the database accepts connections and has disk space \
                         (answers already paid for are held and stored when it recovers)",
                    ),
                    "router" => (
                        "router as the runner sees it",
                        "check the runner's ROUTER_URL and the router's /livez",
                    ),
                    _ => ("runner scheduler", "check the runner's logs"),
                };
                let mut detail = s["status"].as_str().unwrap_or("?").to_string();
                if let Some(err) = s["error"].as_str() {
                    detail.push_str(&format!(": {err}"));
                }
                // Reads can work while writes fail (a full disk): the runner holds
                // what it cannot store and says since when.
                let w = &s["writes_failing"];
                if let (Some(since), Some(err)) = (w["since"].as_str(), w["error"].as_str()) {
                    detail.push_str(&format!("; writes failing since {since}: {err}"));
                }
                checks.push(check(
                    label,
                    if healthy { Verdict::Ok } else { Verdict::Fail },
                    detail,
                    (!healthy).then_some(next),
                ));
                if name == "router" {
                    let breaker = s["breaker"].as_str().unwrap_or("closed");
                    let v = match breaker {
                        "closed" => Verdict::Ok,
                        "half_open" => Verdict::Warn,
                        _ => Verdict::Fail,
                    };
                    checks.push(check("runner → router circuit breaker", v, breaker, (v != Verdict::Ok).then_some("the runner saw repeated router failures; executions wait until it recovers")));
                }
            }
        }
        Err(e) => checks.push(check(
            "runner health",
            Verdict::Fail,
            e.to_string(),
            Some("check the runner's logs"),
        )),
    }
    match client.get_any("/readyz").await {
        Ok((200, _)) => checks.push(check(
            "runner ready",
            Verdict::Ok,
            "database and router reachable",
            None,
        )),
        Ok((s, _)) => checks.push(check(
            "runner ready",
            Verdict::Fail,
            format!("/readyz answered HTTP {s}"),
            Some("see the failing services above"),
        )),
        Err(e) => checks.push(check("runner ready", Verdict::Fail, e.to_string(), None)),
    }
}

/// The router's provider list: from `--router`, else the runner's diagnostics.
async fn provider_list(
    client: &Client,
    router: Option<&str>,
    token: Option<&str>,
    checks: &mut Vec<Check>,
) -> Option<Vec<Value>> {
    if let Some(url) = router {
        let r = Client::new(url);
        match r.get("/providers").await {
            Ok(v) => {
                if let Ok(h) = r.get("/health").await {
                    let status = h["status"].as_str().unwrap_or("?");
                    let v = match status {
                        "healthy" => Verdict::Ok,
                        "degraded" => Verdict::Warn,
                        _ => Verdict::Fail,
                    };
                    let regions = h["regions"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default();
                    checks.push(check(
                        "router health",
                        v,
                        format!("{status}; regions with a healthy provider: [{regions}]"),
                        (v != Verdict::Ok).then_some("see the provider checks below"),
                    ));
                }
                return v["providers"].as_array().cloned();
            }
            Err(e) => {
                checks.push(check(
                    "router reachable",
                    Verdict::Fail,
                    e.to_string(),
                    Some("check --router / BEACON_ROUTER_URL and the router's /livez"),
                ));
                return None;
            }
        }
    }
    // The runner knows its router: its public view needs no URL and no token.
    match client.get("/api/v1/router/providers").await {
        Ok(v) => {
            if let Some(list) = v["providers"].as_array() {
                return Some(list.clone());
            }
        }
        Err(e) => checks.push(check(
            "router's providers via the runner",
            Verdict::Warn,
            e.to_string(),
            Some("the runner could not ask its router (see above), or is older than this CLI"),
        )),
    }
    if let Some(t) = token {
        match client.get_with_token("/api/v1/diagnostics", t).await {
            Ok(d) => return d["router_providers"].as_array().cloned(),
            Err(e) => checks.push(check(
                "runner diagnostics",
                Verdict::Warn,
                e.to_string(),
                Some("check --token / RUNNER_ADMIN_TOKEN"),
            )),
        }
    }
    checks.push(check(
        "providers",
        Verdict::Warn,
        "not checked",
        Some("pass --router URL (or --token for the runner's diagnostics) to check each provider"),
    ));
    None
}

fn provider_checks(list: &[Value], checks: &mut Vec<Check>) {
    // Per region: whether any provider is routable, and what each one says.
    let mut regions: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    for p in list {
        let name = p["name"].as_str().unwrap_or("?");
        let region = p["region"].as_str().unwrap_or("?");
        let state = p["state"].as_str().unwrap_or("?");
        let usable = matches!(state, "healthy" | "unknown");
        let age = p["probe_age_seconds"]
            .as_f64()
            .map_or("never probed".to_string(), |a| {
                format!("evidence {a:.0} s old")
            });
        let last = &p["last_failure"];
        let last_text = if last.is_object() {
            let message = last["message"].as_str().unwrap_or("");
            // The router's messages usually say the status already.
            let status = last["http_status"]
                .as_u64()
                .map(|s| format!(" HTTP {s}"))
                .filter(|s| !message.contains(s.trim()))
                .unwrap_or_default();
            format!(
                "; last failure: {}{status}: {}",
                last["code"].as_str().unwrap_or("?"),
                message
            )
        } else {
            String::new()
        };
        let entry = regions.entry(region.to_string()).or_default();
        entry.0 |= usable;
        entry.1.push(format!("{name} {state}{last_text}"));
        let label = format!("provider {name} ({region})");
        let (verdict, detail, next) = match state {
            "healthy" if p["stale"] == true => (
                Verdict::Warn,
                format!("healthy but stale ({age})"),
                Some("no probe or traffic lately: check probe_interval and the router's logs"),
            ),
            "healthy" => (Verdict::Ok, format!("healthy, {age}{last_text}"), None),
            "unknown" => (
                Verdict::Warn,
                format!(
                    "unknown: {}",
                    p["reason"].as_str().unwrap_or("no evidence yet")
                ),
                Some(
                    "wait for the first probe, or probe it now: POST /admin/providers/{name}/probe",
                ),
            ),
            "draining" => (
                Verdict::Warn,
                "draining (taken out of rotation)".to_string(),
                Some("POST /admin/providers/{name}/enable to put it back"),
            ),
            _ => (
                Verdict::Fail,
                format!(
                    "{state}: {}{}",
                    p["reason"].as_str().unwrap_or(""),
                    if p["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("last failure"))
                    {
                        String::new()
                    } else {
                        last_text
                    }
                ),
                Some(next_for(last)),
            ),
        };
        checks.push(check(label, verdict, detail, next));
    }
    for (region, (usable, said)) in regions {
        if !usable {
            checks.push(check(
                format!("region {region}"),
                Verdict::Fail,
                format!(
                    "no routable provider: every execution there will fail ({})",
                    said.join(", ")
                ),
                Some("fix the failing provider above"),
            ));
        }
    }
}

fn next_for(last: &Value) -> &'static str {
    match last["http_status"].as_u64() {
        Some(404) => {
            "the inference URL is wrong or the app is stopped: fix the URL or redeploy; the router re-tests it when the ejection ends"
        }
        Some(401 | 403) => "the provider rejects the router's credentials: check auth_header_env",
        Some(s) if s >= 500 => "the provider is crashing: check its logs",
        _ => "check the provider; the router re-tests it when the ejection ends",
    }
}

/// How many of the newest executions the per-region check reads.
const RECENT: u32 = 200;

/// One region's newest executions: completed, failed, and the failures by code with
/// one example each.
type RegionTally = (u32, u32, BTreeMap<String, (u32, String)>);

/// Per region, over the newest executions: a region where every finished one failed
/// is broken whatever the providers say (a wrong model name, a proxy in the way).
async fn region_checks(client: &Client, checks: &mut Vec<Check>) {
    let Ok(page) = client
        .get(&format!("/api/v1/executions?limit={RECENT}"))
        .await
    else {
        return;
    };
    let mut regions: BTreeMap<String, RegionTally> = BTreeMap::new();
    for e in page["executions"].as_array().into_iter().flatten() {
        let region = e["region"].as_str().unwrap_or("?").to_string();
        let r = regions.entry(region).or_default();
        match e["status"].as_str().unwrap_or("") {
            "completed" => r.0 += 1,
            "failed" | "timeout" => {
                r.1 += 1;
                let code = e["failure"]["code"].as_str().unwrap_or("UNKNOWN");
                let example = format!(
                    "execution {} ({}): {}",
                    e["id"].as_str().unwrap_or("?"),
                    e["model_id"].as_str().unwrap_or("?"),
                    e["failure"]["message"].as_str().unwrap_or("")
                );
                r.2.entry(code.to_string()).or_insert((0, example)).0 += 1;
            }
            // Still running, or cancelled: no verdict on the region.
            _ => {}
        }
    }
    for (region, (completed, failed, codes)) in regions {
        let label = format!("region {region} recent executions");
        if failed > 0 && completed == 0 {
            let by_code: Vec<String> = codes
                .iter()
                .map(|(code, (n, _))| format!("{code} ({n})"))
                .collect();
            let example = codes
                .values()
                .next()
                .map(|(_, e)| format!(", e.g. {e}"))
                .unwrap_or_default();
            checks.push(check(
                label,
                Verdict::Fail,
                format!(
                    "all {failed} finished executions in {region} failed: {}{example}",
                    by_code.join(", ")
                ),
                Some("see the provider checks above and docs/operations.md for the code"),
            ));
        } else if completed > 0 {
            checks.push(check(
                label,
                Verdict::Ok,
                format!("{completed} completed, {failed} failed"),
                None,
            ));
        }
    }
}

async fn failure_checks(client: &Client, checks: &mut Vec<Check>) {
    let mut by_code: BTreeMap<String, (u32, String)> = BTreeMap::new();
    for status in ["failed", "timeout"] {
        let Ok(page) = client
            .get(&format!("/api/v1/executions?status={status}&limit=200"))
            .await
        else {
            return;
        };
        for e in page["executions"].as_array().into_iter().flatten() {
            let code = e["failure"]["code"]
                .as_str()
                .unwrap_or("UNKNOWN")
                .to_string();
            let example = format!(
                "execution {} ({} {}): {}",
                e["id"].as_str().unwrap_or("?"),
                e["region"].as_str().unwrap_or("?"),
                e["model_id"].as_str().unwrap_or("?"),
                e["failure"]["message"].as_str().unwrap_or("")
            );
            by_code.entry(code).or_insert((0, example)).0 += 1;
        }
    }
    if by_code.is_empty() {
        checks.push(check("recent failed executions", Verdict::Ok, "none", None));
        return;
    }
    for (code, (n, example)) in by_code {
        checks.push(check(
            format!("recent failures: {code}"),
            Verdict::Warn,
            format!("{n} executions, e.g. {example}"),
            Some("see docs/operations.md for this code"),
        ));
    }
}
