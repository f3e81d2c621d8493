//! CPU time per role over one measurement: the runner, the router, the simulators,
//! this benchmark, and the PostgreSQL server processes serving the runner's database;
//! whatever the machine spent beyond them is *other processes* (another engineer's
//! build, say), reported as a share of all cores like router-overhead does.

use std::collections::HashMap;
use std::time::Instant;

use crate::procs::{cpu_ms, machine_busy_ms};

/// Who a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Runner,
    Router,
    Sims,
    Bench,
    Postgres,
}

/// CPU used so far by each watched process and by the machine.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    machine_ms: f64,
    procs: HashMap<u32, (Role, f64)>,
}

impl CpuSnapshot {
    /// Reads `/proc` for every `(role, pid)`; unreadable processes count 0.
    pub fn take(pids: &[(Role, u32)]) -> CpuSnapshot {
        CpuSnapshot {
            at: Instant::now(),
            machine_ms: machine_busy_ms().unwrap_or(0.0),
            procs: pids
                .iter()
                .map(|&(role, pid)| (pid, (role, cpu_ms(pid).unwrap_or(0.0))))
                .collect(),
        }
    }
}

/// CPU each role spent between two snapshots, in ms, and the wall time between them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSpent {
    pub runner_ms: f64,
    pub router_ms: f64,
    pub sims_ms: f64,
    pub bench_ms: f64,
    pub postgres_ms: f64,
    pub machine_ms: f64,
    pub wall_ms: f64,
    pub cores: usize,
}

impl CpuSpent {
    /// A process only in `after` started in between: all its time counts. One only in
    /// `before` has exited: its last part is lost (a PostgreSQL connection the pool
    /// closed, in practice none).
    pub fn between(before: &CpuSnapshot, after: &CpuSnapshot) -> CpuSpent {
        let mut spent = CpuSpent {
            machine_ms: (after.machine_ms - before.machine_ms).max(0.0),
            wall_ms: after.at.duration_since(before.at).as_secs_f64() * 1000.0,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            ..CpuSpent::default()
        };
        for (pid, &(role, now)) in &after.procs {
            let was = before.procs.get(pid).map_or(0.0, |&(_, ms)| ms);
            let ms = (now - was).max(0.0);
            match role {
                Role::Runner => spent.runner_ms += ms,
                Role::Router => spent.router_ms += ms,
                Role::Sims => spent.sims_ms += ms,
                Role::Bench => spent.bench_ms += ms,
                Role::Postgres => spent.postgres_ms += ms,
            }
        }
        spent
    }

    fn ours_ms(&self) -> f64 {
        self.runner_ms + self.router_ms + self.sims_ms + self.bench_ms + self.postgres_ms
    }

    /// Share of all cores used by other processes (never negative).
    pub fn background_share(&self) -> f64 {
        let capacity = self.wall_ms * self.cores as f64;
        if capacity <= 0.0 {
            return 0.0;
        }
        ((self.machine_ms - self.ours_ms()).max(0.0) / capacity).min(1.0)
    }

    /// Share of all cores the system under test and the benchmark used.
    pub fn ours_share(&self) -> f64 {
        let capacity = self.wall_ms * self.cores as f64;
        if capacity <= 0.0 {
            return 0.0;
        }
        self.ours_ms() / capacity
    }

    /// Microseconds per execution of (runner, router, sims, postgres).
    pub fn per_execution_us(&self, executions: u64) -> (f64, f64, f64, f64) {
        if executions == 0 {
            return (0.0, 0.0, 0.0, 0.0);
        }
        let us = |ms: f64| ms * 1000.0 / executions as f64;
        (
            us(self.runner_ms),
            us(self.router_ms),
            us(self.sims_ms),
            us(self.postgres_ms),
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "runner_ms": self.runner_ms, "router_ms": self.router_ms, "sims_ms": self.sims_ms,
            "bench_ms": self.bench_ms, "postgres_ms": self.postgres_ms,
            "machine_ms": self.machine_ms, "wall_ms": self.wall_ms, "cores": self.cores,
            "background_share": self.background_share(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cpu_by_role_and_counts_new_processes_whole() {
        let t0 = Instant::now();
        let before = CpuSnapshot {
            at: t0,
            machine_ms: 1000.0,
            procs: HashMap::from([(1, (Role::Runner, 100.0)), (2, (Role::Postgres, 50.0))]),
        };
        let after = CpuSnapshot {
            at: t0 + std::time::Duration::from_secs(1),
            machine_ms: 1800.0,
            procs: HashMap::from([
                (1, (Role::Runner, 400.0)),
                (2, (Role::Postgres, 150.0)),
                (3, (Role::Postgres, 100.0)), // a connection opened in between
            ]),
        };
        let mut s = CpuSpent::between(&before, &after);
        s.cores = 2;
        assert_eq!((s.runner_ms, s.postgres_ms), (300.0, 200.0));
        // 800 ms busy, 500 ours, over 2 cores x 1 s: 300 / 2000.
        assert!((s.background_share() - 0.15).abs() < 1e-9);
        assert_eq!(s.per_execution_us(100).0, 3000.0);
    }
}
