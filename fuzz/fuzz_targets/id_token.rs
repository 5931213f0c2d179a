//! OpenID Connect ID tokens and provider JWKS (`oidc`): never panics on any
//! token or key set; an accepted token carries the expected issuer, nonce
//! and a non-empty subject.
#![no_main]

use idv_core::Timestamp;
use idv_core::oidc::{Expected, Jwks, validate_id_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8], i64)| {
    let (token, jwks, now) = input;
    let keys = serde_json::from_slice(jwks)
        .ok()
        .and_then(|v| Jwks::parse(&v).ok())
        .unwrap_or_default();
    let e = Expected {
        issuer: "https://idp.example",
        client_id: "idv",
        nonce: "n",
        now: Timestamp::from_micros(now.saturating_mul(1_000_000)),
        groups_claim: "groups",
    };
    if let Ok(p) = validate_id_token(token, &keys, &e) {
        assert_eq!(p.issuer, "https://idp.example");
        assert!(!p.subject.is_empty());
    }
});
