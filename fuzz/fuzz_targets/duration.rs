//! `idv_core::duration::parse_seconds` (TTLs, `expires_in`): accepts exactly
//! what the documented grammar allows, with the same value, and the values
//! it accepts format and parse back.
#![no_main]

use idv_core::duration::{MAX_SECONDS, parse_seconds};
use idv_fuzz::oracle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let got = parse_seconds(s);
    assert_eq!(got.as_ref().ok().copied(), oracle::duration(s), "input {s:?}: {got:?}");
    if let Ok(n) = got {
        assert!((1..=MAX_SECONDS).contains(&n));
        assert_eq!(parse_seconds(&n.to_string()), Ok(n));
        let text = oracle::format_duration(n);
        assert_eq!(parse_seconds(&text), Ok(n), "{text}");
        assert_eq!(parse_seconds(&format!(" {text}\n")), Ok(n), "{text}");
    }
});
