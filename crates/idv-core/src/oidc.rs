//! OpenID Connect relying-party checks, for people signing in to the
//! console through their company's identity provider: the provider's
//! signing keys (JWKS) and ID token validation as OpenID Connect Core 1.0
//! §3.1.3.7 lays it out. Pure: fetching the documents is the server's.
//!
//! Algorithms: `RS256` (which every OpenID provider must support, Core
//! §15.1; Okta, Entra ID and Ping sign with it by default) and `ES256`.
//! Anything else, `none` and HMAC included, is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::Timestamp;
use crate::jose::{self, Alg, Jwk, PublicKey};

/// How far the provider's clock may be from ours.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// One of the provider's signing keys.
#[derive(Clone, Debug)]
pub enum ProviderKey {
    /// RSA (`RS256`): modulus and exponent, big-endian.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// P-256 (`ES256`).
    Ec(PublicKey),
}

/// The provider's signing keys, by `kid`.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: Vec<(Option<String>, ProviderKey)>,
}

impl Jwks {
    /// Reads a JWKS document (RFC 7517 §5), keeping the signing keys we can
    /// use (`use` absent or `sig`; RSA of 2048 bits or more, or P-256) and
    /// skipping the others.
    pub fn parse(doc: &Value) -> Result<Jwks, String> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("the JWKS has no `keys` array")?;
        let mut out = Vec::new();
        for k in keys {
            let Some(obj) = k.as_object() else { continue };
            if obj.get("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let kid = obj.get("kid").and_then(Value::as_str).map(str::to_owned);
            let key = match obj.get("kty").and_then(Value::as_str) {
                Some("RSA") => {
                    let part = |m: &str| {
                        obj.get(m)
                            .and_then(Value::as_str)
                            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                    };
                    match (part("n"), part("e")) {
                        // At least 2048 bits (RFC 7518 §3.3).
                        (Some(n), Some(e)) if n.len() >= 256 => ProviderKey::Rsa { n, e },
                        _ => continue,
                    }
                }
                Some("EC") => {
                    let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else {
                        continue;
                    };
                    match PublicKey::from_jwk(&jwk) {
                        Ok(pk) if pk.verifies(Alg::ES256) => ProviderKey::Ec(pk),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            out.push((kid, key));
        }
        Ok(Jwks { keys: out })
    }

    /// How many usable keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for `alg`: the one named `kid`, or without a `kid` the only
    /// key of that type.
    fn key(&self, kid: Option<&str>, rsa: bool) -> Option<&ProviderKey> {
        let fits = |k: &ProviderKey| matches!(k, ProviderKey::Rsa { .. }) == rsa;
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(id, k)| id.as_deref() == Some(kid) && fits(k))
                .map(|(_, k)| k),
            None => {
                let mut of_type = self.keys.iter().filter(|(_, k)| fits(k));
                match (of_type.next(), of_type.next()) {
                    (Some((_, k)), None) => Some(k),
                    _ => None,
                }
            }
        }
    }
}

/// What the ID token must show.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    /// The provider's issuer identifier, exactly.
    pub issuer: &'a str,
    /// Our client id.
    pub client_id: &'a str,
    /// The nonce we sent with this authentication request.
    pub nonce: &'a str,
    /// Now.
    pub now: Timestamp,
    /// The claim that carries the person's groups (e.g. `groups`).
    pub groups_claim: &'a str,
}

/// The person an ID token names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    /// `iss`.
    pub issuer: String,
    /// `sub`: who they are at the provider (stable, unlike e-mail).
    pub subject: String,
    /// `email`, if given.
    pub email: Option<String>,
    /// `name`, if given.
    pub name: Option<String>,
    /// Their groups, from the configured claim (none if absent).
    pub groups: Vec<String>,
}

