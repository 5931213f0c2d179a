//! `/v1/agents/{id}/graph`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A communication edge between two agents.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeView {
    /// Who calls.
    pub caller: Uuid,
    /// Who is called.
    pub callee: Uuid,
    /// For what.
    pub action: String,
    /// Calls allowed.
    pub allowed: i64,
    /// Calls denied.
    pub denied: i64,
    /// RFC 3339.
    pub first_seen: String,
    /// RFC 3339.
    pub last_seen: String,
}

/// `GET /v1/agents/{id}/graph`: the agent's neighbourhood.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentGraph {
    /// The agent.
    pub agent_id: Uuid,
    /// Agents it calls.
    pub calls: Vec<EdgeView>,
    /// Agents that call it.
    pub called_by: Vec<EdgeView>,
}
