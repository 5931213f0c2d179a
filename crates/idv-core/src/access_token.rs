//! JWT access tokens (RFC 9068): the claims we issue and the checks every
//! token we accept must pass, after its signature has been verified.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Timestamp;
use crate::jose::Header;

/// The `typ` header of our access tokens (RFC 9068 §2.1).
pub const TYP: &str = "at+jwt";

/// Clock skew tolerated for `nbf` and `iat` of our tokens (nodes' clocks
/// differ a little), and for `exp` only of what other parties sign (client
/// assertions, trusted issuers' tokens): our own tokens die at `exp`.
pub const LEEWAY_SECS: i64 = 30;

/// Everything an access token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// `iss`: the tenant's issuer URL.
    pub issuer: String,
    /// `client_id`: the agent the token was issued to.
    pub agent_id: Uuid,
    /// `sub`: the agent itself (RFC 9068 §2.2: a client acting on its own
    /// behalf is the subject), or, for a delegated token, whoever the chain
    /// starts with (RFC 8693 §4.1).
    pub subject: String,
    /// RFC 8693 `act`: the current actor, prior actors nested inside.
    pub act: Option<Value>,
    /// The delegations the token was issued through, oldest first; revoking
    /// any of them makes the token inactive.
    pub delegations: Vec<Uuid>,
    /// The delegation's task, if it named one.
    pub task: Option<Value>,
    /// RFC 9449 §6: the thumbprint of the DPoP key the token is bound to.
    pub cnf_jkt: Option<String>,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `scope`.
    pub scopes: BTreeSet<String>,
    /// RFC 9396 `authorization_details`.
    pub authorization_details: Option<Vec<Value>>,
    /// `jti`.
    pub jti: Uuid,
    /// `iat`.
    pub issued_at: Timestamp,
    /// `exp`.
    pub expires_at: Timestamp,
    /// The agent's SPIFFE-style URI.
    pub spiffe_id: String,
    /// The agent's accountable owner.
    pub owner: String,
    /// The agent's environment.
    pub environment: Option<String>,
    /// The tenant's name.
    pub tenant: String,
}

fn secs(t: Timestamp) -> i64 {
    t.as_micros().div_euclid(1_000_000)
}

impl AccessToken {
    /// The JWT claims set.
    pub fn claims(&self) -> Value {
        let mut c = json!({
            "iss": self.issuer,
            "sub": self.subject,
            "client_id": self.agent_id.to_string(),
            // RFC 7519 §4.1.3: a single audience may be a string.
            "aud": match self.audiences.as_slice() {
                [one] => Value::String(one.clone()),
                many => json!(many),
            },
            "exp": secs(self.expires_at),
            "iat": secs(self.issued_at),
            "nbf": secs(self.issued_at),
            "jti": self.jti.to_string(),
            "spiffe_id": self.spiffe_id,
            "owner": self.owner,
            "tenant": self.tenant,
        });
        if let Value::Object(m) = &mut c {
            if !self.scopes.is_empty() {
                let scope: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
                m.insert("scope".into(), Value::String(scope.join(" ")));
            }
            if let Some(env) = &self.environment {
                m.insert("environment".into(), Value::String(env.clone()));
            }
            if let Some(d) = &self.authorization_details {
                m.insert("authorization_details".into(), Value::Array(d.clone()));
            }
            if let Some(a) = &self.act {
                m.insert("act".into(), a.clone());
            }
            if !self.delegations.is_empty() {
                m.insert("delegations".into(), json!(self.delegations));
            }
            if let Some(t) = &self.task {
                m.insert("task".into(), t.clone());
            }
            if let Some(jkt) = &self.cnf_jkt {
                m.insert("cnf".into(), json!({ "jkt": jkt }));
            }
        }
        c
    }
}

/// Why a token is not acceptable.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Wrong or missing `typ` header.
    #[error("the token is not a JWT access token (`typ` must be `at+jwt`)")]
    Type,
    /// `iss` is not the expected issuer.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` or `iat`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is missing or of the wrong type.
    #[error("the token lacks a valid `{0}` claim")]
    Claim(&'static str),
}

