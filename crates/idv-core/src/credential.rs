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
    /// Why it was revoked (see [`Revocation`]), if it was.
    pub revoked_reason: Option<String>,
    /// The credential it replaced, if it came from a rotation.
    pub predecessor_id: Option<Uuid>,
    /// The credential that replaced it, if it was rotated.
    pub successor_id: Option<Uuid>,
    /// On a successor: its predecessor is revoked the first time it
    /// authenticates (rather than only at the end of the overlap).
    pub retire_on_use: bool,
    /// On a successor made without the agent asking: its secret waits,
    /// sealed, for the agent to collect it once with its current credential.
    pub awaiting_pickup: bool,
}

impl Credential {
    /// Whether it can authenticate at `now` (the agent's status is checked
    /// separately).
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }

    /// Checks that it may be rotated at `now`: usable and not already
    /// rotated (rotate its successor instead).
    pub fn check_rotatable(&self, now: Timestamp) -> Result<(), RotationError> {
        if !self.is_usable(now) {
            return Err(RotationError::NotUsable);
        }
        if let Some(s) = self.successor_id {
            return Err(RotationError::AlreadyRotated(s));
        }
        Ok(())
    }

    /// The credential that replaces this one: same agent, kind and scopes;
    /// a credential that had a lifetime gets one as long from `now`. `jwk`
    /// is the new public key for `private_key_jwt` (required there, refused
    /// elsewhere).
    pub fn successor(
        &self,
        id: Uuid,
        hint: Option<String>,
        jwk: Option<Value>,
        rotation: &Rotation,
        now: Timestamp,
        created_by: &str,
    ) -> Result<Credential, CredentialError> {
        match (self.kind, &jwk) {
            (Kind::PrivateKeyJwt, None) => {
                return Err(invalid(
                    "jwk",
                    "rotating a `private_key_jwt` credential needs the new public key",
                ));
            }
            (Kind::ClientSecret | Kind::ApiKey, Some(_)) => {
                return Err(invalid("jwk", "is only for `private_key_jwt`"));
            }
            _ => {}
        }
        let lifetime = self
            .expires_at
            .map(|e| e.as_micros().saturating_sub(self.created_at.as_micros()));
        Ok(Credential {
            id,
            tenant_id: self.tenant_id,
            agent_id: self.agent_id,
            kind: self.kind,
            hint,
            jwk,
            scopes: self.scopes.clone(),
            created_at: now,
            created_by: created_by.to_owned(),
            expires_at: lifetime.map(|l| Timestamp::from_micros(now.as_micros().saturating_add(l))),
            revoked_at: None,
            last_used_at: None,
            revoked_reason: None,
            predecessor_id: Some(self.id),
            successor_id: None,
            retire_on_use: rotation.retire == Retire::FirstUse && rotation.overlap_secs > 0,
            awaiting_pickup: false,
        })
    }
}

/// Longest overlap a rotation may ask for (30 days).
pub const MAX_OVERLAP_SECS: u64 = 30 * 24 * 3600;

/// Overlap when a rotation names none: long enough for an agent polling its
/// self-service endpoint every few minutes, short enough to bound exposure.
pub const DEFAULT_OVERLAP_SECS: u64 = 3600;

/// When the predecessor of a rotation stops working.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retire {
    /// At the end of the overlap.
    OverlapEnd,
    /// The first time the successor authenticates, or at the end of the
    /// overlap if that comes first.
    FirstUse,
}

impl Retire {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Retire::OverlapEnd => "overlap_end",
            Retire::FirstUse => "first_use",
        }
    }
}

impl FromStr for Retire {
    type Err = CredentialError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "overlap_end" => Ok(Retire::OverlapEnd),
            "first_use" => Ok(Retire::FirstUse),
            _ => Err(invalid("retire", format!("`{s}` is not `overlap_end` or `first_use`"))),
        }
    }
}

/// Why a credential was revoked (`revoked_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked by an administrator.
    Manual,
    /// Its rotation's overlap ended, or its successor was used.
    Rotated,
    /// A security event: rotated with no overlap.
    Compromised,
    /// Its agent was retired.
    AgentRetired,
}

impl Revocation {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Revocation::Manual => "manual",
            Revocation::Rotated => "rotated",
            Revocation::Compromised => "compromised",
            Revocation::AgentRetired => "agent_retired",
        }
    }
}

/// How a credential is rotated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// How long predecessor and successor both work (0: the predecessor is
    /// revoked at once).
    pub overlap_secs: u64,
    /// When the predecessor stops working within the overlap.
    pub retire: Retire,
}

impl Rotation {
    /// A rotation, its overlap checked (`None`: the default overlap).
    pub fn new(overlap_secs: Option<u64>, retire: Retire) -> Result<Rotation, CredentialError> {
        let overlap_secs = overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if overlap_secs > MAX_OVERLAP_SECS {
            return Err(invalid("overlap", "must be at most 30 days"));
        }
        Ok(Rotation { overlap_secs, retire })
    }

