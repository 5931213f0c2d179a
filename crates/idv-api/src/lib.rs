//! Wire types of the admin API, shared by the server and the CLI. No logic.
//!
//! Request types reject unknown fields, so a typo in a field name is a clear
//! 400 rather than a silently ignored setting.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub mod oauth;

pub use self::oauth::{OAuthErrorBody, TokenForm, TokenLookupForm, TokenResponseBody};

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error, as RFC 9457 problem details.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `urn:idv:problem:not-found`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, for people.
    pub detail: String,
    /// The request id, to find the matching log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// For lifecycle conflicts: the agent's current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    /// For stale writes: the current version (ETag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
    /// For invalid input: which field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For policies that do not compile: every problem, with its position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<PolicyProblem>>,
}

/// One reason a policy version does not compile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyProblem {
    /// `policies`, `schema`, or `condition` (a grant's).
    pub source: String,
    /// What is wrong.
    pub message: String,
    /// 1-based line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The policy it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
}

/// A page of results with a keyset cursor.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, in id (creation) order.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent when this page is not
    /// full (a full last page is followed by an empty one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A duration: seconds as a number, or text like `90s`, `15m`, `1h30m`, `7d`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum DurationValue {
    /// Whole seconds.
    Seconds(u64),
    /// Text form.
    Text(String),
}

/// `POST /v1/tenants`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    /// Slug: lowercase letters, digits and `-`.
    pub name: String,
    /// Name for people (defaults to `name`).
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A tenant.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    /// Immutable id.
    pub id: Uuid,
    /// Slug.
    pub name: String,
    /// Name for people.
    pub display_name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/admin-tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenCreate {
    /// A name for people, e.g. `ci-pipeline`.
    pub name: String,
    /// `admin`, `operator`, `auditor` or `pep`.
    pub role: String,
    /// Lifetime; absent means it does not expire.
    #[serde(default)]
    pub expires_in: Option<DurationValue>,
    /// Make a platform operator token (needs a platform operator token).
    #[serde(default)]
    pub platform: bool,
}

/// An admin token (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminTokenView {
    /// Immutable id.
    pub id: Uuid,
    /// Tenant it belongs to.
    pub tenant: String,
    /// Name for people.
    pub name: String,
    /// `admin`, `operator`, `auditor` or `pep`.
    pub role: String,
    /// Platform operator token.
    pub platform: bool,
    /// The first characters of the token.
    pub hint: String,
    /// RFC 3339.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// RFC 3339, if it expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// RFC 3339, if revoked.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// The answer to `POST /v1/admin-tokens`: the secret, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminTokenCreated {
    /// The bearer token. Store it now; it cannot be shown again.
    pub token: String,
    /// The stored record.
    pub admin_token: AdminTokenView,
}

/// `GET /v1/admin-tokens/self`: who the caller is.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The token used.
    pub admin_token: AdminTokenView,
    /// The tenant the request acted in.
    pub tenant: TenantView,
}

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

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
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

/// `POST /v1/agents/{id}/credentials`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialCreate {
    /// `client_secret`, `private_key_jwt` or `api_key`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `private_key_jwt`: the agent's public JWK (Ed25519 `OKP` or P-256 `EC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwk: Option<serde_json::Value>,
    /// For `api_key`: its scopes (default: every scope the agent is allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<BTreeSet<String>>,
    /// Lifetime (seconds or text like `90d`); default: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<DurationValue>,
}

