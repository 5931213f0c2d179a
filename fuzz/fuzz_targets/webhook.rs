//! `idv_core::webhook`: event patterns and filters accept exactly the
//! documented grammar (dot-separated `[a-z0-9_]+` segments, the last of
//! which may be `*`) and select what they name; URL checks, secret parsing
//! and signature verification never panic, and a signature made verifies.
#![no_main]

use idv_core::Timestamp;
use idv_core::webhook::{Filter, HttpPolicy, Pattern, Secret, UrlPolicy, check_url, verify};
use libfuzzer_sys::fuzz_target;

/// The grammar, written out independently.
fn oracle(s: &str) -> bool {
    if s.is_empty() || s.len() > 100 {
        return false;
    }
    let segs: Vec<&str> = s.split('.').collect();
    segs.iter().enumerate().all(|(i, seg)| {
        (*seg == "*" && i + 1 == segs.len())
            || (!seg.is_empty() && seg.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_')))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let parsed = Pattern::parse(s);
    assert_eq!(parsed.is_ok(), oracle(s), "{s:?}");
    if let Ok(p) = &parsed {
        assert_eq!(p.as_str(), s);
        match s.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() => {
                assert!(p.matches(&format!("{prefix}x")));
                assert!(!p.matches(prefix.trim_end_matches('.')));
            }
            Some(_) => assert!(p.matches("agent.created")),
            None => assert!(p.matches(s)),
        }
    }
    let parts: Vec<&str> = s.split(',').collect();
    if let Ok(f) = Filter::parse(&parts) {
        assert!(parts.iter().all(|p| oracle(p)));
        assert!(f.patterns().len() <= parts.len());
    }
    for http in [HttpPolicy::Never, HttpPolicy::Loopback, HttpPolicy::Always] {
        let _ = check_url(s, &UrlPolicy { http, hosts: vec![] });
        let _ = check_url(s, &UrlPolicy { http, hosts: vec!["*.bank.example".into(), "127.0.0.1".into()] });
    }
    let _ = Secret::parse(s);
    let secret = Secret::from_bytes(&[7u8; 32]).unwrap();
    let now = Timestamp::from_micros(1_700_000_000_000_000);
    let _ = verify(&secret, "msg_x", "1700000000", s, "{}", now);
    let sig = secret.sign("msg_x", 1_700_000_000, s);
    assert_eq!(verify(&secret, "msg_x", "1700000000", &sig, s, now), Ok(()));
});
