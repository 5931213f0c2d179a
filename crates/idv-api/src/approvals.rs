//! `/v1/approvals`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An approval request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    /// Its id.
    pub id: Uuid,
    /// `pending`, `approved`, `rejected` or `used`.
    pub status: String,
    /// Who must decide (the agent's owner).
    pub assignee: String,
    /// The acting agent, if the subject was one.
    pub agent_id: Option<Uuid>,
    /// The subject as asked.
    #[schema(value_type = Object)]
    pub subject: serde_json::Value,
    /// The action.
    pub action: String,
    /// The resource.
    #[schema(value_type = Object)]
    pub resource: serde_json::Value,
    /// The request's context.
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    /// Why approval is needed.
    pub reasons: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339: until when it is pending, or (approved) usable.
    pub expires_at: String,
    /// RFC 3339.
    pub decided_at: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// The approver's comment.
    pub comment: Option<String>,
    /// Who may approve: `any`, `owner` or `group:<name>` (each must hold).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How many distinct people must approve.
    #[serde(default)]
    pub required: u8,
    /// Who approved so far.
    #[serde(default)]
    pub approved_by: Vec<String>,
}

/// `POST /v1/approvals/{id}/approve|reject`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    /// Why.
    #[serde(default)]
    pub comment: Option<String>,
}
