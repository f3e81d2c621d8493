//! What one finished job cost and kept, read the same way by every drill: its
//! executions as the runner shows them, and the simulators' calls for its prompts once
//! the providers have gone quiet, with the figures the drills assert on (provider
//! calls, cells answered more than once, calls open at a moment).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::{JobState, RunnerApi};
use crate::audit::{
    ExecView, answers_per_cell, calls_by_cell, count_statuses, duplicate_cells, read_executions,
};
use crate::fleet::{Fleet, RegionCall, job_prompts};
use crate::spec::Shape;

/// How long the providers may take to finish their last calls before the count.
const QUIET: Duration = Duration::from_secs(15);

pub struct Ledger {
    /// Every execution of the job.
    pub execs: Vec<ExecView>,
    /// The simulators' calls for this job's prompts (probes and other jobs left out).
    pub calls: Vec<RegionCall>,
    /// How many calls the providers were paid for, failures included.
    pub provider_calls: usize,
    /// Cells whose answer was served (and paid for) more than once.
    pub answered_twice: usize,
}

impl Ledger {
    /// Waits until no provider call is open, then reads job `id` of `shape`.
    pub async fn read(
        fleet: &Fleet,
        api: &RunnerApi,
        id: &str,
        shape: &Shape,
    ) -> anyhow::Result<Ledger> {
        fleet.sims.wait_quiet(QUIET).await?;
        let execs = read_executions(&api.executions(id).await?)?;
        let prompts = job_prompts(id, shape);
        let calls: Vec<RegionCall> = fleet
            .sims
            .live_calls()
            .into_iter()
            .filter(|c| prompts.contains_key(&c.call.prompt_sha256))
            .collect();
        let provider_calls = calls_by_cell(&prompts, &calls).values().map(Vec::len).sum();
        let answered_twice = answers_per_cell(&prompts, &calls)
            .values()
            .filter(|n| **n > 1)
            .count();
        Ok(Ledger {
            execs,
            calls,
            provider_calls,
            answered_twice,
        })
    }

    /// Calls of the job the providers were serving at `t`.
    pub fn open_at(&self, t: DateTime<Utc>) -> usize {
        self.calls
            .iter()
            .filter(|c| c.call.started_at <= t && c.call.ended_at.is_none_or(|e| e >= t))
            .count()
    }

    /// Executions per status.
    pub fn statuses(&self) -> BTreeMap<String, usize> {
        count_statuses(&self.execs)
    }

    /// Whether every execution ended `completed`.
    pub fn all_completed(&self) -> bool {
        self.execs.iter().all(|e| e.status == "completed")
    }

    /// The drills' common verdict on a fault-free job: `total` executions, each cell
    /// once, every one `completed`. Panics (drills are tests) naming what is off.
    pub fn assert_all_completed(&self, total: u64) {
        assert_eq!(self.execs.len() as u64, total, "no execution lost or added");
        let twice = duplicate_cells(&self.execs);
        assert!(twice.is_empty(), "cells twice: {twice:?}");
        assert!(
            self.all_completed(),
            "every execution completed: {:?}",
            self.statuses()
        );
    }
}

impl Fleet {
    /// Signs and submits job `id` of `shape` (with `constraints`) through `api`, then
    /// waits until at least `done` of its executions have completed: the moment a
    /// drill breaks something mid-job.
    pub async fn submit_until(
        &self,
        api: &RunnerApi,
        id: &str,
        shape: &Shape,
        constraints: serde_json::Value,
        done: u64,
    ) -> anyhow::Result<JobState> {
        let spec = self.spec(id, shape, constraints)?;
        api.submit_json(&spec).await?;
        api.wait_for(id, Duration::from_secs(60), "enough done", |s| {
            s.progress.completed >= done
        })
        .await
    }
}