/// A credential (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialView {
    /// Immutable id.
    pub id: Uuid,
    /// The agent it authenticates; also its OAuth `client_id`.
    pub agent_id: Uuid,
    /// `client_secret`, `private_key_jwt` or `api_key`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Recognisable start of the secret, or the JWK thumbprint (RFC 7638).
    pub hint: Option<String>,
    /// The registered public JWK (`private_key_jwt`).
    #[schema(value_type = Option<Object>)]
    pub jwk: Option<serde_json::Value>,
    /// API key scopes.
    pub scopes: BTreeSet<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// Who issued it.
    pub created_by: String,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// RFC 3339, if revoked.
    pub revoked_at: Option<String>,
    /// RFC 3339, when it last authenticated (API keys).
    pub last_used_at: Option<String>,
    /// Why it was revoked: `manual`, `rotated`, `compromised` or `agent_retired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
    /// The credential it replaced (rotation lineage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor_id: Option<Uuid>,
    /// The credential that replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_id: Option<Uuid>,
    /// Its predecessor is revoked the first time it authenticates.
    #[serde(default)]
    pub retire_on_use: bool,
    /// Its secret waits for the agent to collect it
    /// (`POST /v1/self/credential/successor`).
    #[serde(default)]
    pub awaiting_pickup: bool,
}

/// `POST /v1/credentials/{id}/rotate` and `POST /v1/self/credential/rotate`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRotate {
    /// How long predecessor and successor both work (seconds or text like
    /// `1h`; 0: the predecessor is revoked at once). Default one hour, at
    /// most 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<DurationValue>,
    /// When the predecessor stops: `overlap_end` (default) or `first_use`
    /// (the first time the successor authenticates, at the latest at the
    /// end of the overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire: Option<String>,
    /// For `private_key_jwt`: the successor's public JWK (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwk: Option<serde_json::Value>,
    /// Administrators only: keep the new secret out of this answer and
    /// sealed for the agent to collect with its current credential.
    #[serde(default)]
    pub pickup: bool,
}

/// The answer to a rotation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialRotated {
    /// The predecessor after the rotation (its new expiry, or revoked).
    pub predecessor: CredentialView,
    /// The successor, with its secret unless it waits for pick-up.
    pub successor: CredentialCreated,
}

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

/// The answer to `POST /v1/agents/{id}/compromised`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CompromiseAnswer {
    /// Every credential that was live, now revoked.
    pub revoked: Vec<CredentialView>,
    /// Successors of the secret-bearing ones, secrets shown once (to the
    /// administrator: the agent's own credentials are not trusted now).
    pub successors: Vec<CredentialCreated>,
}

/// The answer to `POST /v1/agents/{id}/credentials`: the secret, once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialCreated {
    /// The credential.
    pub credential: CredentialView,
    /// The OAuth `client_id` to use with it (the agent id).
    pub client_id: String,
    /// For `client_secret`: the secret (shown only now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// For `api_key`: the key (shown only now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// Who lends authority in a delegation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegatorRef {
    /// `agent` or `human`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `agent`: its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For `human`: the trusted issuer that authenticates them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// For `human`: their `sub` at that issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
}

/// `POST /v1/delegations`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegationCreate {
    /// Who lends.
    pub delegator: DelegatorRef,
    /// The agent that may act for the delegator (its id).
    pub delegate: Uuid,
    /// The most it lends.
    pub scopes: BTreeSet<String>,
    /// Audiences allowed under it (default: any the delegate is granted).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub audience: BTreeSet<String>,
    /// What it is for (carried into tokens as `task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub task: Option<serde_json::Value>,
    /// Longest actor chain a token under it may have (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Lifetime (seconds or text like `8h`; at most 30 days).
    pub ttl: DurationValue,
}

/// A delegation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DelegationView {
    /// Immutable id; tokens issued through it carry it in `delegations`.
    pub id: Uuid,
    /// Who lends.
    pub delegator: DelegatorRef,
    /// The agent that may act.
    pub delegate: Uuid,
    /// The most it lends.
    pub scopes: BTreeSet<String>,
    /// Audiences allowed under it.
    pub audience: BTreeSet<String>,
    /// What it is for.
    #[schema(value_type = Option<Object>)]
    pub task: Option<serde_json::Value>,
    /// Longest actor chain.
    pub max_depth: u32,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339, if revoked.
    pub revoked_at: Option<String>,
}

