//! Tests of the runner benchmarks' verdict and tables.

use super::*;
use crate::runner::db::Backend;
use crate::runner::measure::test_job as job;
use crate::runner::spec::Shape;

fn report(orchestration_ms: u64, sqlite_rate_ms: u64, pg_rate_ms: u64) -> RunnerReport {
    let shape = Shape::for_executions(900).unwrap_or_else(|e| panic!("{e}"));
    let throughput = |backend, ms| Throughput {
        backend,
        concurrency: 64,
        shape: shape.clone(),
        runner_ready_in: Duration::from_millis(30),
        run: job(ms, 900),
    };
    RunnerReport {
        orchestration: vec![Orchestration {
            backend: Backend::Postgres,
            concurrency: 90,
            latency: Duration::from_millis(200),
            shape: shape.clone(),
            runner_ready_in: Duration::from_millis(30),
            run: job(orchestration_ms, 900),
        }],
        throughput: vec![
            throughput(Backend::Sqlite, sqlite_rate_ms),
            throughput(Backend::Postgres, pg_rate_ms),
        ],
        big: Vec::new(),
    }
}

#[test]
fn each_backend_has_its_write_path_target() {
    // 900 executions: SQLite in 0.8 s is 1,125/s (>= 1,000), PostgreSQL in 0.4 s
    // 2,250/s (>= 2,000); orchestration at 1.025 x the ideal.
    let r = report(2_050, 800, 400);
    assert!(r.pass(), "{}", r.table());
    assert!(r.table().ends_with("result: PASS\n"), "{}", r.table());
    // SQLite at 900/s misses its target, PostgreSQL at 1,800/s its own.
    assert!(!report(2_050, 1_000, 400).pass());
    assert!(!report(2_050, 800, 500).pass());
    // Orchestration 1.075 x the ideal misses it.
    let r = report(2_150, 800, 400);
    assert!(!r.pass());
    assert!(r.table().contains("1.075"), "{}", r.table());
    assert_eq!(r.json()["orchestration"][0]["pass"], false);
}

#[test]
fn repeated_runs_are_judged_on_their_median() {
    let mut r = report(2_050, 800, 400);
    let slow = report(2_050, 800, 600).throughput[1].clone();
    let fast = report(2_050, 800, 420).throughput[1].clone();
    r.throughput.push(slow);
    r.throughput.push(fast);
    // PostgreSQL runs: 2,250, 1,500 and 2,143/s: median 2,143, PASS.
    assert!(r.pass(), "{}", r.table());
    let table = r.table();
    assert!(table.contains("median of the runs"), "{table}");
    assert!(table.contains("2250, 1500, 2143"), "{table}");
    let slower = report(2_050, 800, 700).throughput[1].clone();
    r.throughput.push(slower.clone());
    r.throughput.push(slower);
    assert!(!r.pass(), "{}", r.table());
    assert_eq!(r.json()["medians"][2]["pass"], false);
}

#[test]
fn a_job_that_did_not_complete_is_a_problem() {
    let mut r = report(2_050, 800, 400);
    r.orchestration[0].run.state.progress.completed = 899;
    assert!(!r.pass());
    assert!(r.table().contains("PROBLEM: job"), "{}", r.table());
}
