//! beacon-runner: accepts signed job specs, stores every execution the moment a job is
//! accepted, runs them through the router with bounded concurrency, retries,
//! cancellation and leases, and serves results and receipts.

pub mod accept;
pub mod analysis;
pub mod api;
pub mod app;
pub mod classify;
pub mod config;
pub mod error;
pub mod events;
pub mod judge;
pub mod metrics;
pub mod plan;
pub mod portal;
pub mod receipts;
pub mod router;
pub mod scheduler;
pub mod transparency;
pub mod views;

pub use app::{Application, RunnerHandle, start};
pub use config::Config;
