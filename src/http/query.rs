//! Query strings of the read API and the SSE streams (docs/protocol.md, "HTTP read API" and
//! "Server-Sent Events"): read by the hub itself, so that a bad parameter is answered 400
//! `invalid_payload` with a detail naming it, never with the HTTP library's text. Parameters the
//! endpoint does not know are ignored.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use super::ApiError;

/// The decoded `name=value` pairs of a request's query string, in order.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Decoding pairs of strings cannot fail (bad percent-escapes are decoded lossily); an
        // absent query string is an empty list.
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| pairs)
            .unwrap_or_default();
        Ok(Self(pairs))
    }
}

impl QueryParams {
    /// Whether `name` is present (with any value).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// The single value of `name`, if present; 400 when it is given more than once.
    fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}` is given more than once"
            )));
        }
        Ok(first)
    }

    /// `name` as a seq (`after`): a non-negative integer up to 2^64 - 1; `None` when absent.
    pub fn seq(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.single(name)? else {
            return Ok(None);
        };
        digits(value)
            .and_then(|d| d.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter `{name}` must be a seq: a non-negative integer up to {}",
                    u64::MAX
                ))
            })
    }

    /// `name` as a count (`limit`): a non-negative integer; one beyond `max` (however many digits
    /// it has) is `max`, since the read API clamps rather than refuses; `None` when absent.
    pub fn count(&self, name: &str, max: usize) -> Result<Option<usize>, ApiError> {
        let Some(value) = self.single(name)? else {
            return Ok(None);
        };
        let digits = digits(value).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter `{name}` must be a non-negative integer"
            ))
        })?;
        Ok(Some(digits.parse::<usize>().map_or(max, |n| n.min(max))))
    }
}

/// `value` when it is one or more ASCII digits (no sign, no space, not empty).
fn digits(value: &str) -> Option<&str> {
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn seqs_and_counts() {
        let q = params(&[
            ("after", "18446744073709551615"),
            ("limit", "99999999999999999999999"),
        ]);
        assert_eq!(q.seq("after").ok().flatten(), Some(u64::MAX));
        assert_eq!(q.count("limit", 1000).ok().flatten(), Some(1000));
        assert_eq!(params(&[]).seq("after").ok().flatten(), None);
        for bad in ["", "abc", "-1", "+1", " 1", "1.5", "18446744073709551616"] {
            let q = params(&[("after", bad), ("limit", bad)]);
            assert!(q.seq("after").is_err(), "after={bad}");
            if bad != "18446744073709551616" {
                assert!(q.count("limit", 1000).is_err(), "limit={bad}");
            }
        }
        assert!(
            params(&[("after", "1"), ("after", "2")])
                .seq("after")
                .is_err()
        );
    }
}
