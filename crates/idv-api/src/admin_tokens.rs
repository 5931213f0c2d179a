//! `/v1/admin-tokens` and `/v1/whoami`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{DurationValue, TenantView};

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
