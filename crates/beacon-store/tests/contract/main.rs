//! The store's contract suite: every test body runs against SQLite and PostgreSQL
//! (`contract_test!` makes `<name>::sqlite` and `<name>::postgres`). PostgreSQL comes
//! from `BEACON_TEST_POSTGRES_URL`; see `beacon_store::testing`.
// Test helpers outside #[test] functions panic on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attempts;
mod cancel;
mod durability;
mod fixtures;
mod groups;
mod insert;
mod judge;
mod listing;
mod perf;
mod retry;
mod scheduling;
mod transparency;
