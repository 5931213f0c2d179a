//! DPoP proofs (RFC 9449): checking a proof JWT against the request it came
//! with, and stateless server nonces.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Timestamp;
use crate::jose::{self, Alg, PublicKey};

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const TYP: &str = "dpop+jwt";

/// How far a proof's `iat` may be from our clock (RFC 9449 §11.1 leaves the
/// window to the server; a minute either way tolerates ordinary skew).
pub const IAT_WINDOW_SECS: i64 = 60;

/// Algorithms we accept for proofs (asymmetric only, RFC 9449 §4.2; both
/// names of Ed25519, RFC 9864 §2.2).
pub const ALGS: [Alg; 3] = Alg::ACCEPTED;

/// A proof that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof key: `cnf.jkt` of bound tokens.
    pub jkt: String,
    /// The proof's `jti`, to be used once.
    pub jti: String,
    /// The proof's `iat` in seconds.
    pub iat: i64,
    /// The server nonce it carried, if any.
    pub nonce: Option<String>,
}

/// Why a proof was refused (RFC 9449 §5: `invalid_dpop_proof`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    /// Anything wrong with the proof.
    #[error("DPoP proof refused: {0}")]
    Invalid(String),
}

fn invalid(why: impl Into<String>) -> DpopError {
    DpopError::Invalid(why.into())
}

/// RFC 9449 §4.3 point 9: the request URI without query and fragment, with
/// scheme and host compared case-insensitively (RFC 3986 §6.2.2.1).
pub fn normalize_htu(uri: &str) -> String {
    let base = uri.split(['?', '#']).next().unwrap_or_default();
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, "/"),
            };
            format!(
                "{}://{}{}",
                scheme.to_ascii_lowercase(),
                authority.to_ascii_lowercase(),
                path
            )
        }
        None => base.to_owned(),
    }
}

