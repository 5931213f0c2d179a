//! `Timestamp::parse` (RFC 3339 from query parameters and request bodies)
//! and its serde form: every accepted instant formats as RFC 3339 that parses
//! back to the same instant; sub-microsecond digits are dropped (truncated),
//! as documented; formatting any representable instant round-trips.
#![no_main]

use idv_core::Timestamp;
use libfuzzer_sys::fuzz_target;

/// `s` with the fraction of its seconds cut to at most 6 digits.
fn truncate_fraction(s: &str) -> Option<String> {
    let dot = s.find('.')?;
    let digits = s[dot + 1..].bytes().take_while(u8::is_ascii_digit).count();
    (digits > 6).then(|| format!("{}{}", &s[..dot + 7], &s[dot + 1 + digits..]))
}

fn check_formatted(t: Timestamp, from: &str) {
    let text = t.to_rfc3339();
    assert_eq!(
        text.len(),
        27,
        "{from:?} formats as {text:?}, not RFC 3339 with microseconds"
    );
    assert_eq!(
        Timestamp::parse(&text).map_err(|e| e.to_string()).ok(),
        Some(t),
        "{from:?} formats as {text:?}, which does not parse back"
    );
    let json = serde_json::to_string(&t).expect("a string");
    assert_eq!(serde_json::from_str::<Timestamp>(&json).ok(), Some(t), "{json}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = Timestamp::parse(s) {
            check_formatted(t, s);
            if let Some(cut) = truncate_fraction(s) {
                assert_eq!(
                    Timestamp::parse(&cut).ok(),
                    Some(t),
                    "{s:?} and {cut:?} differ only in sub-microsecond digits"
                );
            }
        }
        // The serde form is the same parser.
        let _ = serde_json::from_slice::<Timestamp>(data);
    }
    // Any instant RFC 3339 can write (years 0000 to 9999) round-trips.
    if let Ok(bytes) = <[u8; 8]>::try_from(data.get(..8).unwrap_or_default()) {
        const MIN: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
        const MAX: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        let micros = i64::from_le_bytes(bytes);
        let t = Timestamp::from_micros(micros);
        if (MIN..=MAX).contains(&micros) {
            check_formatted(t, &format!("from_micros({micros})"));
        } else {
            let _ = t.to_rfc3339();
        }
    }
});
