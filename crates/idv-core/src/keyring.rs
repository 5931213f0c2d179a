//! Per-tenant signing key rings: which key signs, which keys are published.
//!
//! A key signs from its creation until it is retired; its public half stays
//! in the JWKS until every token it signed has expired (`publish_until`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Timestamp;

/// A stored signing key; the private half is sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Key id (`kid`), stable for the key's life.
    pub kid: String,
    /// Tenant (issuer) it signs for.
    pub tenant_id: Uuid,
    /// JWS algorithm (`EdDSA`, `ES256`).
    pub alg: String,
    /// Public JWK as published.
    pub public_jwk: Value,
    /// The sealed private half (see [`sealing_aad`]).
    #[serde(skip)]
    pub sealed_private: Vec<u8>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stopped signing, if it has.
    pub retired_at: Option<Timestamp>,
    /// Once retired: until when it stays published (the expiry of the last
    /// token it can have signed).
    pub publish_until: Option<Timestamp>,
}

impl SigningKey {
    /// Whether it may sign new tokens.
    pub fn signs(&self) -> bool {
        self.retired_at.is_none()
    }

    /// Whether its public half belongs in the JWKS at `now`.
    pub fn is_published(&self, now: Timestamp) -> bool {
        self.publish_until.is_none_or(|until| now < until)
    }
}

/// The associated data that binds a sealed private key to its tenant and key
/// id: a row copied to another tenant or key id fails to open.
pub fn sealing_aad(tenant_id: Uuid, kid: &str) -> Vec<u8> {
    format!("idv/signing_keys/{tenant_id}/{kid}/private").into_bytes()
}

/// The key that signs now: the newest one not retired.
pub fn current(keys: &[SigningKey]) -> Option<&SigningKey> {
    keys.iter().filter(|k| k.signs()).max_by_key(|k| k.created_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, created: i64, retired: Option<i64>, until: Option<i64>) -> SigningKey {
        SigningKey {
            kid: kid.into(),
            tenant_id: Uuid::nil(),
            alg: "EdDSA".into(),
            public_jwk: Value::Null,
            sealed_private: vec![],
            created_at: Timestamp::from_micros(created),
            retired_at: retired.map(Timestamp::from_micros),
            publish_until: until.map(Timestamp::from_micros),
        }
    }

    #[test]
    fn newest_unretired_signs_and_retired_stay_published_until_their_tokens_expire() {
        let keys = vec![
            key("a", 1, Some(5), Some(10)),
            key("b", 5, None, None),
            key("c", 3, None, None),
        ];
        assert_eq!(current(&keys).map(|k| k.kid.as_str()), Some("b"));
        assert!(keys[0].is_published(Timestamp::from_micros(9)));
        assert!(!keys[0].is_published(Timestamp::from_micros(10)));
        assert_ne!(sealing_aad(Uuid::nil(), "a"), sealing_aad(Uuid::nil(), "b"));
    }
}
