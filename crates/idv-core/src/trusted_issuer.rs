//! External token issuers a tenant trusts to authenticate humans (e.g. the
//! enterprise IdP), whose tokens can start a delegation (RFC 8693 subject
//! tokens). Their keys are configured, never fetched.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Timestamp;
use crate::grant::is_resource;
use crate::jose::{Jwk, PublicKey};

/// Most keys in one issuer's JWKS.
pub const MAX_KEYS: usize = 16;

/// A trusted issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedIssuer {
    /// Immutable id.
    pub id: Uuid,
    /// Tenant that trusts it.
    pub tenant_id: Uuid,
    /// Its `iss` value, exactly.
    pub issuer: String,
    /// Its public keys (a JWKS `keys` array).
    pub keys: Vec<Value>,
    /// If set, its tokens must name this audience.
    pub audience: Option<String>,
    /// When it was added.
    pub created_at: Timestamp,
    /// Who added it.
    pub created_by: String,
}

/// Why a trusted issuer was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// A field broke a rule.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl TrustedIssuer {
    /// Checks the issuer URL and that every key is a public Ed25519 or P-256
    /// key with a `kid`.
    pub fn validate(&self) -> Result<(), IssuerError> {
        let bad = |field, reason: String| IssuerError::Invalid { field, reason };
        if !is_resource(&self.issuer) || self.issuer.len() > 512 {
            return Err(bad("issuer", "must be an absolute URI without a fragment".into()));
        }
        if self.keys.is_empty() || self.keys.len() > MAX_KEYS {
            return Err(bad("jwks", format!("must hold 1 to {MAX_KEYS} keys")));
        }
        for k in &self.keys {
            let jwk: Jwk = serde_json::from_value(k.clone())
                .map_err(|e| bad("jwks", format!("not a public JWK we can verify with: {e}")))?;
            if jwk.kid.as_deref().is_none_or(str::is_empty) {
                return Err(bad("jwks", "every key needs a `kid`".into()));
            }
            PublicKey::from_jwk(&jwk).map_err(|e| bad("jwks", e.to_string()))?;
        }
        Ok(())
    }

    /// The key with id `kid`.
    pub fn key(&self, kid: &str) -> Option<PublicKey> {
        self.keys
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .find(|j| j.kid.as_deref() == Some(kid))
            .and_then(|j| PublicKey::from_jwk(&j).ok())
    }
}
