//! `/v1/keys`: signing keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::DurationValue;

/// One of the tenant's token signing keys (never private material).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyView {
    /// Key id, the `kid` of the tokens it signs.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub alg: String,
    /// `next` (published, not yet signing), `current` (signs), `retired`
    /// (published, no longer signing) or `removed` (out of the JWKS).
    pub state: String,
    /// When it was made and first published (RFC 3339).
    pub created_at: String,
    /// When it starts (or started) signing.
    pub activates_at: String,
    /// When it stopped signing, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    /// Once retired: until when it stays in the JWKS (the expiry of the
    /// last token it can have signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_until: Option<String>,
    /// When it left the JWKS, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<String>,
    /// The public JWK as published.
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
}

/// `POST /v1/keys/rotate`: rotate the tenant's signing key now.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyRotate {
    /// Publish the new key this long before it signs (seconds or text like
    /// `1h`; 1 minute to 30 days; default: the server's publication lead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_ahead: Option<DurationValue>,
    /// The new key signs at once and the current one is retired now (it
    /// stays published until its tokens have expired).
    #[serde(default)]
    pub immediate: bool,
    /// Compromise: the new key signs at once and the keys that were signing
    /// leave the JWKS at once, so every token they signed stops verifying
    /// (implies `immediate`).
    #[serde(default)]
    pub revoke_old: bool,
    /// Why, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to `POST /v1/keys/rotate`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyRotated {
    /// The new key's id.
    pub created: String,
    /// Every key of the tenant after the rotation, oldest first.
    pub keys: Vec<SigningKeyView>,
}
