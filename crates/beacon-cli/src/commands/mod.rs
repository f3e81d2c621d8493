//! One module per group of subcommands. Each returns the process exit code.

pub mod demo;
pub mod doctor;
pub mod jobs;
pub mod keys;
pub mod report;
pub mod transparency;
pub mod verify;