/// `POST /v1/trusted-issuers`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerCreate {
    /// The issuer's `iss`, exactly.
    pub issuer: String,
    /// Its public keys, as a JWKS (`{"keys": [...]}`); never fetched.
    #[schema(value_type = Object)]
    pub jwks: serde_json::Value,
    /// If set, its tokens must name this audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// A trusted issuer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TrustedIssuerView {
    /// Id.
    pub id: Uuid,
    /// Its `iss`.
    pub issuer: String,
    /// Its public keys.
    #[schema(value_type = Object)]
    pub jwks: serde_json::Value,
    /// Required audience, if any.
    pub audience: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Who added it.
    pub created_by: String,
}

/// `PUT /v1/token-ttls/{class}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenTtlSet {
    /// Lifetime (seconds or text like `10m`), at most the server's maximum.
    pub ttl: DurationValue,
}

/// One access token lifetime setting.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenTtlView {
    /// An agent class, or `*` for the tenant's default.
    pub class: String,
    /// Seconds.
    pub ttl_secs: i64,
}

/// `GET /v1/token-ttls`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenTtls {
    /// The server's default, used when the tenant sets none.
    pub server_default_secs: i64,
    /// The hard maximum no setting may exceed.
    pub max_secs: i64,
    /// The tenant's settings.
    pub items: Vec<TokenTtlView>,
}

/// One of the tenant's token signing keys (never private material).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyView {
    /// Key id, the `kid` of the tokens it signs.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// `next` (published, not yet signing), `current` (signs), `retired`
    /// (published, no longer signing) or `removed` (out of the JWKS).
    pub state: String,
    /// When it was made and first published (RFC 3339).
    pub created_at: String,
    /// When it starts (or started) signing.
    pub activates_at: String,
    /// When it stopped signing, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    /// Once retired: until when it stays in the JWKS (the expiry of the
    /// last token it can have signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_until: Option<String>,
    /// When it left the JWKS, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<String>,
    /// The public JWK as published.
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
}

/// `POST /v1/keys/rotate`: rotate the tenant's signing key now.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyRotate {
    /// Publish the new key this long before it signs (seconds or text like
    /// `1h`; 1 minute to 30 days; default: the server's publication lead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_ahead: Option<DurationValue>,
    /// The new key signs at once and the current one is retired now (it
    /// stays published until its tokens have expired).
    #[serde(default)]
    pub immediate: bool,
    /// Compromise: the new key signs at once and the keys that were signing
    /// leave the JWKS at once, so every token they signed stops verifying
    /// (implies `immediate`).
    #[serde(default)]
    pub revoke_old: bool,
    /// Why, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to `POST /v1/keys/rotate`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyRotated {
    /// The new key's id.
    pub created: String,
    /// Every key of the tenant after the rotation, oldest first.
    pub keys: Vec<SigningKeyView>,
}

/// Who acted, in an audit event.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditActorView {
    /// `admin_token` or `system`.
    pub kind: String,
    /// The token's name or the system component.
    pub name: String,
    /// The token id, when a token was used.
    pub token_id: Option<Uuid>,
}

/// An audit event exactly as chained: with these fields anyone can recompute
/// `hash` and check the chain (see `docs/api.md`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Event id.
    pub id: Uuid,
    /// RFC 3339 with microseconds.
    pub time: String,
    /// Tenant id.
    pub tenant_id: Uuid,
    /// Who acted.
    pub actor: AuditActorView,
    /// What was done, e.g. `agent.create`.
    pub action: String,
    /// The kind of thing acted on.
    pub target_type: String,
    /// Which one.
    pub target_id: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// The reason given.
    pub reason: Option<String>,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// Anything else (never a secret).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Previous event's hash (hex).
    pub prev_hash: String,
    /// This event's hash (hex).
    pub hash: String,
}