/// The facts of an accepted token that callers act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// `jti`.
    pub jti: String,
    /// `sub`.
    pub sub: String,
    /// `client_id`.
    pub client_id: String,
    /// `exp`.
    pub expires_at: Timestamp,
    /// When it was issued, to the millisecond where the `jti` tells (see
    /// [`issued_at`]).
    pub issued_at: Timestamp,
    /// `act`, if delegated.
    pub act: Option<Value>,
    /// `delegations`, if delegated.
    pub delegations: Vec<Uuid>,
    /// `scope`, split.
    pub scopes: BTreeSet<String>,
}

fn int(claims: &Map<String, Value>, name: &'static str) -> Result<i64, TokenError> {
    claims.get(name).and_then(Value::as_i64).ok_or(TokenError::Claim(name))
}

fn string<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, TokenError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::Claim(name))
}

/// When a token of ours was issued: `iat` has whole seconds only, but our
/// `jti` is a UUIDv7 made by the same clock in the same step, whose time part
/// is the instant to the millisecond. Its milliseconds are used when they
/// fall within the `iat` second; otherwise (a `jti` that is not ours, or a
/// clock tick between the two readings) the start of the `iat` second, the
/// earliest the token can have been issued. Only for tokens whose signature
/// is ours: the answer is never later than the real instant of issue.
pub fn issued_at(iat: i64, jti: &str) -> Timestamp {
    let start = iat.saturating_mul(1_000_000);
    let ms = Uuid::parse_str(jti)
        .ok()
        .filter(|u| u.get_version_num() == 7)
        .and_then(|u| u.get_timestamp())
        .map(|t| {
            let (secs, nanos) = t.to_unix();
            i64::try_from(secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000)
                .saturating_add(i64::from(nanos / 1000))
        });
    match ms {
        Some(m) if m >= start && m < start.saturating_add(1_000_000) => Timestamp::from_micros(m),
        _ => Timestamp::from_micros(start),
    }
}

