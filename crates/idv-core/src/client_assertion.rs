//! RFC 7523 client assertions: the claim rules a signed JWT must pass to
//! authenticate a client (`private_key_jwt`), apart from its signature,
//! which the caller verifies with the client's registered keys.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Timestamp;
use crate::access_token::LEEWAY_SECS;

/// RFC 7521 §4.2 / RFC 7523 §2.2: the client assertion type for JWTs.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest client assertion lifetime we accept (bounds the replay cache).
pub const MAX_LIFETIME_SECS: i64 = 600;

/// Why an assertion's claims are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// No `sub`.
    #[error("no `sub`")]
    NoSubject,
    /// RFC 7523 §3: `iss` must be the client id.
    #[error("`iss` must equal `sub` (the client id)")]
    IssuerNotSubject,
    /// The request's `client_id` names another client.
    #[error("`client_id` does not match the assertion's `sub`")]
    ClientIdMismatch,
    /// `sub` is not a client id of ours at all (answered like any failed
    /// client authentication, without saying why).
    #[error("`sub` is not a client id")]
    NotClientId,
    /// `aud` names neither the issuer nor its token endpoint.
    #[error("`aud` must be this issuer or its token endpoint")]
    Audience,
    /// No `exp`.
    #[error("no `exp`")]
    NoExpiry,
    /// Past `exp` (with leeway).
    #[error("expired")]
    Expired,
    /// `exp` further away than [`MAX_LIFETIME_SECS`].
    #[error("`exp` is more than 10 minutes away")]
    TooLong,
    /// Before `nbf` (with leeway).
    #[error("not valid yet")]
    NotYetValid,
    /// No `jti` (or an empty one).
    #[error("no `jti`")]
    NoJti,
}

/// What an acceptable assertion says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assertion {
    /// `sub`: the client (agent) id.
    pub client_id: Uuid,
    /// `jti`, to consume once.
    pub jti: String,
    /// `exp`, in seconds since the epoch.
    pub exp: i64,
}

impl Assertion {
    /// Until when its `jti` must be remembered: after that the assertion
    /// fails the `exp` check anyway (RFC 7523 §3: `jti` replay).
    pub fn replay_until(&self) -> Timestamp {
        Timestamp::from_micros(self.exp.saturating_add(LEEWAY_SECS).saturating_mul(1_000_000))
    }
}

