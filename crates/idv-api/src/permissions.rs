//! `/v1/agents/{id}/permissions` and usage.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::GrantView;

/// What an agent may do, from the data: its roles and their actions.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentPermissions {
    /// The agent.
    pub agent_id: Uuid,
    /// Roles held directly, through its class or its groups.
    pub roles: BTreeSet<String>,
    /// The actions it may take outright: those its roles and
    /// single-permission grants give, and those of every unconditional
    /// permit that names it, its class, or a role or group it is in
    /// (`principal in Role::"auditor"`), or that is open to every agent.
    pub actions: BTreeSet<String>,
    /// Actions permitted only under a condition (a `when`/`unless` clause,
    /// a conditional grant) or after approval.
    #[serde(default)]
    pub conditional_actions: BTreeSet<String>,
    /// Each action above with the ids of the policies that permit it
    /// (generated ones included: `role:<name>`, `permission:<action>`,
    /// `grant:<id>`).
    #[serde(default)]
    pub policies: std::collections::BTreeMap<String, BTreeSet<String>>,
    /// Grants made to the agent itself (class and group grants are listed
    /// under `/v1/grants`).
    pub grants: Vec<GrantView>,
    /// What it has used (action, resource type, count, last use).
    pub usage: Vec<UsageView>,
}

/// One permission's use.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// The action.
    pub action: String,
    /// The resource type.
    pub resource_type: String,
    /// How often it was allowed.
    pub count: i64,
    /// RFC 3339.
    pub first_used: String,
    /// RFC 3339.
    pub last_used: String,
}
