//! `/v1/access-requests`: just-in-time access for an agent.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/access-requests`: exactly one of `role` and `action`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequestCreate {
    /// The agent that would hold the access.
    pub agent_id: Uuid,
    /// A role of the tenant …
    #[serde(default)]
    pub role: Option<String>,
    /// … or a single action of the active policy schema.
    #[serde(default)]
    pub action: Option<String>,
    /// Why the agent needs it (1 to 1,000 characters).
    pub justification: String,
    /// For how long once approved: `30m`, `8h`, `7d` (1 minute to 30 days).
    pub duration: String,
}

/// `POST /v1/access-requests/{id}/approve`, `…/deny`, `…/withdraw`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRequestDecision {
    /// Why (at most 1,000 characters).
    #[serde(default)]
    pub comment: Option<String>,
}

/// An access request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessRequestView {
    /// Its id.
    pub id: Uuid,
    /// The agent.
    pub agent_id: Uuid,
    /// The role asked for, if a role.
    pub role: Option<String>,
    /// The action asked for, if an action.
    pub action: Option<String>,
    /// Why.
    pub justification: String,
    /// For how long, in seconds, once approved.
    pub duration_secs: i64,
    /// Who asked.
    pub requested_by: String,
    /// `pending`, `approved`, `denied` or `withdrawn` as stored.
    pub status: String,
    /// As people read it: also `lapsed` (pending past its wait) and
    /// `expired` (approved, its grant ended).
    pub state: String,
    /// RFC 3339.
    pub created_at: String,
    /// When a pending request lapses, RFC 3339.
    pub expires_at: String,
    /// Who decided or withdrew it.
    pub decided_by: Option<String>,
    /// When, RFC 3339.
    pub decided_at: Option<String>,
    /// The decider's comment.
    pub comment: Option<String>,
    /// The grant an approval made.
    pub grant_id: Option<Uuid>,
    /// When that grant ends, RFC 3339.
    pub grant_expires_at: Option<String>,
}
