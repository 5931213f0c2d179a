//! `/v1/audit`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

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
