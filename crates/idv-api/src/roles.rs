//! `/v1/roles`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