/// `GET /healthz` and `/readyz`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
}

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

/// `PUT /v1/roles/{name}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePut {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Actions (or action groups such as `read`) it permits.
    pub actions: BTreeSet<String>,
}

/// A role.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleView {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Actions it permits.
    pub actions: BTreeSet<String>,
    /// RFC 3339.
    pub updated_at: String,
}

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

/// `POST /v1/entities`: entities to create or replace, all or nothing.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitiesPut {
    /// Cedar entity JSON: `{"uid": {"type", "id"}, "attrs": {…}, "parents": [{"type", "id"}]}`.
    #[schema(value_type = Vec<Object>)]
    pub entities: Vec<serde_json::Value>,
}

/// A directory entity (Cedar's entity shape).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EntityView {
    /// `{"type": …, "id": …}`.
    #[schema(value_type = Object)]
    pub uid: serde_json::Value,
    /// Attributes.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attrs: serde_json::Map<String, serde_json::Value>,
    /// Parents: `[{"type": …, "id": …}]`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub parents: Vec<serde_json::Value>,
}

/// An AuthZEN subject or resource.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct AzEntity {
    /// Its type: `agent`, `token` (subject only: `id` is an access token we
    /// issued), or a type of the tenant's schema.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its id.
    pub id: String,
    /// Attributes supplied by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An AuthZEN action.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct AzAction {
    /// Its name.
    pub name: String,
    /// Attributes: `context.action` in policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §6.1: an access evaluation request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationRequest {
    /// Who.
    pub subject: AzEntity,
    /// Does what.
    pub action: AzAction,
    /// To what.
    pub resource: AzEntity,
    /// In what circumstances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §6.2: the decision.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationResponse {
    /// Allowed or not.
    pub decision: bool,
    /// Why: determining policies, errors, reasons, approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

/// One item of an AuthZEN evaluations request: overrides of the defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct EvaluationItem {
    /// Subject.
    #[serde(default)]
    pub subject: Option<AzEntity>,
    /// Action.
    #[serde(default)]
    pub action: Option<AzAction>,
    /// Resource.
    #[serde(default)]
    pub resource: Option<AzEntity>,
    /// Context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §7.1.2: options of an evaluations request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsOptions {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    #[serde(default)]
    pub evaluations_semantic: Option<String>,
}

/// AuthZEN 1.0 §7.1: many evaluations, with defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsRequest {
    /// Default subject.
    #[serde(default)]
    pub subject: Option<AzEntity>,
    /// Default action.
    #[serde(default)]
    pub action: Option<AzAction>,
    /// Default resource.
    #[serde(default)]
    pub resource: Option<AzEntity>,
    /// Default context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// The evaluations (absent or empty: the defaults are one evaluation).
    #[serde(default)]
    pub evaluations: Option<Vec<EvaluationItem>>,
    /// Options.
    #[serde(default)]
    pub options: Option<EvaluationsOptions>,
}

/// AuthZEN 1.0 §7.2: decisions in request order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsResponse {
    /// One per evaluation (fewer when a short-circuit semantic stopped early).
    pub evaluations: Vec<EvaluationResponse>,
}

/// The answer of `POST /access/v1/evaluations`: many decisions, or (AuthZEN
/// 1.0 §7.1: a request without `evaluations`) a single one.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EvaluationsAnswer {
    /// One decision per evaluation.
    Many(EvaluationsResponse),
    /// The defaults as one evaluation.
    One(EvaluationResponse),
}

/// AuthZEN 1.0 §9: the PDP's metadata.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthzenConfiguration {
    /// The PDP's identifier (its base URL).
    pub policy_decision_point: String,
    /// `POST` one evaluation.
    pub access_evaluation_endpoint: String,
    /// `POST` many evaluations.
    pub access_evaluations_endpoint: String,
    /// `POST` a subject search (§8.4).
    pub search_subject_endpoint: String,
    /// `POST` a resource search (§8.5).
    pub search_resource_endpoint: String,
    /// `POST` an action search (§8.6).
    pub search_action_endpoint: String,
}

