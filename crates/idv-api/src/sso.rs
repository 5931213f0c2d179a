//! `/v1/sso`: the tenant's single sign-on provider for the console.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `PUT /v1/sso`: the tenant's OpenID Connect provider.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoPut {
    /// The provider's issuer identifier, e.g. `https://bank.okta.com` or
    /// `https://login.microsoftonline.com/<tenant-id>/v2.0`.
    pub issuer: String,
    /// IdentityVault's client id at the provider.
    pub client_id: String,
    /// Its client secret (sealed at rest, never shown again).
    pub client_secret: String,
    /// Scopes to ask for (default `openid email profile`; add `groups` where
    /// the provider needs it).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The ID token claim that carries the person's groups (default
    /// `groups`; Entra ID: `groups` or `roles`).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Provider group → role (`admin`, `operator` or `auditor`). A person in
    /// no mapped group is refused; in several, gets the strongest role.
    pub role_map: BTreeMap<String, String>,
}

/// The tenant's single sign-on provider (never the client secret).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SsoView {
    /// Issuer.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// The groups claim.
    pub groups_claim: String,
    /// Group → role.
    pub role_map: BTreeMap<String, String>,
    /// Where the provider must send people back (register it there).
    pub redirect_uri: String,
    /// RFC 3339.
    pub updated_at: String,
    /// By whom.
    pub updated_by: String,
}
