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
}