/// A subject or resource of an AuthZEN search: the one searched for names
/// only its `type` (an `id`, if sent, is ignored).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct AzSearchEntity {
    /// Its type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Its id (required for the parts that are not searched for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attributes supplied by the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

/// AuthZEN 1.0 §8.2: paging of a search request.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "JsonObject")]
pub struct SearchPage {
    /// The `next_token` of the previous page of the same search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// At most this many results (default 100, at most 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// AuthZEN 1.0 §8: a subject, resource or action search. Which parts are
/// required depends on the search: the searched part names only a type (or,
/// for actions, is left out).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct SearchRequest {
    /// The subject.
    #[serde(default)]
    pub subject: Option<AzSearchEntity>,
    /// The action (not in an action search).
    #[serde(default)]
    pub action: Option<AzAction>,
    /// The resource.
    #[serde(default)]
    pub resource: Option<AzSearchEntity>,
    /// Circumstances, as in an evaluation.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    /// Paging.
    #[serde(default)]
    pub page: Option<SearchPage>,
}

/// AuthZEN 1.0 §8.2: paging of a search response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchPageResponse {
    /// Pass as `page.token` for the next page; empty on the last page.
    pub next_token: String,
    /// How many results this page holds.
    pub count: u64,
}

/// A subject or resource found.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AzFound {
    /// Its type (as asked).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its id.
    pub id: String,
}

/// AuthZEN 1.0 §8.4, §8.5: the subjects or resources the decision allows.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EntitySearchResponse {
    /// This page's results.
    pub results: Vec<AzFound>,
    /// Paging.
    pub page: SearchPageResponse,
}

/// An action found.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AzActionName {
    /// Its name.
    pub name: String,
}

/// AuthZEN 1.0 §8.6: the actions the decision allows.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ActionSearchResponse {
    /// This page's results.
    pub results: Vec<AzActionName>,
    /// Paging.
    pub page: SearchPageResponse,
}

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

