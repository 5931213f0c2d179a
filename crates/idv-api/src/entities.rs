//! `/v1/entities`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
