//! `/v1/rotation-policies`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::DurationValue;

/// `PUT /v1/rotation-policies/{scope}`: when credentials rotate by themselves.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationPolicyPut {
    /// Rotate each credential this long after it was made (e.g. `30d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<DurationValue>,
    /// No credential works longer than this, overlap included (e.g. `90d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<DurationValue>,
    /// Overlap of each rotation (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<DurationValue>,
    /// `overlap_end` (default) or `first_use`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire: Option<String>,
}

/// What a rotation policy applies to.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RotationScopeView {
    /// `tenant`, `class` or `agent`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The class name or agent id (absent for the tenant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A rotation policy.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RotationPolicyView {
    /// What it applies to (the most specific policy wins: agent, class, tenant).
    pub scope: RotationScopeView,
    /// Seconds after which each credential is rotated.
    pub every_secs: Option<u64>,
    /// Seconds after which no credential works.
    pub max_age_secs: Option<u64>,
    /// Overlap of each rotation, in seconds.
    pub overlap_secs: u64,
    /// `overlap_end` or `first_use`.
    pub retire: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Who set it.
    pub updated_by: String,
    /// After a change: how many live credentials it now schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_scheduled: Option<usize>,
}
