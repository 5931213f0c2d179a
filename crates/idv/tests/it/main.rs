//! Integration tests of the `idv` binary: the CLI against a real server, and
//! the crash test (SIGKILL mid-load, restart, nothing acknowledged is lost).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod cli;
mod crash;
mod db;
mod jobs;
mod nodes;
mod settings;
mod support;
