//! UTC instants with microsecond precision, RFC 3339 on the wire.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant, microseconds since the Unix epoch. Stored as an integer,
/// shown as RFC 3339 (always `Z`, six fractional digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A timestamp that is not RFC 3339.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 timestamp")]
pub struct TimestampError(String);

impl Timestamp {
    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This instant plus `seconds` (saturating).
    pub fn plus_secs(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// Parses RFC 3339 (any offset; normalised to UTC, sub-microsecond digits dropped).
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError(s.to_owned()))?;
        // Floor, so dropping sub-microsecond digits never moves a time
        // forward (plain division would, before 1970).
        let micros = t.unix_timestamp_nanos().div_euclid(1000);
        i64::try_from(micros)
            .map(Self)
            .map_err(|_| TimestampError(s.to_owned()))
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-24T10:00:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        match OffsetDateTime::from_unix_timestamp(secs) {
            Ok(t) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                micros
            ),
            Err(_) => format!("@{}", self.0),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_utc_with_micros() {
        let t = Timestamp::parse("2026-11-24T10:00:01.5+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-24T09:00:01.500000Z");
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(micros in 0i64..253_402_300_799_000_000) {
            let t = Timestamp::from_micros(micros);
            prop_assert_eq!(Timestamp::parse(&t.to_rfc3339()).unwrap(), t);
        }
    }
}
