//! beacon-drills: the harness for process-level drills (and the child-process and
//! runner-API plumbing `beacon-bench` shares). A drill starts the real `beacon-runner`
//! and `beacon-router` binaries as child processes, simulators in process, on
//! PostgreSQL (a per-test database on the shared server, or a [`PrivateCluster`] it can
//! stop and crash), kills or stops what it means to, and compares the runner's record
//! with the simulators' call logs. The drills themselves are this crate's integration
//! tests; `docs/drills.md` says what each proves and how to run it.

pub mod api;
pub mod audit;
pub mod bins;
pub mod cluster;
pub mod config;
pub mod db;
pub mod figures;
pub mod fleet;
pub mod hostile;
pub mod ledger;
pub mod procs;
pub mod spec;
pub mod usage;

pub use api::{Health, JobState, Progress, RouterApi, RunnerApi};
pub use bins::{Binaries, binaries};
pub use cluster::PrivateCluster;
pub use config::{PROBE_PROMPT, RouterSettings, RunnerSettings};
pub use db::DbProbe;
pub use figures::print_figures;
pub use fleet::{Fleet, RegionCall, RunnerChild, Sims};
pub use hostile::{Lie, LyingRouter};
pub use ledger::Ledger;
pub use spec::Shape;
