//! RFC 8693 token exchange (`token_exchange`): the request's token
//! parameters and the claims of a subject token. Never panics; accepted
//! parameters carry a subject token of a type we take; an accepted external
//! subject has a `sub`, has not expired and is not itself delegated; an
//! accepted `act` chain is bounded.
#![no_main]

use idv_core::Timestamp;
use idv_core::access_token::{Checked, LEEWAY_SECS};
use idv_core::delegation::{Delegator, MAX_CHAIN_DEPTH};
use idv_core::token_exchange::{Params, Subject, TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT, issuer};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

type Input<'a> = (
    [Option<&'a str>; 5],
    i64,
    Option<&'a str>,
    &'a [u8],
);

fuzz_target!(|input: Input<'_>| {
    let ([subject_token, subject_token_type, actor_token, actor_token_type, requested_token_type], now_s, aud, data) =
        input;
    let p = Params {
        subject_token,
        subject_token_type,
        actor_token,
        actor_token_type,
        requested_token_type,
    };
    if let Ok(t) = p.check() {
        assert_eq!(Some(t.subject), subject_token);
        assert!(matches!(subject_token_type, Some(TOKEN_TYPE_ACCESS | TOKEN_TYPE_JWT)));
        assert_eq!(t.actor.is_some(), actor_token_type.is_some());
    }
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let now_s = now_s.clamp(-(1 << 40), 1 << 40);
    let now = Timestamp::from_micros(now_s * 1_000_000);
    let iss = issuer(&claims).unwrap_or("https://login.example");
    if let Ok(s) = Subject::external(iss, &claims, aud, now) {
        assert!(!s.sub.is_empty());
        assert!(!claims.contains_key("act") && s.act.is_none());
        let exp = claims.get("exp").and_then(Value::as_i64).expect("accepted without `exp`");
        assert!(exp.saturating_add(LEEWAY_SECS) > now_s);
        assert!(matches!(s.holder, Delegator::Human { .. }));
        let _ = s.may_be_acted_for_by("agent");
    }
    // The same claims as one of our checked tokens: the holder is an agent
    // and the chain is bounded.
    let checked = Checked {
        jti: String::new(),
        sub: claims.get("sub").and_then(Value::as_str).unwrap_or_default().to_owned(),
        client_id: String::new(),
        expires_at: now,
        issued_at: now,
        act: claims.get("act").cloned(),
        delegations: Vec::new(),
        scopes: Default::default(),
    };
    if let Ok(s) = Subject::ours(&claims, checked) {
        assert!(matches!(s.holder, Delegator::Agent { .. }));
        let depth = idv_core::delegation::actors(s.act.as_ref()).map(|a| a.len()).unwrap_or(usize::MAX);
        assert!(depth <= MAX_CHAIN_DEPTH as usize);
    }
});
