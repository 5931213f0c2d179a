//! JWS compact parsing (`jose::decode`): never panics; anything it accepts
//! has three non-empty parts, a supported `alg` and a JSON-object payload;
//! verification with an unrelated key never succeeds on fuzzed input; and a
//! token we sign over fuzzed claims round-trips.
#![no_main]

use idv_core::jose::{Alg, KeyPair, decode};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn key() -> &'static KeyPair {
    static K: OnceLock<KeyPair> = OnceLock::new();
    K.get_or_init(|| KeyPair::generate(Alg::EdDSA))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(jws) = decode(s) {
        assert_eq!(s.split('.').count(), 3);
        assert!(s.split('.').all(|p| !p.is_empty()));
        assert!(matches!(jws.header.alg, Alg::EdDSA | Alg::ES256));
        assert!(jws.verify(&key().public_key()).is_err(), "fuzzed token verified: {s}");
    }
    // Claims from the input, signed by us: must decode and verify.
    if let Ok(serde_json::Value::Object(claims)) = serde_json::from_str::<serde_json::Value>(s) {
        let t = key().sign("k", "at+jwt", &serde_json::Value::Object(claims.clone()));
        let jws = decode(&t).expect("our own token decodes");
        jws.verify(&key().public_key()).expect("our own token verifies");
        assert_eq!(jws.claims, claims);
    }
});
