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

    /// Appends [`Timestamp::to_rfc3339`]'s text to `out`, written two digits at a time for the
    /// years 0000-9999 (every delivered event pays for it; chrono's formatter allocates and walks
    /// a format description), through chrono for the rest.
    pub fn write_rfc3339(self, out: &mut String) {
        let days = self.0.div_euclid(MILLIS_PER_DAY);
        let of_day = self.0.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            out.push_str(&self.to_rfc3339());
            return;
        }
        let (seconds, millis) = (of_day / 1000, of_day % 1000);
        out.reserve(RFC3339_LEN);
        push_pair(out, year / 100);
        push_pair(out, year % 100);
        out.push('-');
        push_pair(out, month);
        out.push('-');
        push_pair(out, day);
        out.push('T');
        push_pair(out, seconds / 3600);
        out.push(':');
        push_pair(out, seconds / 60 % 60);
        out.push(':');
        push_pair(out, seconds % 60);
        out.push('.');
        push_pair(out, millis / 10);
        out.push(char::from(b'0' + (millis % 10) as u8));
        out.push('Z');
    }
}

/// The length of `0000-00-00T00:00:00.000Z`.
const RFC3339_LEN: usize = 24;

/// `00` to `99`, two characters each.
const DIGIT_PAIRS: &str = "\
    00010203040506070809101112131415161718192021222324252627282930313233343536373839\
    40414243444546474849505152535455565758596061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Appends `value` (0-99) as two digits.
fn push_pair(out: &mut String, value: i64) {
    let at = usize::try_from(value).unwrap_or(0) * 2;
    out.push_str(DIGIT_PAIRS.get(at..at + 2).unwrap_or("00"));
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