/// Why an ID token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Not a well-formed JWS with JSON claims.
    #[error("the ID token is malformed: {0}")]
    Malformed(String),
    /// An algorithm we do not accept (`none`, HMAC, …).
    #[error("the ID token is signed with `{0}`, which is not accepted (RS256, ES256)")]
    Algorithm(String),
    /// No key of the provider's matches (fetch the JWKS again once: the
    /// provider may have rolled its keys).
    #[error("the ID token's signing key `{0}` is not one of the provider's")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the ID token's signature does not verify")]
    Signature,
    /// `iss` is not the provider's.
    #[error("the ID token was issued by `{0}`, not by the configured provider")]
    Issuer(String),
    /// We are not (the only intended) audience.
    #[error("the ID token is not for this client (`aud`/`azp`)")]
    Audience,
    /// Expired, or issued in the future.
    #[error("the ID token has expired or is not valid yet")]
    Time,
    /// Not the nonce of this sign-in (a replayed or injected token).
    #[error("the ID token's nonce is not this sign-in's")]
    Nonce,
}

fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// Validates an ID token as OpenID Connect Core §3.1.3.7 requires, in its
/// order: signature with the provider's key and an accepted `alg` (steps
/// 6–8), `iss` (2), `aud` contains our client id and, when there are
/// several audiences, `azp` is ours (3–5), `exp` and `iat` against our clock
/// within [`CLOCK_SKEW_SECS`] (9–10), and the `nonce` we sent (11).
pub fn validate_id_token(token: &str, keys: &Jwks, expected: &Expected<'_>) -> Result<Person, IdTokenError> {
    let jws = jose::decode_foreign(token).map_err(|e| IdTokenError::Malformed(e.to_string()))?;
    let alg = str_claim(&jws.header, "alg").unwrap_or_default();
    let kid = str_claim(&jws.header, "kid");
    let rsa = match alg {
        "RS256" => true,
        "ES256" => false,
        other => return Err(IdTokenError::Algorithm(other.chars().take(20).collect())),
    };
    let key = keys
        .key(kid, rsa)
        .ok_or_else(|| IdTokenError::UnknownKey(kid.unwrap_or("(none)").chars().take(80).collect()))?;
    let verified = match key {
        ProviderKey::Rsa { n, e } => ring::signature::RsaPublicKeyComponents { n, e }
            .verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                jws.signing_input.as_bytes(),
                &jws.signature,
            )
            .is_ok(),
        ProviderKey::Ec(pk) => pk.verify(jws.signing_input.as_bytes(), &jws.signature),
    };
    if !verified {
        return Err(IdTokenError::Signature);
    }
    let c = &jws.claims;
    let iss = str_claim(c, "iss").unwrap_or_default();
    if iss != expected.issuer {
        return Err(IdTokenError::Issuer(iss.chars().take(200).collect()));
    }
    let audiences: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    if (audiences.len() > 1 || c.contains_key("azp")) && str_claim(c, "azp") != Some(expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    let now = expected.now.as_micros() / 1_000_000;
    let exp = c.get("exp").and_then(Value::as_i64).ok_or(IdTokenError::Time)?;
    let iat = c.get("iat").and_then(Value::as_i64).ok_or(IdTokenError::Time)?;
    if now >= exp.saturating_add(CLOCK_SKEW_SECS) || iat > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(IdTokenError::Time);
    }
    let nonce = str_claim(c, "nonce").unwrap_or_default();
    if expected.nonce.is_empty()
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            nonce.as_bytes(),
            expected.nonce.as_bytes(),
        ))
    {
        return Err(IdTokenError::Nonce);
    }
    let subject = str_claim(c, "sub")
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or_else(|| IdTokenError::Malformed("`sub` is missing or longer than 255 characters".into()))?;
    let groups = match c.get(expected.groups_claim) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Ok(Person {
        issuer: iss.to_owned(),
        subject: subject.to_owned(),
        email: str_claim(c, "email").map(str::to_owned),
        name: str_claim(c, "name").map(str::to_owned),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jose::KeyPair;

    /// An RS256 ID token signed with `openssl dgst -sha256 -sign` by a
    /// 2048-bit key made for this test, and that key's modulus.
    const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC5iYW5rLmV4YW1wbGUiLCJzdWIiOiIyNDgyODk3NjEwMDEiLCJhdWQiOiJpZHYtY29uc29sZSIsImV4cCI6NDEwMjQ0NDgwMCwiaWF0IjoxNzY0MDAwMDAwLCJub25jZSI6Im4tMFM2X1d6QTJNaiIsImVtYWlsIjoiamFuZS5kb2VAYmFuay5leGFtcGxlIiwiZ3JvdXBzIjpbImlhbS1hZG1pbnMiLCJzdGFmZiJdfQ.PKN6zjPG5xzIc5iF9dK0SWb7pW33AZzCzAtO1dzRseqW0gSKSTtYbSalR_nZL7WZ6rBS_uQhI9Nm-QQUrBqfafY1SMC9D3FCVgMVjTWjm3SUK4syYXyvb25hrkhtx0u0ppKwHq0PYRpV9dp5VR-LB-vBXywaCdjCmLjO4hDzl7zgqItrOYMPZg599OtbNiH7RAWJxJeqrO4fs4xmY0i8e8Gl0e3qg40LtcR_KdUHWUrGVGCtUlKBg_8Rgz31Gt7CGzIFB2TOdubaV-6sXxNto3W3Wify9kbK2R9V1xMoQjWFG5P4rE7DQbBuc7mrMYqnCk2kxDjIm9WHV-Lx2gGajQ";
    const RS256_N: &str = "vcYjnHhhjDFxusaYNzppCljuheWqdNCkaqPzWp2V9F09FOZez56WThZxfeuqkg3W7j2ZrkSJv-V2E7Yw7yNG3I-35AlZLKJ9LdGOmUDsyudhiyzlFc2zOby3nM5hyfmKRQgUNjRjMGNkhoZZk54hMfwLE2mpYWtSSUZB0yJxo7o-zoEe6uNdhts1q32Vz9qJpghIE1A2cIvgjy2lNDKSA-hR0P6PMVCOkK1fjor84y0nm7MBe5qM9zgauJVD3Li1zkb5CfqY9mb_56mkrDHyjuMM_O0YR8RkXttTS9fSD-DksMOXQGq7tEzs2eoOgQbyMW1SwV7u9RfWXCXH1-M6fw";

    fn rsa_jwks() -> Jwks {
        Jwks::parse(&json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": RS256_N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": RS256_N, "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]}))
        .unwrap()
    }

    fn expected(now_secs: i64) -> Expected<'static> {
        Expected {
            issuer: "https://idp.bank.example",
            client_id: "idv-console",
            nonce: "n-0S6_WzA2Mj",
            now: Timestamp::from_micros(now_secs * 1_000_000),
            groups_claim: "groups",
        }
    }

    #[test]
    fn a_real_rs256_id_token_validates() {
        let keys = rsa_jwks();
        assert_eq!(keys.len(), 1, "the encryption and HMAC keys are skipped");
        let p = validate_id_token(RS256_TOKEN, &keys, &expected(1_764_000_100)).unwrap();
        assert_eq!(p.subject, "248289761001");
        assert_eq!(p.email.as_deref(), Some("jane.doe@bank.example"));
        assert_eq!(p.groups, vec!["iam-admins", "staff"]);
    }

    #[test]
    fn every_check_of_the_rs256_token_bites() {
        let keys = rsa_jwks();
        let now = 1_764_000_100;
        let with = |f: fn(&mut Expected<'static>)| {
            let mut e = expected(now);
            f(&mut e);
            validate_id_token(RS256_TOKEN, &keys, &e).unwrap_err()
        };
        assert!(matches!(
            with(|e| e.issuer = "https://evil.example"),
            IdTokenError::Issuer(_)
        ));
        assert_eq!(with(|e| e.client_id = "someone-else"), IdTokenError::Audience);
        assert_eq!(with(|e| e.nonce = "another-sign-in"), IdTokenError::Nonce);
        assert_eq!(with(|e| e.nonce = ""), IdTokenError::Nonce);
        assert_eq!(
            with(|e| e.now = Timestamp::from_micros(4_102_444_800 * 1_000_000 + 61_000_000)),
            IdTokenError::Time,
            "expired"
        );
        assert_eq!(
            with(|e| e.now = Timestamp::from_micros(1_764_000_000 * 1_000_000 - 61_000_000)),
            IdTokenError::Time,
            "issued in the future"
        );
        // Another provider's key, or a tampered token.
        let other = Jwks::parse(&json!({"keys": [{"kty": "RSA", "kid": "rsa-2", "n": RS256_N, "e": "AQAB"}]})).unwrap();
        assert!(matches!(
            validate_id_token(RS256_TOKEN, &other, &expected(now)),
            Err(IdTokenError::UnknownKey(k)) if k == "rsa-1"
        ));
        let mut tampered = RS256_TOKEN.to_owned();
        tampered.replace_range(60..61, if &RS256_TOKEN[60..61] == "A" { "B" } else { "A" });
        assert!(validate_id_token(&tampered, &keys, &expected(now)).is_err());
        let (head, _) = RS256_TOKEN.rsplit_once('.').unwrap();
        let resigned = format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 256]));
        assert_eq!(
            validate_id_token(&resigned, &keys, &expected(now)).unwrap_err(),
            IdTokenError::Signature
        );
    }

    fn es256_token(pair: &KeyPair, claims: Value) -> String {
        pair.sign("ec-1", "JWT", &claims)
    }

    fn ec_jwks(pair: &KeyPair) -> Jwks {
        let mut jwk = serde_json::to_value(pair.public_key().jwk()).unwrap();
        jwk["kid"] = json!("ec-1");
        Jwks::parse(&json!({"keys": [jwk]})).unwrap()
    }

    #[test]
    fn es256_tokens_and_their_audiences() {
        let pair = KeyPair::generate(Alg::ES256);
        let keys = ec_jwks(&pair);
        let base = json!({"iss": "https://idp.bank.example", "sub": "u1", "aud": "idv-console",
            "exp": 1_764_000_600, "iat": 1_764_000_000, "nonce": "n-0S6_WzA2Mj", "groups": "auditors"});
        let p = validate_id_token(&es256_token(&pair, base.clone()), &keys, &expected(1_764_000_100)).unwrap();
        assert_eq!(p.groups, vec!["auditors"], "a single group as a string");
        // Several audiences need `azp` naming us (Core §3.1.3.7 items 4–5).
        let mut multi = base.clone();
        multi["aud"] = json!(["idv-console", "other-app"]);
        assert_eq!(
            validate_id_token(&es256_token(&pair, multi.clone()), &keys, &expected(1_764_000_100)).unwrap_err(),
            IdTokenError::Audience
        );
        multi["azp"] = json!("idv-console");
        assert!(validate_id_token(&es256_token(&pair, multi), &keys, &expected(1_764_000_100)).is_ok());
        // A key of another type cannot stand in: the RSA set has no EC key.
        assert!(matches!(
            validate_id_token(&es256_token(&pair, base), &rsa_jwks(), &expected(1_764_000_100)),
            Err(IdTokenError::UnknownKey(_))
        ));
    }

    #[test]
    fn unaccepted_algorithms_are_refused() {
        let keys = rsa_jwks();
        for alg in ["none", "HS256", "PS256", "EdDSA"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"rsa-1"}}"#));
            let body = URL_SAFE_NO_PAD.encode(r#"{"iss":"https://idp.bank.example"}"#);
            let token = format!("{header}.{body}.c2ln");
            assert!(
                matches!(validate_id_token(&token, &keys, &expected(1)), Err(IdTokenError::Algorithm(a)) if a == alg),
                "{alg}"
            );
        }
        assert!(matches!(
            validate_id_token("not.a-token", &keys, &expected(1)),
            Err(IdTokenError::Malformed(_))
        ));
    }
}
