//! `/v1/tenants`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

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
