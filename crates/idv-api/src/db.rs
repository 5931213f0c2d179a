//! `/v1/db`: database targets, templates, dynamic credentials and leases.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::DurationValue;

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
