//! `/v1/agents/{id}/delegations`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::DurationValue;

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
