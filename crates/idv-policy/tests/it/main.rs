//! The policy engine against published conformance data and its invariants.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod authzen_todo;
mod invariants;

use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::directory::DirectoryEntity;
use idv_policy::{Compiled, Engine, Inputs};

/// An engine over `compiled` and a directory, without roles or grants.
fn directory_engine(compiled: Compiled, directory: &[DirectoryEntity]) -> Engine {
    Engine::build(Inputs {
        compiled: Arc::new(compiled),
        version: 1,
        roles: &[],
        grants: &[],
        directory,
        now: Timestamp::from_micros(0),
    })
}