    /// A security event's rotation: the predecessor dies at once.
    pub fn immediate() -> Rotation {
        Rotation {
            overlap_secs: 0,
            retire: Retire::OverlapEnd,
        }
    }
}

/// Why a credential cannot be rotated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// Revoked or expired.
    #[error("the credential is revoked or expired; issue a new one instead")]
    NotUsable,
    /// Already has a successor.
    #[error("the credential was already rotated; its successor is {0} (rotate that one)")]
    AlreadyRotated(Uuid),
}

/// The rotation lineage `id` belongs to, oldest first: its predecessors and
/// its successors, followed through `credentials` (an agent's credentials).
pub fn lineage(credentials: &[Credential], id: Uuid) -> Vec<Credential> {
    let by_id = |x: Uuid| credentials.iter().find(|c| c.id == x);
    let Some(start) = by_id(id) else {
        return Vec::new();
    };
    let mut back = vec![start.clone()];
    // Bounded by the number of credentials: a corrupt cycle cannot loop.
    while let Some(p) = back.last().and_then(|c| c.predecessor_id).and_then(by_id) {
        if back.len() > credentials.len() || back.iter().any(|c| c.id == p.id) {
            break;
        }
        back.push(p.clone());
    }
    back.reverse();
    while let Some(n) = back.last().and_then(|c| c.successor_id).and_then(by_id) {
        if back.len() > credentials.len() || back.iter().any(|c| c.id == n.id) {
            break;
        }
        back.push(n.clone());
    }
    back
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
            revoked_reason: None,
            predecessor_id: None,
            successor_id: None,
            retire_on_use: false,
            awaiting_pickup: false,
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
    fn successors_keep_kind_scopes_and_lifetime() {
        let mut n = new(Kind::ApiKey);
        n.ttl_seconds = Some(600);
        let c = build(n).unwrap();
        let now = Timestamp::from_micros(1_000_000_000);
        let r = Rotation::new(Some(60), Retire::FirstUse).unwrap();
        let s = c.successor(Uuid::from_u128(2), None, None, &r, now, "t").unwrap();
        assert_eq!(
            (s.kind, &s.scopes, s.predecessor_id),
            (Kind::ApiKey, &c.scopes, Some(c.id))
        );
        assert_eq!(s.expires_at, Some(now.plus_secs(600)));
        assert!(s.retire_on_use);
        // No overlap: nothing to retire on first use.
        assert!(
            !c.successor(Uuid::from_u128(3), None, None, &Rotation::immediate(), now, "t")
                .unwrap()
                .retire_on_use
        );
        assert!(
            c.successor(Uuid::from_u128(4), None, Some(serde_json::json!({})), &r, now, "t")
                .is_err()
        );
        assert!(Rotation::new(Some(MAX_OVERLAP_SECS + 1), Retire::OverlapEnd).is_err());
        assert_eq!("first_use".parse::<Retire>(), Ok(Retire::FirstUse));
        assert!("soon".parse::<Retire>().is_err());
    }

    #[test]
    fn rotatable_only_when_usable_and_not_yet_rotated() {
        let mut c = build(new(Kind::ClientSecret)).unwrap();
        let now = Timestamp::from_micros(1);
        assert_eq!(c.check_rotatable(now), Ok(()));
        c.successor_id = Some(Uuid::from_u128(9));
        assert_eq!(
            c.check_rotatable(now),
            Err(RotationError::AlreadyRotated(Uuid::from_u128(9)))
        );
        c.successor_id = None;
        c.revoked_at = Some(now);
        assert_eq!(c.check_rotatable(now), Err(RotationError::NotUsable));
    }

    #[test]
    fn lineage_runs_oldest_first_from_any_member() {
        let base = build(new(Kind::ClientSecret)).unwrap();
        let mk = |n: u128, p: Option<u128>, s: Option<u128>| Credential {
            id: Uuid::from_u128(n),
            predecessor_id: p.map(Uuid::from_u128),
            successor_id: s.map(Uuid::from_u128),
            ..base.clone()
        };
        let all = vec![
            mk(3, Some(2), None),
            mk(1, None, Some(2)),
            mk(2, Some(1), Some(3)),
            mk(7, None, None),
        ];
        for start in [1, 2, 3] {
            let ids: Vec<u128> = lineage(&all, Uuid::from_u128(start))
                .iter()
                .map(|c| c.id.as_u128())
                .collect();
            assert_eq!(ids, vec![1, 2, 3]);
        }
        assert_eq!(lineage(&all, Uuid::from_u128(7)).len(), 1);
        assert!(lineage(&all, Uuid::from_u128(8)).is_empty());
        // A corrupt cycle ends.
        let cycle = vec![mk(1, Some(2), Some(2)), mk(2, Some(1), Some(1))];
        assert!(lineage(&cycle, Uuid::from_u128(1)).len() <= 2);
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
