//! `/v1/grants`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who a grant is to: `{"type": "agent"|"class"|"group", "id": "…"}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantSubjectRef {
    /// `agent`, `class` or `group`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Agent id, class or group name.
    pub id: String,
}

/// `POST /v1/grants`: exactly one of `role` and `action`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantCreate {
    /// Who receives it.
    pub subject: GrantSubjectRef,
    /// A role …
    #[serde(default)]
    pub role: Option<String>,
    /// … or a single action.
    #[serde(default)]
    pub action: Option<String>,
    /// A Cedar condition that must also hold (the body of `when { … }`).
    #[serde(default)]
    pub condition: Option<String>,
    /// When it lapses: RFC 3339, or a duration from now (`30m`, `7d`).
    #[serde(default)]
    pub expires: Option<String>,
}

/// A grant.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// Its id.
    pub id: Uuid,
    /// Who holds it.
    pub subject: GrantSubjectRef,
    /// The role, if it grants one.
    pub role: Option<String>,
    /// The action, if it grants one.
    pub action: Option<String>,
    /// Its condition.
    pub condition: Option<String>,
    /// RFC 3339.
    pub expires_at: Option<String>,
    /// Its expiry has passed: it gives nothing any more (kept for the
    /// record until deleted).
    #[serde(default)]
    pub expired: bool,
    /// RFC 3339.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
}
