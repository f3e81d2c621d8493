//! beacon-sim: a real HTTP server standing in for paid GPU inference endpoints (Modal web
//! endpoints and OpenAI-compatible servers) that can misbehave on purpose, reproducibly.
//!
//! Start one in process with [`Simulator::start`]; the binary is a thin wrapper. The
//! behaviour (routes, faults, outcomes, determinism, scenarios, redirects) is documented
//! in `docs/simulator.md`.

pub mod answer;
pub mod cli;
mod cold;
pub mod config;
pub mod draw;
pub mod duration;
mod engine;
pub mod faults;
mod gate;
mod http;
mod modal;
mod openai;
mod padded;
pub mod plan;
mod reply;
pub mod scenario;
mod server;
pub mod stats;
mod waiting;

pub use config::{DEFAULT_MODELS, ProviderKind, SimConfig};
pub use faults::{FaultError, FaultPatch, Faults};
pub use plan::FaultKind;
pub use scenario::{Behaviour, Scenario, ScenarioError};
pub use server::{SimHandle, Simulator};
pub use stats::{CallRecord, Outcome, Phase, Route, SimStats};
