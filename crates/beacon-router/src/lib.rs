//! beacon-router: turns "answer this prompt with model M in region R" into a call to
//! one healthy provider of region R, and always knows, and shows, why each provider is
//! in the state it is in.

pub mod api;
pub mod app;
pub mod config;
pub mod error;
pub mod health;
pub mod idempotency;
pub mod metrics;
pub mod prober;
pub mod provider;
pub mod registry;
pub mod routing;
pub mod spans;

pub use app::{Application, RouterHandle, start};
pub use config::Config;
