//! `/v1/trusted-issuers`: issuers whose tokens may be exchanged.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

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
