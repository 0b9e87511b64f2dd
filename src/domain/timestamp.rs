//! Event timestamps: UTC milliseconds, shown as RFC 3339 with milliseconds.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};

use super::DomainError;

/// A point in time with millisecond precision (milliseconds since the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// From milliseconds since the Unix epoch.
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp (any offset; sub-millisecond digits are dropped).
    pub fn parse_rfc3339(s: &str) -> Result<Self, DomainError> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|e| DomainError::InvalidField {
                field: "timestamp",
                reason: format!("not an RFC 3339 timestamp: {e}"),
            })
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-25T21:55:47.123Z`.
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Appends [`Timestamp::to_rfc3339`]'s text to `out`, written digit by digit for the years
    /// 0000-9999 (every delivered event pays for it; chrono's formatter allocates and walks a
    /// format description), through chrono for the rest.
    pub fn write_rfc3339(self, out: &mut String) {
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let of_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            out.push_str(&self.to_rfc3339());
            return;
        }
        let (seconds, millis) = (of_day / 1000, of_day % 1000);
        let mut text = *b"0000-00-00T00:00:00.000Z";
        for (at, value, width) in [
            (0, year, 4),
            (5, month, 2),
            (8, day, 2),
            (11, seconds / 3600, 2),
            (14, seconds / 60 % 60, 2),
            (17, seconds % 60, 2),
            (20, millis, 3),
        ] {
            let mut value = value;
            for place in (at..at + width).rev() {
                // `value` is below 10^width here, so each digit is 0-9.
                text[place] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        // Every byte is an ASCII digit or separator, so this is always text; pushed whole, not
        // char by char (that was half of this function's cost).
        match std::str::from_utf8(&text) {
            Ok(text) => out.push_str(text),
            Err(_) => out.push_str(&self.to_rfc3339()),
        }
    }
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Producers' timestamps are normalised to UTC with milliseconds.
    #[test]
    fn round_trip_normalises_to_utc_millis() {
        let t = Timestamp::parse_rfc3339("2026-11-25T23:55:47.123456+02:00").expect("valid");
        assert_eq!(t.to_rfc3339(), "2026-11-25T21:55:47.123Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    proptest::proptest! {
        /// The digit-by-digit text is chrono's, for any instant (years past 9999 and before 0
        /// go through chrono, as do instants chrono cannot hold).
        #[test]
        fn written_text_is_chronos(millis in proptest::prop_oneof![
            -62_167_219_200_000i64..253_402_300_800_000,
            proptest::num::i64::ANY,
            proptest::strategy::Just(-1i64),
            proptest::strategy::Just(0i64),
        ]) {
            let t = Timestamp::from_millis(millis);
            let mut out = String::from("x");
            t.write_rfc3339(&mut out);
            proptest::prop_assert_eq!(&out[1..], t.to_rfc3339());
        }
    }
}
