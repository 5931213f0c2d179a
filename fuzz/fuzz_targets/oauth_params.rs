//! OAuth request parameters: `scope` (RFC 6749 §3.3), `authorization_details`
//! (RFC 9396), `resource` URIs (RFC 8707) and `act` chains (RFC 8693). Never
//! panic; accepted scopes are scope tokens; narrowing never widens.
#![no_main]

use std::collections::BTreeSet;

use idv_core::delegation::{actors, narrow};
use idv_core::grant::{is_resource, is_scope_token, parse_authorization_details, parse_scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scopes) = parse_scope(s) {
        assert!(scopes.iter().all(|t| is_scope_token(t)));
        // Narrowing a parsed request against halves of itself never widens.
        let half: BTreeSet<String> = scopes.iter().step_by(2).cloned().collect();
        if let Ok(out) = narrow(Some(&scopes), &scopes, &half, &scopes) {
            assert!(out.is_subset(&half));
        }
        let out = narrow(None, &scopes, &half, &scopes).expect("no request, no refusal");
        assert!(out.is_subset(&half));
    }
    if let Ok(items) = parse_authorization_details(s) {
        assert!(!items.is_empty());
        assert!(items.iter().all(|i| i.get("type").is_some_and(|t| t.is_string())));
    }
    if is_resource(s) {
        assert!(s.contains(':') && !s.contains('#'));
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(s)
        && let Ok(chain) = actors(Some(&v))
    {
        assert!(!chain.is_empty() && chain.len() <= 8);
    }
});