/// Checks a signature-verified token's header and registered claims (RFC 9068
/// §4): `typ`, `iss` (one of `issuers`), `exp`, `nbf`, `iat`, and the
/// presence of `sub`, `client_id`, `jti` and `aud`.
pub fn check(
    header: &Header,
    claims: &Map<String, Value>,
    issuers: &[&str],
    now: Timestamp,
) -> Result<Checked, TokenError> {
    // RFC 9068 §4: `typ` is `at+jwt` or `application/at+jwt` (media types
    // compare case-insensitively, RFC 7515 §4.1.9).
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(TYP) || t.eq_ignore_ascii_case("application/at+jwt"));
    if !typ_ok {
        return Err(TokenError::Type);
    }
    let iss = string(claims, "iss")?;
    if !issuers.contains(&iss) {
        return Err(TokenError::Issuer);
    }
    let now_s = secs(now);
    let exp = int(claims, "exp")?;
    // RFC 7519 §4.1.4: not accepted on or after `exp`. These are our own
    // tokens, judged by our own clock: no leeway extends their life.
    // (`nbf`/`iat` keep one, for clock skew between nodes; it never makes a
    // token live longer.)
    if now_s >= exp {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().ok_or(TokenError::Claim("nbf"))?;
        if nbf > now_s.saturating_add(LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
    }
    let iat = int(claims, "iat")?;
    if iat > now_s.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::NotYetValid);
    }
    match claims.get("aud") {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {}
        _ => return Err(TokenError::Claim("aud")),
    }
    let delegations = match claims.get("delegations") {
        None => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or(TokenError::Claim("delegations"))?,
        Some(_) => return Err(TokenError::Claim("delegations")),
    };
    let scopes = match claims.get("scope") {
        None => BTreeSet::new(),
        Some(Value::String(s)) => s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        Some(_) => return Err(TokenError::Claim("scope")),
    };
    let jti = string(claims, "jti")?;
    Ok(Checked {
        issued_at: issued_at(iat, jti),
        jti: jti.to_owned(),
        sub: string(claims, "sub")?.to_owned(),
        client_id: string(claims, "client_id")?.to_owned(),
        expires_at: Timestamp::from_micros(exp.saturating_mul(1_000_000)),
        act: claims.get("act").cloned(),
        delegations,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{Alg, KeyPair, decode};

    fn token() -> AccessToken {
        AccessToken {
            issuer: "https://idv.example/t/acme".into(),
            agent_id: Uuid::nil(),
            subject: Uuid::nil().to_string(),
            act: None,
            delegations: vec![],
            task: None,
            cnf_jkt: None,
            audiences: vec!["https://api.example".into()],
            scopes: ["a", "b"].map(String::from).into(),
            authorization_details: None,
            jti: Uuid::nil(),
            issued_at: Timestamp::from_micros(1_000_000_000_000),
            expires_at: Timestamp::from_micros(1_000_300_000_000),
            spiffe_id: "spiffe://idv.example/t/acme/agent/0".into(),
            owner: "alice".into(),
            environment: Some("prod".into()),
            tenant: "acme".into(),
        }
    }

    fn signed(claims: &Value, typ: &str) -> (Header, Map<String, Value>) {
        let k = KeyPair::generate(Alg::EdDSA);
        let jws = decode(&k.sign("k1", typ, claims)).unwrap();
        jws.verify(&k.public_key()).unwrap();
        (jws.header, jws.claims)
    }

    #[test]
    fn issued_claims_check() {
        let t = token();
        let (h, c) = signed(&t.claims(), TYP);
        assert_eq!(c["scope"], "a b");
        assert_eq!(c["aud"], "https://api.example");
        let ok = check(&h, &c, &[&t.issuer], Timestamp::from_micros(1_000_100_000_000)).unwrap();
        assert_eq!(ok.sub, Uuid::nil().to_string());
        assert_eq!(ok.expires_at, t.expires_at);
    }

    #[test]
    fn dead_from_exp_on() {
        let t = token();
        let (h, c) = signed(&t.claims(), TYP);
        let just_before = Timestamp::from_micros(t.expires_at.as_micros() - 1);
        assert!(check(&h, &c, &[&t.issuer], just_before).is_ok());
        assert_eq!(
            check(&h, &c, &[&t.issuer], t.expires_at),
            Err(TokenError::Expired),
            "no leeway for our own tokens"
        );
    }

    #[test]
    fn issuance_instant_from_the_jti() {
        let iat = 1_000_000_i64;
        let v7 = |ms: u64| {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                u32::try_from(ms % 1000).unwrap() * 1_000_000,
            );
            Uuid::new_v7(ts).to_string()
        };
        assert_eq!(
            issued_at(iat, &v7(1_000_000_250)),
            Timestamp::from_micros(1_000_000_250_000)
        );
        // Outside the `iat` second, or not a UUIDv7: the start of the second.
        for jti in [v7(1_000_001_000), v7(999_999_999), Uuid::nil().to_string(), "x".into()] {
            assert_eq!(issued_at(iat, &jti), Timestamp::from_micros(1_000_000_000_000), "{jti}");
        }
        let mut t = token();
        t.jti = Uuid::parse_str(&v7(1_000_000_123)).unwrap();
        let (h, c) = signed(&t.claims(), TYP);
        let ok = check(&h, &c, &[&t.issuer], Timestamp::from_micros(1_000_100_000_000)).unwrap();
        assert_eq!(ok.issued_at, Timestamp::from_micros(1_000_000_123_000));
    }

    #[test]
    fn refusals() {
        let t = token();
        let during = Timestamp::from_micros(1_000_100_000_000);
        let (h, c) = signed(&t.claims(), "JWT");
        assert_eq!(check(&h, &c, &[&t.issuer], during), Err(TokenError::Type));
        let (h, c) = signed(&t.claims(), TYP);
        assert_eq!(check(&h, &c, &["https://other"], during), Err(TokenError::Issuer));
        let after = Timestamp::from_micros(1_000_400_000_000);
        assert_eq!(check(&h, &c, &[&t.issuer], after), Err(TokenError::Expired));
        let before = Timestamp::from_micros(900_000_000_000);
        assert_eq!(check(&h, &c, &[&t.issuer], before), Err(TokenError::NotYetValid));
        let mut no_jti = c.clone();
        no_jti.remove("jti");
        assert_eq!(check(&h, &no_jti, &[&t.issuer], during), Err(TokenError::Claim("jti")));
        let mut bad_aud = c;
        bad_aud.insert("aud".into(), json!([]));
        assert_eq!(check(&h, &bad_aud, &[&t.issuer], during), Err(TokenError::Claim("aud")));
    }
}
