//! The Cedar policy adapter: IdentityVault's schema, policy versions
//! ([`compile`]), and the per-tenant decision [`engine`] that turns roles,
//! grants and directory entities into Cedar entity membership and policy
//! slices. Pure: no I/O, no HTTP, no SQL.

pub mod compile;
pub mod engine;
pub mod shape;
pub mod value;

pub use compile::{BASE_SCHEMA, Compiled, Problem, compile, compile_stored};
pub use engine::{Decision, Engine, Inputs, Outcome, Party, Permitted, Query, QueryError, Target, TokenFacts};
