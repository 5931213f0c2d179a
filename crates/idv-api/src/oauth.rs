//! OAuth wire types (RFC 6749 and its extensions): the token endpoint's
//! form and answer, errors, and the introspection/revocation form. The server
//! answers with [`TokenResponseBody`]; the CLI, the test kit and the
//! benchmarks read token responses into it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Token request parameters (`application/x-www-form-urlencoded`; RFC 6749
/// §4.4.2, RFC 8707, RFC 9396, RFC 7523). Documentation only: the server
/// parses the form itself so it can refuse repeated parameters.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenForm {
    /// `client_credentials`.
    pub grant_type: String,
    /// Space-separated scopes (default: every granted scope).
    pub scope: Option<String>,
    /// Audience URI (RFC 8707); may repeat.
    pub resource: Option<String>,
    /// RFC 9396 authorization details, a JSON array.
    pub authorization_details: Option<String>,
    /// With `client_secret_post` or `private_key_jwt`.
    pub client_id: Option<String>,
    /// `client_secret_post`.
    pub client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    pub client_assertion_type: Option<String>,
    /// A JWT signed by the agent's registered key (RFC 7523).
    pub client_assertion: Option<String>,
    /// RFC 8693: the token of the party acted for.
    pub subject_token: Option<String>,
    /// RFC 8693: `urn:ietf:params:oauth:token-type:access_token` or `…:jwt`.
    pub subject_token_type: Option<String>,
    /// RFC 8693: the calling agent's own token (optional).
    pub actor_token: Option<String>,
    /// RFC 8693: its type.
    pub actor_token_type: Option<String>,
    /// RFC 8693: `urn:ietf:params:oauth:token-type:access_token` if given.
    pub requested_token_type: Option<String>,
    /// RFC 8693: audience URI; may repeat.
    pub audience: Option<String>,
}

// The server sends it and clients read it: absent members are left out,
// never `null`. (Its doc comment is the OpenAPI description: keep it.)
/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponseBody {
    /// A JWT access token (RFC 9068).
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// RFC 8693 §2.2.1 (token exchange only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<String>,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Granted authorization details (RFC 9396 §7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub authorization_details: Option<Vec<serde_json::Value>>,
}

/// An OAuth error (RFC 6749 §5.2).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The error code, e.g. `invalid_client`.
    pub error: String,
    /// What went wrong.
    pub error_description: Option<String>,
}

/// Introspection (RFC 7662 §2.1) or revocation (RFC 7009 §2.1) parameters.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenLookupForm {
    /// The token or API key.
    pub token: String,
    /// `access_token` (optional).
    pub token_type_hint: Option<String>,
    /// With `client_secret_post`.
    pub client_id: Option<String>,
    /// `client_secret_post`.
    pub client_secret: Option<String>,
}