/// Checks a DPoP proof (RFC 9449 §4.3) for a request with method `htm` to
/// `htu`, at `now`. The caller checks `jti` replay and the nonce.
pub fn check(proof: &str, htm: &str, htu: &str, now: Timestamp) -> Result<Proof, DpopError> {
    let jws = jose::decode(proof).map_err(|e| invalid(e.to_string()))?;
    if jws.header.typ.as_deref() != Some(TYP) {
        return Err(invalid("`typ` must be `dpop+jwt`"));
    }
    if !ALGS.contains(&jws.header.alg) {
        return Err(invalid("unsupported `alg`"));
    }
    let jwk = jws.header.jwk.as_ref().ok_or_else(|| invalid("no `jwk` header"))?;
    let key = PublicKey::from_jwk(jwk).map_err(|e| invalid(format!("`jwk`: {e}")))?;
    jws.verify(&key)
        .map_err(|_| invalid("the signature does not verify with its `jwk`"))?;
    let c = &jws.claims;
    let text = |name: &str| c.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| invalid("no usable `jti`"))?;
    if text("htm") != Some(htm) {
        return Err(invalid(format!("`htm` must be `{htm}`")));
    }
    let proof_htu = text("htu").ok_or_else(|| invalid("no `htu`"))?;
    if normalize_htu(proof_htu) != normalize_htu(htu) {
        return Err(invalid(format!("`htu` must be `{htu}`")));
    }
    let iat = c
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("no numeric `iat`"))?;
    let now_s = now.as_micros().div_euclid(1_000_000);
    if (iat - now_s).abs() > IAT_WINDOW_SECS {
        return Err(invalid("`iat` is outside the accepted window"));
    }
    let nonce = match c.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(invalid("`nonce` must be a string")),
    };
    Ok(Proof {
        jkt: jwk.thumbprint().map_err(|e| invalid(e.to_string()))?,
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// Stateless server nonces (RFC 9449 §8): a time bucket and its HMAC, so
/// every node can check any node's nonce without shared state.
#[derive(Clone)]
pub struct Nonces {
    key: [u8; 32],
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces(…)")
    }
}

/// How long one nonce bucket lasts; a nonce is accepted in its bucket and the next.
pub const NONCE_BUCKET_SECS: i64 = 300;

impl Nonces {
    /// Nonces keyed with `key` (derive it from the master key).
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, bucket: i64) -> [u8; 32] {
        // HMAC takes keys of any length.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return [0; 32],
        };
        m.update(b"idv/dpop-nonce/");
        m.update(&bucket.to_be_bytes());
        m.finalize().into_bytes().into()
    }

    /// The nonce to hand out at `now`.
    pub fn issue(&self, now: Timestamp) -> String {
        let bucket = now.as_micros().div_euclid(1_000_000 * NONCE_BUCKET_SECS);
        let mut raw = bucket.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.mac(bucket)[..16]);
        B64.encode(raw)
    }

    /// Whether `nonce` is one of ours from this or the previous bucket.
    pub fn is_valid(&self, nonce: &str, now: Timestamp) -> bool {
        let Ok(raw) = B64.decode(nonce) else {
            return false;
        };
        let Some((b, tag)) = raw.split_first_chunk::<8>() else {
            return false;
        };
        let bucket = i64::from_be_bytes(*b);
        let current = now.as_micros().div_euclid(1_000_000 * NONCE_BUCKET_SECS);
        if bucket != current && bucket != current - 1 {
            return false;
        }
        tag.len() == 16 && bool::from(self.mac(bucket)[..16].ct_eq(tag))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::jose::KeyPair;

    const HTU: &str = "https://idv.example/t/acme/oauth2/token";

    fn proof(key: &KeyPair, claims: Value) -> String {
        let mut h = serde_json::Map::new();
        h.insert("typ".into(), json!(TYP));
        h.insert("jwk".into(), serde_json::to_value(key.public_key().jwk()).unwrap());
        key.sign_with_header(&h, &claims)
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    #[test]
    fn a_good_proof_checks() {
        let k = KeyPair::generate(Alg::ES256);
        let p = proof(&k, json!({"jti": "j1", "htm": "POST", "htu": HTU, "iat": 1000}));
        let ok = check(&p, "POST", HTU, at(1010)).unwrap();
        assert_eq!(ok.jkt, k.public_key().jwk().thumbprint().unwrap());
        assert_eq!(ok.jti, "j1");
        // Query and fragment are ignored; scheme and host case too.
        let p = proof(
            &k,
            json!({"jti": "j", "htm": "POST", "htu": "HTTPS://IDV.example/t/acme/oauth2/token?x=1", "iat": 1000}),
        );
        assert!(check(&p, "POST", HTU, at(1000)).is_ok());
    }

    #[test]
    fn ed25519_fully_specified_proofs_check() {
        // oauth4webapi and openid-client sign proofs with `"alg": "Ed25519"`
        // (RFC 9864 §2.2); the key and its thumbprint are those of EdDSA.
        let k = KeyPair::generate(Alg::Ed25519);
        let p = proof(&k, json!({"jti": "j1", "htm": "POST", "htu": HTU, "iat": 1000}));
        assert_eq!(jose::decode(&p).unwrap().header.alg, Alg::Ed25519);
        let ok = check(&p, "POST", HTU, at(1000)).unwrap();
        assert_eq!(ok.jkt, k.public_key().jwk().thumbprint().unwrap());
        // A P-256 key cannot hide behind the name.
        let es = KeyPair::generate(Alg::ES256);
        let header = json!({"alg": "Ed25519", "typ": TYP, "jwk": es.public_key().jwk()}).to_string();
        let input = format!(
            "{}.{}",
            B64.encode(header),
            B64.encode(json!({"jti": "j2", "htm": "POST", "htu": HTU, "iat": 1000}).to_string())
        );
        let forged = format!("{input}.{}", B64.encode([0u8; 64]));
        assert!(check(&forged, "POST", HTU, at(1000)).is_err());
    }

    #[test]
    fn bad_proofs_are_refused() {
        let k = KeyPair::generate(Alg::EdDSA);
        let good = json!({"jti": "j1", "htm": "POST", "htu": HTU, "iat": 1000});
        let with = |k2: &str, v: Value| {
            let mut c = good.clone();
            c[k2] = v;
            c
        };
        for c in [
            with("htm", json!("GET")),
            with("htu", json!("https://idv.example/oauth2/token")),
            with("iat", json!(100)),
            with("iat", json!(5000)),
            with("jti", json!("")),
            with("nonce", json!(5)),
        ] {
            assert!(check(&proof(&k, c.clone()), "POST", HTU, at(1000)).is_err(), "{c}");
        }
        // Wrong typ, no jwk, a different key in the header, alg none.
        let plain = k.sign("k", "JWT", &good);
        assert!(check(&plain, "POST", HTU, at(1000)).is_err());
        let mut h = serde_json::Map::new();
        h.insert("typ".into(), json!(TYP));
        assert!(check(&k.sign_with_header(&h, &good), "POST", HTU, at(1000)).is_err());
        let other = KeyPair::generate(Alg::EdDSA);
        h.insert("jwk".into(), serde_json::to_value(other.public_key().jwk()).unwrap());
        assert!(check(&k.sign_with_header(&h, &good), "POST", HTU, at(1000)).is_err());
        let none = format!(
            "{}.{}.",
            B64.encode(json!({"alg": "none", "typ": TYP, "jwk": k.public_key().jwk()}).to_string()),
            B64.encode(good.to_string())
        );
        assert!(check(&none, "POST", HTU, at(1000)).is_err());
    }

    #[test]
    fn nonces() {
        let n = Nonces::new([7; 32]);
        let t = n.issue(at(1000));
        assert!(n.is_valid(&t, at(1000)));
        assert!(n.is_valid(&t, at(1000 + NONCE_BUCKET_SECS)));
        assert!(!n.is_valid(&t, at(1000 + 3 * NONCE_BUCKET_SECS)));
        assert!(!Nonces::new([8; 32]).is_valid(&t, at(1000)));
        assert!(!n.is_valid("garbage", at(1000)));
        assert!(!n.is_valid("", at(1000)));
    }
}
