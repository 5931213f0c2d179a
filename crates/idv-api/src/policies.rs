//! `/v1/policies`: Cedar policy versions, validation and tests.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{EvaluationRequest, PolicyProblem};

/// `POST /v1/policies` (and `/v1/policies/validate`): a new version.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpload {
    /// Cedar policies; `@id("…")` names each (else `policy0`, `policy1`, …).
    pub policies: String,
    /// The tenant's schema fragment (Cedar schema syntax): its resource
    /// types and actions, added to IdentityVault's base schema.
    #[serde(default)]
    pub schema: Option<String>,
    /// Why this version exists.
    #[serde(default)]
    pub description: Option<String>,
    /// Activate it in the same step.
    #[serde(default)]
    pub activate: bool,
}

/// A policy version.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersionView {
    /// 1, 2, … per tenant.
    pub version: i64,
    /// Whether decisions use it now.
    pub active: bool,
    /// The ids of its policies.
    pub policy_ids: Vec<String>,
    /// Why it exists.
    pub description: String,
    /// RFC 3339.
    pub created_at: String,
    /// Who uploaded it.
    pub created_by: String,
    /// RFC 3339, when it was last made active.
    pub activated_at: Option<String>,
    /// The Cedar text (only when one version is fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<String>,
    /// The schema fragment (only when one version is fetched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// When this answer made it active: roles and grants it leaves without
    /// effect (e.g. naming an action its schema no longer declares).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `GET /v1/policies`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersions {
    /// The active version, if any (none: the base schema alone, and every
    /// decision is a deny unless roles grant it).
    pub active: Option<i64>,
    /// Every version, newest first.
    pub items: Vec<PolicyVersionView>,
}

/// `POST /v1/policies/validate`: the outcome.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyValidation {
    /// Whether it compiles.
    pub valid: bool,
    /// The policy ids it would hold.
    pub policy_ids: Vec<String>,
    /// Why not, each with its position.
    pub errors: Vec<PolicyProblem>,
}

/// `POST /v1/policies/test`: requests to run against a candidate and the
/// active version.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyTest {
    /// A stored version to try …
    #[serde(default)]
    pub version: Option<i64>,
    /// … or policy text (with `schema`) not yet uploaded.
    #[serde(default)]
    pub policies: Option<String>,
    /// The schema fragment for `policies`.
    #[serde(default)]
    pub schema: Option<String>,
    /// AuthZEN evaluation requests.
    pub requests: Vec<EvaluationRequest>,
}

/// One request of a [`PolicyTest`].
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyTestResult {
    /// Its position in the request.
    pub index: usize,
    /// Under the active version: `allow`, `deny` or `requires_approval`.
    pub active: String,
    /// Under the candidate.
    pub candidate: String,
    /// Whether they differ.
    pub changed: bool,
    /// The candidate's determining policies.
    pub candidate_policies: Vec<String>,
}

/// `POST /v1/policies/test`: the outcome.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyTestReport {
    /// The active version (none: base schema only).
    pub active_version: Option<i64>,
    /// How many decisions would change.
    pub changed: usize,
    /// Every request's outcome.
    pub results: Vec<PolicyTestResult>,
}
