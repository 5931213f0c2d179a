//! What can go wrong in the store.

use idv_core::agent::AgentError;
use idv_core::lifecycle::InvalidTransition;

/// A store failure. Domain refusals carry enough to answer the client; the
/// database's own errors are kept for the log and never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such record in this tenant.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// The kind of record.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// A uniqueness rule would break.
    #[error("{0}")]
    Conflict(String),
    /// A one-time id (a client assertion's or a DPoP proof's `jti`) was
    /// already used; carries the key that was replayed.
    #[error("the one-time id `{0}` was already used")]
    Replayed(String),
    /// `If-Match` named an old version.
    #[error("the agent has changed (current version {current}); fetch it again")]
    PreconditionFailed {
        /// The current version (ETag).
        current: i64,
    },
    /// The lifecycle forbids this change.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// The data breaks a domain rule found while writing (e.g. an unknown
    /// `depends_on` agent).
    #[error(transparent)]
    Invalid(#[from] AgentError),
    /// Misconfiguration (bad URL, wrong master key).
    #[error("{0}")]
    Config(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (corruption or a bug).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl StoreError {
    /// Whether this is a refusal by a domain rule (audited as a failed
    /// attempt), rather than a fault.
    pub fn is_domain(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound { .. }
                | StoreError::Conflict(_)
                | StoreError::Replayed(_)
                | StoreError::PreconditionFailed { .. }
                | StoreError::Transition(_)
                | StoreError::Invalid(_)
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}
