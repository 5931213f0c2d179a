//! RFC 7523 client assertion claims (`client_assertion::check`): never
//! panics, whatever the claims' types and times; anything accepted names a
//! client id that is `iss` and `sub` both, one of our audiences, a non-empty
//! `jti`, and an `exp` within the accepted lifetime.
#![no_main]

use idv_core::Timestamp;
use idv_core::access_token::LEEWAY_SECS;
use idv_core::client_assertion::{MAX_LIFETIME_SECS, audiences, check};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ISSUER: &str = "https://idv.example";

fuzz_target!(|input: (i64, Option<String>, &[u8])| {
    let (now_s, client_id, data) = input;
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let now_s = now_s.clamp(-(1 << 40), 1 << 40);
    let now = Timestamp::from_micros(now_s * 1_000_000);
    let issuers = [ISSUER.to_owned()];
    if let Ok(a) = check(&claims, client_id.as_deref(), &issuers, now) {
        let id = a.client_id.to_string();
        let sub = claims.get("sub").and_then(Value::as_str).expect("accepted without `sub`");
        assert_eq!(claims.get("iss").and_then(Value::as_str), Some(sub));
        assert_eq!(uuid::Uuid::parse_str(sub).ok().map(|u| u.to_string()), Some(id));
        assert!(client_id.is_none_or(|c| c == sub));
        let ours = [ISSUER.to_owned(), format!("{ISSUER}/oauth2/token")];
        assert!(audiences(&claims).iter().any(|aud| ours.iter().any(|o| o == aud)));
        assert!(!a.jti.is_empty());
        assert!(a.exp > now_s - LEEWAY_SECS && a.exp <= now_s + MAX_LIFETIME_SECS);
    }
});
