//! RFC 8693 token exchange: the request's token parameters and what a
//! subject token says, apart from signature checks and store lookups (the
//! caller verifies the token first: one of ours, or one signed by a trusted
//! issuer's configured key).

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Timestamp;
use crate::access_token::{Checked, LEEWAY_SECS};
use crate::delegation::{self, Delegator};

/// RFC 8693 §2.1: the token exchange grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OAuth access token.
pub const TOKEN_TYPE_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A token exchange request's token parameters, as sent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Params<'a> {
    /// `subject_token`.
    pub subject_token: Option<&'a str>,
    /// `subject_token_type`.
    pub subject_token_type: Option<&'a str>,
    /// `actor_token`.
    pub actor_token: Option<&'a str>,
    /// `actor_token_type`.
    pub actor_token_type: Option<&'a str>,
    /// `requested_token_type`.
    pub requested_token_type: Option<&'a str>,
}

/// The tokens of an acceptable request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tokens<'a> {
    /// The subject token.
    pub subject: &'a str,
    /// The actor token, if sent (it may only confirm the calling agent).
    pub actor: Option<&'a str>,
}

/// Why a request's token parameters are refused (`invalid_request`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter is missing.
    #[error("`{0}` is required for token exchange (RFC 8693 §2.1)")]
    Missing(&'static str),
    /// A subject token type we do not take.
    #[error("`subject_token_type` must be `{TOKEN_TYPE_ACCESS}` or `{TOKEN_TYPE_JWT}`")]
    SubjectType,
    /// A requested token type we do not issue.
    #[error("only access tokens are issued (`requested_token_type` {TOKEN_TYPE_ACCESS})")]
    RequestedType,
    /// `actor_token_type` alone.
    #[error("`actor_token_type` without `actor_token`")]
    ActorTypeAlone,
}

impl<'a> Params<'a> {
    /// RFC 8693 §2.1: `subject_token` and `subject_token_type` are required,
    /// `actor_token_type` goes with `actor_token` and only with it; we take
    /// access tokens and JWTs as subjects and issue access tokens only.
    pub fn check(&self) -> Result<Tokens<'a>, ParamError> {
        let subject = self.subject_token.ok_or(ParamError::Missing("subject_token"))?;
        let subject_type = self
            .subject_token_type
            .ok_or(ParamError::Missing("subject_token_type"))?;
        if subject_type != TOKEN_TYPE_ACCESS && subject_type != TOKEN_TYPE_JWT {
            return Err(ParamError::SubjectType);
        }
        if self.requested_token_type.is_some_and(|t| t != TOKEN_TYPE_ACCESS) {
            return Err(ParamError::RequestedType);
        }
        let actor = match (self.actor_token, self.actor_token_type) {
            (Some(t), Some(_)) => Some(t),
            (Some(_), None) => return Err(ParamError::Missing("actor_token_type")),
            (None, Some(_)) => return Err(ParamError::ActorTypeAlone),
            (None, None) => None,
        };
        Ok(Tokens { subject, actor })
    }
}

/// Why a subject token is refused (`invalid_grant`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Its `act` chain is malformed or too deep.
    #[error("{0}")]
    Act(#[from] delegation::DelegationError),
    /// The party holding the authority now is not an agent id.
    #[error("its current holder is not an agent")]
    HolderNotAgent,
    /// No `exp`.
    #[error("no `exp`")]
    NoExpiry,
    /// Past `exp` (with leeway).
    #[error("expired")]
    Expired,
    /// Before `nbf` or `iat` (with leeway).
    #[error("not valid yet")]
    NotYetValid,
    /// `aud` does not name the audience the trusted issuer was configured with.
    #[error("its `aud` must name `{0}`")]
    Audience(String),
    /// An external token that is itself delegated.
    #[error("an external token with `act` cannot start a delegation")]
    Delegated,
    /// No `sub`.
    #[error("no `sub`")]
    NoSubject,
    /// RFC 8693 §4.4: `may_act` names someone else.
    #[error("its `may_act` does not name this agent")]
    MayAct,
}

/// What a subject token says, once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// `sub`: the party the chain starts with.
    pub sub: String,
    /// Who holds the authority now and delegates at this hop: the current
    /// actor of a delegated token, else the subject itself.
    pub holder: Delegator,
    /// Its scopes (`None`: an external token that names none, bounded only
    /// by the delegation and the agent's grants).
    pub scopes: Option<BTreeSet<String>>,
    /// Its `act` chain.
    pub act: Option<Value>,
    /// The delegations it was issued through.
    pub delegations: Vec<Uuid>,
    /// Its `exp`.
    pub expires_at: Timestamp,
    /// RFC 8693 §4.4 `may_act`.
    pub may_act: Option<Value>,
}

/// `text` claim `name`, if it is a non-empty string.
fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str).filter(|v| !v.is_empty())
}

