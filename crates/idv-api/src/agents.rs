//! `/v1/agents`: the registry and lifecycle transitions.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::DurationValue;
use crate::common::double_option;

/// Who created an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentRef {
    /// `agent` or `human`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Agent id, or the human's identifier at the IdP.
    pub id: String,
}

/// `POST /v1/agents`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCreate {
    /// Unique in the tenant; letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// The accountable human or team.
    pub owner: String,
    /// Why the agent exists.
    pub purpose: String,
    /// `dev`, `test` or `prod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The team that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Key/value labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Declared capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The class (template) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// Agents it depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Uuid>,
    /// OAuth scopes it may request (RFC 6749 §3.3 scope tokens).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allowed_scopes: BTreeSet<String>,
    /// Audiences it may request tokens for (RFC 8707 `resource` URIs).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allowed_resources: BTreeSet<String>,
    /// RFC 9396 `authorization_details` types it may request.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub authorization_details_types: BTreeSet<String>,
    /// For ephemeral agents: retire automatically after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<DurationValue>,
}

/// `POST /v1/agents/bulk`: all or nothing.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentBulkCreate {
    /// Up to 50,000 agents.
    pub agents: Vec<AgentCreate>,
}

/// `POST /v1/agents/reassign-owner`: every live agent of one owner moves to
/// another (a person left or changed role).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerReassign {
    /// The current owner, exactly as recorded on the agents.
    pub from: String,
    /// The new owner.
    pub to: String,
}

/// What a reassignment moved.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OwnerReassigned {
    /// The old owner.
    pub from: String,
    /// The new owner.
    pub to: String,
    /// How many agents moved (retired agents keep their owner).
    pub reassigned: usize,
    /// The agents moved, in id order.
    pub agents: Vec<Uuid>,
}

/// One agent created in bulk.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentCreatedRef {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its SPIFFE-style URI.
    pub spiffe_id: String,
}

/// The answer to `POST /v1/agents/bulk`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentBulkCreated {
    /// How many were created (all of them).
    pub created: usize,
    /// Their ids, in request order.
    pub agents: Vec<AgentCreatedRef>,
}

/// An agent.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    /// Immutable UUIDv7.
    pub id: Uuid,
    /// `spiffe://<trust-domain>/t/<tenant>/agent/<id>`.
    pub spiffe_id: String,
    /// Tenant name.
    pub tenant: String,
    /// Unique in the tenant.
    pub name: String,
    /// The accountable human or team.
    pub owner: String,
    /// Why it exists.
    pub purpose: String,
    /// `dev`, `test` or `prod`.
    pub environment: Option<String>,
    /// The team that runs it.
    pub team: Option<String>,
    /// Key/value labels.
    pub labels: BTreeMap<String, String>,
    /// Declared capabilities.
    pub capabilities: Vec<String>,
    /// Class (template).
    pub class: Option<String>,
    /// Who created it.
    pub parent: Option<ParentRef>,
    /// Agents it depends on.
    pub depends_on: Vec<Uuid>,
    /// OAuth scopes it may request.
    pub allowed_scopes: BTreeSet<String>,
    /// Audiences (RFC 8707 resources) it may request tokens for.
    pub allowed_resources: BTreeSet<String>,
    /// RFC 9396 `authorization_details` types it may request.
    pub authorization_details_types: BTreeSet<String>,
    /// `provisioning`, `active`, `suspended` or `retired`.
    pub status: String,
    /// Reason for the last status change.
    pub status_reason: Option<String>,
    /// RFC 3339.
    pub status_changed_at: String,
    /// Who changed the status last.
    pub status_changed_by: String,
    /// RFC 3339; for ephemeral agents, when they retire themselves.
    pub expires_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Who registered it.
    pub created_by: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Incremented on every change; also the `ETag`.
    pub version: i64,
}

/// `PATCH /v1/agents/{id}`: JSON merge patch (RFC 7396) of the metadata.
/// `null` clears `environment`, `team`, `class`, `labels`, `capabilities`,
/// `depends_on` or a grant list; `name`, `owner` and `purpose` cannot be removed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    /// New name.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// New owner.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    /// New purpose.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub purpose: Option<Option<String>>,
    /// New environment, or `null` to clear.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub environment: Option<Option<String>>,
    /// New team, or `null` to clear.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub team: Option<Option<String>>,
    /// Replacement labels, or `null` to remove them all.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub labels: Option<Option<BTreeMap<String, String>>>,
    /// Replacement capabilities, or `null` to remove them all.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub capabilities: Option<Option<Vec<String>>>,
    /// New class, or `null` to clear.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub class: Option<Option<String>>,
    /// Replacement dependencies, or `null` to remove them all.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub depends_on: Option<Option<Vec<Uuid>>>,
    /// Replacement allowed scopes, or `null` to remove them all.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_scopes: Option<Option<BTreeSet<String>>>,
    /// Replacement allowed resources, or `null` to remove them all.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_resources: Option<Option<BTreeSet<String>>>,
    /// Replacement `authorization_details` types, or `null` to remove them all.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub authorization_details_types: Option<Option<BTreeSet<String>>>,
}

/// `POST /v1/agents/{id}/{activate|suspend|resume|retire}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// Why; recorded on the agent (for lifecycle transitions) and in the
    /// audit log. Also the body of `POST /v1/agents/{id}/compromised` and
    /// `POST /v1/agents/{id}/rotate-credentials`.
    pub reason: String,
}