/// A token's `aud` (RFC 7519 §4.1.3: a string or an array of strings).
pub fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// RFC 7523 §3: `iss` = `sub` = the client id (and the request's
/// `client_id`, if it sent one), `aud` names us (one of `issuers` or its
/// token endpoint), `exp` present and at most [`MAX_LIFETIME_SECS`] away,
/// `nbf` (if any) reached, `jti` present. Checked in this order, so the
/// first rule broken is the one reported.
pub fn check(
    claims: &Map<String, Value>,
    client_id: Option<&str>,
    issuers: &[String],
    now: Timestamp,
) -> Result<Assertion, AssertionError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let sub = text("sub").ok_or(AssertionError::NoSubject)?;
    if text("iss") != Some(sub) {
        return Err(AssertionError::IssuerNotSubject);
    }
    if client_id.is_some_and(|c| c != sub) {
        return Err(AssertionError::ClientIdMismatch);
    }
    let id = Uuid::parse_str(sub).map_err(|_| AssertionError::NotClientId)?;
    let names_us = audiences(claims).iter().any(|a| {
        issuers
            .iter()
            .any(|u| u == a || a.strip_prefix(u.as_str()) == Some("/oauth2/token"))
    });
    if !names_us {
        return Err(AssertionError::Audience);
    }
    let now_s = now.as_micros().div_euclid(1_000_000);
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(AssertionError::NoExpiry)?;
    if exp.saturating_add(LEEWAY_SECS) <= now_s {
        return Err(AssertionError::Expired);
    }
    if exp.saturating_sub(now_s) > MAX_LIFETIME_SECS {
        return Err(AssertionError::TooLong);
    }
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now_s.saturating_add(LEEWAY_SECS))
    {
        return Err(AssertionError::NotYetValid);
    }
    let jti = text("jti").filter(|j| !j.is_empty()).ok_or(AssertionError::NoJti)?;
    Ok(Assertion {
        client_id: id,
        jti: jti.to_owned(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const ISS: &str = "https://idv.example";
    const NOW: i64 = 1_700_000_000;
    const ID: &str = "0190b6a0-0000-7000-8000-000000000001";

    fn issuers() -> Vec<String> {
        vec![ISS.to_owned(), format!("{ISS}/t/default")]
    }

    fn now() -> Timestamp {
        Timestamp::from_micros(NOW * 1_000_000)
    }

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn good() -> Map<String, Value> {
        claims(json!({
            "iss": ID, "sub": ID, "aud": format!("{ISS}/oauth2/token"),
            "exp": NOW + 60, "iat": NOW, "jti": "j1",
        }))
    }

    fn with(name: &str, v: Value) -> Map<String, Value> {
        let mut c = good();
        c.insert(name.into(), v);
        c
    }

    fn without(name: &str) -> Map<String, Value> {
        let mut c = good();
        c.remove(name);
        c
    }

    #[test]
    fn accepts_a_good_assertion() {
        let a = check(&good(), Some(ID), &issuers(), now()).unwrap();
        assert_eq!(a.client_id.to_string(), ID);
        assert_eq!(a.jti, "j1");
        assert_eq!(a.replay_until(), Timestamp::from_micros((NOW + 90) * 1_000_000));
        // The issuer itself, of any of the tenant's URLs, as a string or in an array.
        for aud in [json!(ISS), json!(["x", format!("{ISS}/t/default/oauth2/token")])] {
            assert!(check(&with("aud", aud), None, &issuers(), now()).is_ok());
        }
    }

    #[test]
    fn refusals_in_order() {
        let cases = [
            (without("sub"), AssertionError::NoSubject),
            (with("iss", json!("someone")), AssertionError::IssuerNotSubject),
            (with("sub", json!("not-a-uuid")), AssertionError::IssuerNotSubject),
            (with("aud", json!("https://other.example")), AssertionError::Audience),
            (
                with("aud", json!(format!("{ISS}/oauth2/tokens"))),
                AssertionError::Audience,
            ),
            (without("aud"), AssertionError::Audience),
            (without("exp"), AssertionError::NoExpiry),
            (with("exp", json!(NOW - 30)), AssertionError::Expired),
            (with("exp", json!(NOW + 601)), AssertionError::TooLong),
            (with("nbf", json!(NOW + 31)), AssertionError::NotYetValid),
            (without("jti"), AssertionError::NoJti),
            (with("jti", json!("")), AssertionError::NoJti),
        ];
        for (c, want) in cases {
            assert_eq!(check(&c, None, &issuers(), now()), Err(want.clone()), "{want}");
        }
        let mut c = with("sub", json!("x"));
        c.insert("iss".into(), json!("x"));
        assert_eq!(check(&c, None, &issuers(), now()), Err(AssertionError::NotClientId));
        assert_eq!(
            check(&good(), Some("other"), &issuers(), now()),
            Err(AssertionError::ClientIdMismatch)
        );
        // Within the leeway.
        assert!(check(&with("exp", json!(NOW - 29)), None, &issuers(), now()).is_ok());
        assert!(check(&with("nbf", json!(NOW + 30)), None, &issuers(), now()).is_ok());
    }

    proptest! {
        /// Never panics on extreme times; whatever is accepted expires within
        /// the bound and its `jti` is remembered at least until then.
        #[test]
        fn times_are_bounded(exp in any::<i64>(), nbf in proptest::option::of(any::<i64>()), now_s in -1_i64 << 40..1_i64 << 40) {
            let mut c = with("exp", json!(exp));
            if let Some(n) = nbf {
                c.insert("nbf".into(), json!(n));
            }
            let now = Timestamp::from_micros(now_s * 1_000_000);
            if let Ok(a) = check(&c, None, &issuers(), now) {
                prop_assert!(a.exp > now_s - LEEWAY_SECS && a.exp <= now_s + MAX_LIFETIME_SECS);
                prop_assert!(a.replay_until().as_micros() >= a.exp * 1_000_000);
            }
        }
    }
}