/// A JSON object, as nested request parts must be: serde would otherwise
/// also accept an array as a struct's fields in order.
type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Implements `TryFrom<JsonObject>` for a request part through a private
/// mirror struct with the same fields (so arrays are refused).
macro_rules! from_object {
    ($ty:ident, $mirror:ident { $($(#[$attr:meta])* $field:ident : $fty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        struct $mirror {
            $($(#[$attr])* $field: $fty,)*
        }
        impl TryFrom<JsonObject> for $ty {
            type Error = serde_json::Error;
            fn try_from(m: JsonObject) -> Result<Self, Self::Error> {
                let f: $mirror = serde_json::from_value(serde_json::Value::Object(m))?;
                Ok($ty { $($field: f.$field,)* })
            }
        }
    };
}

from_object!(AzEntity, AzEntityFields {
    #[serde(rename = "type")]
    type_: String,
    id: String,
    #[serde(default)]
    properties: Option<JsonObject>,
});

from_object!(AzAction, AzActionFields {
    name: String,
    #[serde(default)]
    properties: Option<JsonObject>,
});

from_object!(AzSearchEntity, AzSearchEntityFields {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    properties: Option<JsonObject>,
});

from_object!(SearchPage, SearchPageFields {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
});

from_object!(EvaluationItem, EvaluationItemFields {
    #[serde(default)]
    subject: Option<AzEntity>,
    #[serde(default)]
    action: Option<AzAction>,
    #[serde(default)]
    resource: Option<AzEntity>,
    #[serde(default)]
    context: Option<JsonObject>,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_request_parts_must_be_objects() {
        let ok: EvaluationsRequest =
            serde_json::from_str(r#"{"evaluations": [{"subject": {"type": "agent", "id": "a"}}]}"#).unwrap();
        assert_eq!(ok.evaluations.unwrap()[0].subject.as_ref().unwrap().id, "a");
        assert!(serde_json::from_str::<EvaluationsRequest>(r#"{"evaluations": [[null, null]]}"#).is_err());
        assert!(
            serde_json::from_str::<EvaluationRequest>(
                r#"{"subject": ["agent", "a"], "action": {"name": "x"}, "resource": {"type": "t", "id": "i"}}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<EvaluationRequest>(
                r#"{"subject": {"type": "agent", "id": "a"}, "action": ["x"], "resource": {"type": "t", "id": "i"}}"#
            )
            .is_err()
        );
    }
}

/// `PUT /v1/db/targets/{name}`: a PostgreSQL database roles are issued on.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DbTargetPut {
    /// `postgres://admin:password@host:port/database` of a role that may
    /// create roles there (`CREATEROLE`). Sealed at rest, never shown again.
    pub connection_url: String,
    /// Prefix of every role made there (default `idv_`): lowercase letters,
    /// digits and `_`, starting with a letter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_prefix: Option<String>,
}

/// A target database (never its connection string's password).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DbTargetView {
    /// Name in the tenant.
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// The administrative role we connect as.
    pub admin_user: String,
    /// Prefix of the roles we make.
    pub role_prefix: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Who set it.
    pub updated_by: String,
}

/// What an orphan sweep of a target found.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DbSweepView {
    /// Roles on the target that carry our mark for it.
    pub found: usize,
    /// The ones with no live lease, now dropped.
    pub dropped: Vec<String>,
}

/// `PUT /v1/db/templates/{name}`: how roles for a purpose are made.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DbTemplatePut {
    /// The target database's name.
    pub target: String,
    /// `GRANT … TO {{name}}` statements from the allow-list (object
    /// privileges on tables, sequences, schemas, functions; see
    /// docs/operations.md). Nothing else is accepted.
    pub statements: Vec<String>,
    /// Lease time when a request names none (default one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<DurationValue>,
    /// Longest lease, renewals included (default 24 hours, at most 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl: Option<DurationValue>,
}

/// A role template.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DbTemplateView {
    /// Name in the tenant (the Cedar resource `DatabaseTemplate::"<name>"`).
    pub name: String,
    /// The target database's name.
    pub target: String,
    /// The grants, in canonical form.
    pub statements: Vec<String>,
    /// Seconds.
    pub default_ttl_secs: i64,
    /// Seconds.
    pub max_ttl_secs: i64,
    /// RFC 3339.
    pub updated_at: String,
    /// Who set it.
    pub updated_by: String,
}

/// `POST /v1/self/db/creds/{template}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DbCredsRequest {
    /// Lease time (default: the template's; never past its maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<DurationValue>,
}

/// A database credential just issued: the password is shown only now.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct DbCredsIssued {
    /// The lease on the role.
    pub lease: LeaseView,
    /// The role to log in as.
    pub username: String,
    /// Its password (shown only now; we keep none).
    pub password: String,
    /// Where to connect.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
}

/// A lease on a dynamic database role.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LeaseView {
    /// Lease id.
    pub id: Uuid,
    /// The agent it was issued to.
    pub agent_id: Uuid,
    /// The template the role was made from.
    pub template: String,
    /// The target database's name.
    pub target: String,
    /// The role's name on the target.
    pub username: String,
    /// `pending`, `active`, `revocation_pending` or `revoked`.
    pub state: String,
    /// RFC 3339.
    pub issued_at: String,
    /// When the role stops working (RFC 3339).
    pub expires_at: String,
    /// Renewals end here (RFC 3339).
    pub max_expires_at: String,
    /// Seconds left.
    pub ttl_secs: i64,
    /// Whether a renewal would extend it.
    pub renewable: bool,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Why it ended or is ending: `revoked`, `expired`, `agent_disabled`,
    /// `incomplete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// The last failure to revoke (while `revocation_pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// `POST /v1/leases/{id}/renew` and `POST /v1/self/leases/{id}/renew`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseRenew {
    /// Extend to this long from now (default: the template's default TTL);
    /// never past the lease's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment: Option<DurationValue>,
}

