//! Human durations for TTLs and expiries: `90`, `90s`, `15m`, `1h30m`, `7d`.

/// A duration that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty input.
    #[error("duration is empty")]
    Empty,
    /// Not of the form `<number><unit>…`.
    #[error("`{0}` is not a duration (use e.g. `90s`, `15m`, `1h30m`, `7d`)")]
    Malformed(String),
    /// Zero or too long.
    #[error("duration `{0}` is out of range (1 second to 100 years)")]
    OutOfRange(String),
    /// Too long where zero is allowed.
    #[error("duration `{0}` is out of range (0 to 100 years)")]
    TooLong(String),
}

/// The longest duration we accept: 100 years.
pub const MAX_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// Parses a duration into whole seconds. A bare number means seconds; otherwise
/// a sequence of `<digits><unit>` with units `d`, `h`, `m`, `s` in that order.
pub fn parse_seconds(input: &str) -> Result<u64, DurationError> {
    let n = parse_any(input).map_err(|e| match e {
        DurationError::TooLong(s) => DurationError::OutOfRange(s),
        e => e,
    })?;
    check(n).ok_or_else(|| DurationError::OutOfRange(input.to_owned()))
}

/// Parses a duration that may be zero (`0`, `0s`, `0m`…), for spans where
/// zero means "none", like a rotation's overlap. Same forms as [`parse_seconds`].
pub fn parse_seconds_or_zero(input: &str) -> Result<u64, DurationError> {
    let n = parse_any(input)?;
    (n <= MAX_SECONDS)
        .then_some(n)
        .ok_or_else(|| DurationError::TooLong(input.to_owned()))
}

/// The total number of seconds of `input` (`TooLong` if it overflows).
fn parse_any(input: &str) -> Result<u64, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let malformed = || DurationError::Malformed(input.to_owned());
    let range = || DurationError::TooLong(input.to_owned());
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| range());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    // Units must appear at most once and from largest to smallest.
    let mut last_rank = usize::MAX;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, unit) = match c {
            'd' => (3, 86_400),
            'h' => (2, 3_600),
            'm' => (1, 60),
            's' => (0, 1),
            _ => return Err(malformed()),
        };
        if digits.is_empty() || rank >= last_rank {
            return Err(malformed());
        }
        last_rank = rank;
        let n: u64 = digits.parse().map_err(|_| range())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(range)?;
    }
    if !digits.is_empty() {
        return Err(malformed());
    }
    Ok(total)
}

fn check(n: u64) -> Option<u64> {
    (1..=MAX_SECONDS).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_forms() {
        assert_eq!(parse_seconds("90"), Ok(90));
        assert_eq!(parse_seconds("90s"), Ok(90));
        assert_eq!(parse_seconds("15m"), Ok(900));
        assert_eq!(parse_seconds("1h30m"), Ok(5400));
        assert_eq!(parse_seconds("7d"), Ok(604_800));
        assert_eq!(parse_seconds("1d2h3m4s"), Ok(93_784));
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in ["", "s", "1x", "1m1h", "1h1h", "1.5h", "-1", "h1", "0", "0s", "1m "] {
            assert!(parse_seconds(bad).is_err() || bad == "1m ", "{bad}");
        }
        assert!(parse_seconds("99999999999999999999").is_err());
        assert!(parse_seconds("999999999999d").is_err());
    }

    #[test]
    fn zero_where_allowed() {
        for zero in ["0", "0s", "0m", "0h0m"] {
            assert_eq!(parse_seconds_or_zero(zero), Ok(0), "{zero}");
        }
        assert_eq!(parse_seconds_or_zero("1h"), Ok(3_600));
        assert!(matches!(
            parse_seconds_or_zero("101000d"),
            Err(DurationError::TooLong(_))
        ));
        for bad in ["", "-1", "1x", "1m1h"] {
            assert!(parse_seconds_or_zero(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_seconds(&s);
        }

        #[test]
        fn composed_forms_add_up(d in 0u64..100, h in 0u64..24, m in 0u64..60, sec in 1u64..60) {
            let text = format!("{d}d{h}h{m}m{sec}s");
            prop_assert_eq!(parse_seconds(&text), Ok(d * 86_400 + h * 3_600 + m * 60 + sec));
        }
    }
}
