//! Agent credentials: client secrets, registered public keys
//! (`private_key_jwt`, RFC 7523) and API keys.
//!
//! An agent may hold several at once (for zero-downtime rotation); each has
//! its own expiry and is revoked alone. Secrets are shown once and stored only
//! as keyed hashes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Timestamp;
use crate::agent::Agent;
use crate::grant::is_scope_token;
use crate::secret::SecretFormat;

/// Client secrets: `idvcs_…`.
pub const CLIENT_SECRET: SecretFormat = SecretFormat {
    prefix: "idvcs_",
    what: "client secret",
};

/// API keys: `idvak_…`.
pub const API_KEY: SecretFormat = SecretFormat {
    prefix: "idvak_",
    what: "API key",
};

/// Longest credential lifetime a request may ask for (one year).
pub const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

/// Which kind of credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A shared secret for `client_secret_basic` / `client_secret_post`.
    ClientSecret,
    /// A public JWK; the agent signs RFC 7523 client assertions.
    PrivateKeyJwt,
    /// A scoped bearer key for systems that cannot do OAuth.
    ApiKey,
}

impl Kind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ClientSecret => "client_secret",
            Kind::PrivateKeyJwt => "private_key_jwt",
            Kind::ApiKey => "api_key",
        }
    }

    /// The secret format, for kinds that have a secret.
    pub fn format(self) -> Option<SecretFormat> {
        match self {
            Kind::ClientSecret => Some(CLIENT_SECRET),
            Kind::ApiKey => Some(API_KEY),
            Kind::PrivateKeyJwt => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential type name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a credential type (client_secret, private_key_jwt, api_key)")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client_secret" => Ok(Kind::ClientSecret),
            "private_key_jwt" => Ok(Kind::PrivateKeyJwt),
            "api_key" => Ok(Kind::ApiKey),
            _ => Err(UnknownKind(s.to_owned())),
        }
    }
}

/// A stored credential (never the secret itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Immutable id.
    pub id: Uuid,
    /// Tenant of the agent.
    pub tenant_id: Uuid,
    /// The agent it authenticates (its `client_id`).
    pub agent_id: Uuid,
    /// Which kind.
    pub kind: Kind,
    /// Recognisable start of the secret, for kinds with one.
    pub hint: Option<String>,
    /// The registered public JWK (`private_key_jwt`).
    pub jwk: Option<Value>,
    /// For API keys: the scopes it carries (a subset of the agent's grants).
    pub scopes: BTreeSet<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it last authenticated (API keys).
    pub last_used_at: Option<Timestamp>,
}