/// `POST /v1/webhooks`: subscribe an endpoint to some of the tenant's events.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Where to POST: `https://…` (`http://` only as the server's
    /// `--webhook-http` setting allows; by default to loopback only).
    pub url: String,
    /// Event patterns: a type (`credential.rotated`), a prefix (`agent.*`)
    /// or `*` (everything but the high-volume `token.issued`,
    /// `token.exchanged` and `authz.decision`, which only their exact name
    /// selects).
    pub events: Vec<String>,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`: what to change (absent fields stay).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// A new endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New event patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "double_option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` enables (a disabled subscription resumes where it stopped:
    /// nothing that happened meanwhile is lost), `false` disables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A webhook subscription (never its secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Immutable id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// Event patterns.
    pub events: Vec<String>,
    /// For people.
    pub description: Option<String>,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Why it was disabled (e.g. the endpoint kept failing).
    pub disabled_reason: Option<String>,
    /// RFC 3339, when it was disabled.
    pub disabled_at: Option<String>,
    /// Failed attempts since the last successful delivery.
    pub consecutive_failures: i64,
    /// RFC 3339: the first failed attempt since the last success.
    pub failing_since: Option<String>,
    /// RFC 3339: the last successful delivery.
    pub last_success_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Who made it.
    pub created_by: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A new subscription (or a new secret) with its signing secret, shown
/// only in this answer.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    /// The subscription.
    pub webhook: WebhookView,
    /// `whsec_…`: verify the `webhook-signature` header with it (Standard
    /// Webhooks). Store it now; it is never shown again.
    pub secret: String,
}

/// One event on its way to one subscription (the delivery log).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookDeliveryView {
    /// Immutable id.
    pub id: Uuid,
    /// The `webhook-id` header it is sent with (the same on every retry).
    pub message_id: String,
    /// The subscription.
    pub webhook_id: Uuid,
    /// The event type, e.g. `agent.suspended`.
    pub event_type: String,
    /// The audit event it carries (none for `webhook.test`).
    pub event_id: Option<Uuid>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// RFC 3339: when the next attempt is due.
    pub next_attempt_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_attempt_at: Option<String>,
    /// The HTTP status the last attempt got.
    pub last_status_code: Option<i64>,
    /// What went wrong with the last attempt.
    pub last_error: Option<String>,
    /// How long the last attempt took.
    pub last_duration_ms: Option<i64>,
    /// RFC 3339: when it was delivered.
    pub delivered_at: Option<String>,
    /// The body, exactly as signed and sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// Redacting `Debug` for wire types that carry a secret: a stray `{:?}`
/// must never print it.
mod redacted {
    use std::fmt;

    impl fmt::Debug for super::DbTargetPut {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("DbTargetPut")
                .field("connection_url", &"<redacted>")
                .field("role_prefix", &self.role_prefix)
                .finish()
        }
    }

    impl fmt::Debug for super::DbCredsIssued {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("DbCredsIssued")
                .field("lease", &self.lease)
                .field("username", &self.username)
                .field("password", &"<redacted>")
                .field("host", &self.host)
                .field("port", &self.port)
                .field("database", &self.database)
                .finish()
        }
    }

    impl fmt::Debug for super::WebhookCreated {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("WebhookCreated")
                .field("webhook", &self.webhook)
                .field("secret", &"<redacted>")
                .finish()
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn secrets_do_not_show_in_debug() {
            let t = super::super::DbTargetPut {
                connection_url: "postgres://u:hunter2@h/db".into(),
                role_prefix: None,
            };
            assert!(!format!("{t:?}").contains("hunter2"));
        }
    }
}