/// The `iss` of a token not of ours, to find the trusted issuer whose key
/// must verify it.
pub fn issuer(claims: &Map<String, Value>) -> Option<&str> {
    text(claims, "iss")
}

impl Subject {
    /// One of our access tokens (checked and still active): the holder is
    /// its current actor, or its subject if it is not delegated, and must be
    /// an agent.
    pub fn ours(claims: &Map<String, Value>, c: Checked) -> Result<Self, SubjectError> {
        let actors = delegation::actors(c.act.as_ref())?;
        let holder_id = actors.first().unwrap_or(&c.sub);
        let holder = Uuid::parse_str(holder_id)
            .map(|id| Delegator::Agent { id })
            .map_err(|_| SubjectError::HolderNotAgent)?;
        Ok(Subject {
            sub: c.sub,
            holder,
            scopes: Some(c.scopes),
            act: c.act,
            delegations: c.delegations,
            expires_at: c.expires_at,
            may_act: claims.get("may_act").cloned(),
        })
    }

    /// A token of trusted issuer `iss`, whose signature checked out with one
    /// of its configured keys: `exp` present and not past, `nbf`/`iat` (if
    /// any) reached, `aud` naming `audience` when the issuer was configured
    /// with one, not itself delegated, a `sub`; its scopes from `scope` (a
    /// string) or `scp` (an array), if it names any.
    pub fn external(
        iss: &str,
        claims: &Map<String, Value>,
        audience: Option<&str>,
        now: Timestamp,
    ) -> Result<Self, SubjectError> {
        let now_s = now.as_micros().div_euclid(1_000_000);
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(SubjectError::NoExpiry)?;
        if now_s >= exp.saturating_add(LEEWAY_SECS) {
            return Err(SubjectError::Expired);
        }
        for name in ["nbf", "iat"] {
            if claims
                .get(name)
                .and_then(Value::as_i64)
                .is_some_and(|t| t > now_s.saturating_add(LEEWAY_SECS))
            {
                return Err(SubjectError::NotYetValid);
            }
        }
        if let Some(aud) = audience {
            let named = match claims.get("aud") {
                Some(Value::String(a)) => a == aud,
                Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(aud)),
                _ => false,
            };
            if !named {
                return Err(SubjectError::Audience(aud.to_owned()));
            }
        }
        if claims.contains_key("act") {
            return Err(SubjectError::Delegated);
        }
        let sub = text(claims, "sub").ok_or(SubjectError::NoSubject)?.to_owned();
        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => Some(s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect()),
            (_, Some(Value::Array(a))) => Some(a.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
            _ => None,
        };
        Ok(Subject {
            holder: Delegator::Human {
                issuer: iss.to_owned(),
                sub: sub.clone(),
            },
            sub,
            scopes,
            act: None,
            delegations: Vec::new(),
            expires_at: Timestamp::from_micros(exp.saturating_mul(1_000_000)),
            may_act: claims.get("may_act").cloned(),
        })
    }

    /// RFC 8693 §4.4: if the token says who may act for its subject
    /// (`may_act`), it must name agent `actor`.
    pub fn may_be_acted_for_by(&self, actor: &str) -> Result<(), SubjectError> {
        match &self.may_act {
            Some(m) if m.get("sub").and_then(Value::as_str) != Some(actor) => Err(SubjectError::MayAct),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000;
    const AGENT: &str = "0190b6a0-0000-7000-8000-000000000001";

    fn now() -> Timestamp {
        Timestamp::from_micros(NOW * 1_000_000)
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn params<'a>(st: Option<&'a str>, at: Option<&'a str>, att: Option<&'a str>) -> Params<'a> {
        Params {
            subject_token: Some("s"),
            subject_token_type: st,
            actor_token: at,
            actor_token_type: att,
            requested_token_type: None,
        }
    }

    #[test]
    fn request_parameters() {
        let ok = params(Some(TOKEN_TYPE_JWT), Some("a"), Some(TOKEN_TYPE_ACCESS)).check();
        assert_eq!(
            ok,
            Ok(Tokens {
                subject: "s",
                actor: Some("a")
            })
        );
        assert_eq!(Params::default().check(), Err(ParamError::Missing("subject_token")));
        assert_eq!(
            params(None, None, None).check(),
            Err(ParamError::Missing("subject_token_type"))
        );
        assert_eq!(params(Some("urn:x"), None, None).check(), Err(ParamError::SubjectType));
        assert_eq!(
            params(Some(TOKEN_TYPE_ACCESS), Some("a"), None).check(),
            Err(ParamError::Missing("actor_token_type"))
        );
        assert_eq!(
            params(Some(TOKEN_TYPE_ACCESS), None, Some("t")).check(),
            Err(ParamError::ActorTypeAlone)
        );
        let mut p = params(Some(TOKEN_TYPE_ACCESS), None, None);
        p.requested_token_type = Some(TOKEN_TYPE_JWT);
        assert_eq!(p.check(), Err(ParamError::RequestedType));
        p.requested_token_type = Some(TOKEN_TYPE_ACCESS);
        assert!(p.check().is_ok());
        assert_eq!(
            ParamError::Missing("subject_token").to_string(),
            "`subject_token` is required for token exchange (RFC 8693 §2.1)"
        );
    }

    fn checked(sub: &str, act: Option<Value>) -> Checked {
        Checked {
            jti: "j".into(),
            sub: sub.into(),
            client_id: AGENT.into(),
            expires_at: now(),
            issued_at: now(),
            act,
            delegations: Vec::new(),
            scopes: BTreeSet::from(["read".to_owned()]),
        }
    }

    #[test]
    fn our_tokens_hold_by_the_current_actor() {
        let other = "0190b6a0-0000-7000-8000-000000000002";
        let s = Subject::ours(&Map::new(), checked(AGENT, None)).unwrap();
        assert_eq!(
            s.holder,
            Delegator::Agent {
                id: Uuid::parse_str(AGENT).unwrap()
            }
        );
        let act = json!({ "sub": other, "act": { "sub": AGENT } });
        let s = Subject::ours(
            &obj(json!({ "may_act": { "sub": AGENT } })),
            checked("alice", Some(act)),
        )
        .unwrap();
        assert_eq!(
            s.holder,
            Delegator::Agent {
                id: Uuid::parse_str(other).unwrap()
            }
        );
        assert_eq!(s.sub, "alice");
        assert!(s.may_be_acted_for_by(AGENT).is_ok());
        assert_eq!(s.may_be_acted_for_by(other), Err(SubjectError::MayAct));
        assert_eq!(
            Subject::ours(&Map::new(), checked("alice", None)),
            Err(SubjectError::HolderNotAgent)
        );
    }

    fn external(c: Value, aud: Option<&str>) -> Result<Subject, SubjectError> {
        Subject::external("https://login.example", &obj(c), aud, now())
    }

    #[test]
    fn external_tokens() {
        let s = external(json!({ "sub": "alice", "exp": NOW + 60, "scope": "a  b" }), None).unwrap();
        assert_eq!(
            s.holder,
            Delegator::Human {
                issuer: "https://login.example".into(),
                sub: "alice".into()
            }
        );
        assert_eq!(s.scopes, Some(BTreeSet::from(["a".to_owned(), "b".to_owned()])));
        assert_eq!(s.expires_at, Timestamp::from_micros((NOW + 60) * 1_000_000));
        assert!(
            s.may_be_acted_for_by(AGENT).is_ok(),
            "no `may_act`: anyone delegated to"
        );
        let scp = external(json!({ "sub": "alice", "exp": NOW, "scp": ["x"] }), None).unwrap();
        assert_eq!(scp.scopes, Some(BTreeSet::from(["x".to_owned()])));
        let none = external(json!({ "sub": "alice", "exp": NOW }), None).unwrap();
        assert_eq!(none.scopes, None);
        let cases = [
            (json!({ "sub": "alice" }), None, SubjectError::NoExpiry),
            (json!({ "sub": "alice", "exp": NOW - 30 }), None, SubjectError::Expired),
            (
                json!({ "sub": "alice", "exp": NOW + 60, "nbf": NOW + 31 }),
                None,
                SubjectError::NotYetValid,
            ),
            (
                json!({ "sub": "alice", "exp": NOW + 60, "iat": NOW + 31 }),
                None,
                SubjectError::NotYetValid,
            ),
            (
                json!({ "sub": "alice", "exp": NOW + 60, "aud": ["x"] }),
                Some("api"),
                SubjectError::Audience("api".into()),
            ),
            (
                json!({ "sub": "alice", "exp": NOW + 60, "act": {} }),
                None,
                SubjectError::Delegated,
            ),
            (json!({ "sub": "", "exp": NOW + 60 }), None, SubjectError::NoSubject),
        ];
        for (c, aud, want) in cases {
            assert_eq!(external(c.clone(), aud), Err(want), "{c}");
        }
        assert!(
            external(
                json!({ "sub": "alice", "exp": NOW + 60, "aud": ["x", "api"] }),
                Some("api")
            )
            .is_ok()
        );
        assert_eq!(issuer(&obj(json!({ "iss": "" }))), None);
    }

    proptest! {
        /// Whatever external token is accepted has not expired, names a
        /// subject and keeps only non-empty scope tokens.
        #[test]
        fn accepted_external_tokens(exp in any::<i64>(), sub in ".{0,8}", scope in "[a-z ]{0,16}") {
            if let Ok(s) = external(json!({ "sub": sub, "exp": exp, "scope": scope }), None) {
                prop_assert!(exp.saturating_add(LEEWAY_SECS) > NOW);
                prop_assert!(!s.sub.is_empty());
                prop_assert!(s.scopes.unwrap_or_default().iter().all(|t| !t.is_empty() && !t.contains(' ')));
            }
        }
    }
}