impl Credential {
    /// Whether it can authenticate at `now` (the agent's status is checked
    /// separately).
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Why a credential request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A field broke a rule.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field, as named on the wire.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CredentialError {
    CredentialError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A request for a new credential, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCredential {
    /// Which kind.
    pub kind: Kind,
    /// The public JWK, for `private_key_jwt` (checked by the caller, which
    /// knows the key formats).
    pub jwk: Option<Value>,
    /// API key scopes (`None`: every scope the agent is granted).
    pub scopes: Option<BTreeSet<String>>,
    /// Lifetime in seconds (`None`: until revoked).
    pub ttl_seconds: Option<u64>,
}

impl NewCredential {
    /// Checks the request against the agent's granted scopes and builds the
    /// credential.
    pub fn into_credential(
        self,
        id: Uuid,
        agent: &Agent,
        hint: Option<String>,
        now: Timestamp,
        created_by: &str,
    ) -> Result<Credential, CredentialError> {
        let granted = &agent.grants.scopes;
        match (self.kind, &self.jwk) {
            (Kind::PrivateKeyJwt, None) => return Err(invalid("jwk", "is required for `private_key_jwt`")),
            (Kind::ClientSecret | Kind::ApiKey, Some(_)) => {
                return Err(invalid("jwk", "is only for `private_key_jwt`"));
            }
            _ => {}
        }
        let scopes = match (self.kind, self.scopes) {
            (Kind::ApiKey, None) => granted.clone(),
            (Kind::ApiKey, Some(s)) => {
                if let Some(bad) = s.iter().find(|s| !is_scope_token(s)) {
                    return Err(invalid(
                        "scopes",
                        format!("`{bad}` is not a scope token (RFC 6749 §3.3)"),
                    ));
                }
                if let Some(missing) = s.iter().find(|s| !granted.contains(*s)) {
                    return Err(invalid(
                        "scopes",
                        format!("`{missing}` is not among the agent's allowed scopes"),
                    ));
                }
                s
            }
            (_, Some(_)) => return Err(invalid("scopes", "only API keys carry scopes")),
            (_, None) => BTreeSet::new(),
        };
        let expires_at = match self.ttl_seconds {
            None => None,
            Some(t) if (1..=MAX_TTL_SECS).contains(&t) => Some(now.plus_secs(i64::try_from(t).unwrap_or(i64::MAX))),
            Some(_) => return Err(invalid("ttl", "must be between 1 second and 365 days")),
        };
        Ok(Credential {
            id,
            tenant_id: agent.tenant_id,
            agent_id: agent.id,
            kind: self.kind,
            hint,
            jwk: self.jwk,
            scopes,
            created_at: now,
            created_by: created_by.to_owned(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::NewAgent;

    fn new(kind: Kind) -> NewCredential {
        NewCredential {
            kind,
            jwk: None,
            scopes: None,
            ttl_seconds: None,
        }
    }

    fn build(n: NewCredential) -> Result<Credential, CredentialError> {
        let mut spec = NewAgent {
            name: "a".into(),
            owner: "o".into(),
            purpose: "p".into(),
            ..NewAgent::default()
        };
        spec.grants.scopes = ["a", "b"].map(String::from).into();
        let agent = spec
            .into_agent(Uuid::nil(), Uuid::nil(), Timestamp::from_micros(0), "t")
            .unwrap();
        n.into_credential(Uuid::nil(), &agent, None, Timestamp::from_micros(0), "t")
    }

    #[test]
    fn api_keys_take_granted_scopes() {
        assert_eq!(build(new(Kind::ApiKey)).unwrap().scopes.len(), 2);
        let mut n = new(Kind::ApiKey);
        n.scopes = Some(["a".to_owned()].into());
        assert_eq!(build(n).unwrap().scopes.len(), 1);
        let mut n = new(Kind::ApiKey);
        n.scopes = Some(["c".to_owned()].into());
        assert!(build(n).is_err());
    }

    #[test]
    fn kinds_need_their_fields() {
        assert!(build(new(Kind::PrivateKeyJwt)).is_err());
        let mut n = new(Kind::ClientSecret);
        n.jwk = Some(serde_json::json!({}));
        assert!(build(n).is_err());
        let mut n = new(Kind::ClientSecret);
        n.scopes = Some(BTreeSet::new());
        assert!(build(n).is_err());
        let mut n = new(Kind::ClientSecret);
        n.ttl_seconds = Some(0);
        assert!(build(n).is_err());
        let mut n = new(Kind::ClientSecret);
        n.ttl_seconds = Some(60);
        assert_eq!(build(n).unwrap().expires_at, Some(Timestamp::from_micros(60_000_000)));
    }

    #[test]
    fn usable_until_expiry_or_revocation() {
        let mut c = build(new(Kind::ClientSecret)).unwrap();
        assert!(c.is_usable(Timestamp::from_micros(1)));
        c.expires_at = Some(Timestamp::from_micros(10));
        assert!(!c.is_usable(Timestamp::from_micros(10)));
        c.expires_at = None;
        c.revoked_at = Some(Timestamp::from_micros(5));
        assert!(!c.is_usable(Timestamp::from_micros(1)));
    }
}
