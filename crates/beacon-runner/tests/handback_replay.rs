//! A call whose answer the provider served but the runner never received is not bought
//! again when the execution is resumed. Runner A reaches the router through a relay
//! that forwards its requests and swallows every response: the providers answer, the
//! router keeps each answer under the attempt's `Idempotency-Key`, and runner A waits.
//! Runner A shuts down (the SIGTERM path: work handed back to `pending`); runner B
//! resumes the job and re-sends the interrupted attempts' keys, so the router replays
//! the kept answers and each cell is served once at the providers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use beacon_sim::Outcome;
use common::*;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A TCP relay to `target` that forwards what clients send and discards what `target`
/// answers: requests arrive, responses never do. Dropped, it closes every connection.
struct BlackHole {
    url: String,
    _tasks: JoinSet<()>,
}

impl BlackHole {
    async fn start(target: SocketAddr) -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                conns.spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_rx, _client_tx) = client.into_split();
                    let (mut server_rx, mut server_tx) = server.into_split();
                    let mut nowhere = tokio::io::sink();
                    let _ = tokio::join!(
                        tokio::io::copy(&mut client_rx, &mut server_tx),
                        tokio::io::copy(&mut server_rx, &mut nowhere),
                    );
                });
            }
        });
        BlackHole { url, _tasks: tasks }
    }
}

fn router_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

backend_test!(
    an_answer_lost_on_the_way_back_is_replayed_not_bought_again,
    |backend| async move {
        // The stack's own runner only takes submissions.
        let Some(stack) = Stack::start(
            backend,
            Opts {
                scheduler: "enabled = false".into(),
                ..Opts::default()
            },
        )
        .await
        else {
            return;
        };
        let hole = BlackHole::start(router_addr(&stack.router.url)).await;
        let a = beacon_runner::start(runner_config(&stack.db.url, &hole.url, "")).await;
        let a = a.unwrap();
        let spec = stack.spec(
            "job-replay",
            &["math_basic", "geography_basic"],
            &["llama3.2-1b"],
            &["US", "EU"],
            json!({}),
        );
        assert_eq!(stack.submit(&spec).await.0, 202);
        // Every cell's answer was served (and paid for); runner A has none of them.
        let served = eventually(Duration::from_secs(30), "four answers served", || {
            let calls = stack.all_live_calls();
            let done = calls.len() == 4 && calls.iter().all(|c| c.outcome == Outcome::Ok);
            async move { done.then_some(calls) }
        })
        .await;
        let job = stack.job("job-replay").await;
        assert!(
            executions(&job).iter().all(|e| e["status"] == "running"),
            "runner A is still waiting for its answers: {job}"
        );

        // Shutdown hands the work back; runner B takes the job over.
        a.shutdown().await;
        drop(hole);
        let job = stack.job("job-replay").await;
        assert!(
            executions(&job).iter().all(|e| e["status"] == "pending"),
            "handed back: {job}"
        );
        let b = stack.second_runner("").await;
        let job = stack
            .wait_terminal("job-replay", Duration::from_secs(30))
            .await;
        assert_eq!(job["status"], "completed", "{job}");

        // Nothing was bought twice: the providers served each cell once.
        let calls = stack.all_live_calls();
        assert_eq!(calls.len(), 4, "provider calls: {calls:?}");
        for e in executions(&job) {
            assert_eq!(e["status"], "completed", "{e}");
            let id = e["id"].as_str().unwrap();
            let (status, details) = stack.get(&format!("/api/v1/executions/{id}/details")).await;
            assert_eq!(status, 200, "{details}");
            let history: Vec<(Value, Value, Value)> = details["attempt_history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["attempt"].clone(),
                        a["outcome"].clone(),
                        a["call_key"].clone(),
                    )
                })
                .collect();
            let key = json!(format!("{id}:1"));
            assert_eq!(
                history,
                [
                    (json!(1), json!("interrupted"), key.clone()),
                    (json!(2), json!("success"), key),
                ],
                "attempt 2 re-sent attempt 1's key"
            );
            // The stored answer is the one the provider served the first time.
            let sha = details["output_data"]["hash"].as_str().map(str::to_string);
            assert!(
                served.iter().any(|c| c.response_sha256 == sha),
                "stored answer {sha:?} is one served: {details}"
            );
        }
        b.shutdown().await;
        stack.shutdown().await;
    }
);
