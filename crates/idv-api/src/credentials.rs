//! `/v1/agents/{id}/credentials`: issue, rotate, revoke, report compromise.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::DurationValue;

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
