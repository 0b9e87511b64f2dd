//! An event's `data` as JSON text: kept as the producer sent it, without the whitespace between
//! tokens, and measured (nesting depth) without building a JSON tree (docs/protocol.md, "Stored
//! events"). The text given here is already known to be valid JSON (a `RawValue` the parser
//! checked), so a scan that tells strings from the rest is enough.

use std::borrow::Cow;

/// `text` without whitespace outside strings (borrowed when it has none, as most producers send).
/// JSON strings cannot hold a raw line break, so the result is one line.
pub fn compact(text: &str) -> Cow<'_, str> {
    if !outside_strings(text).any(|(_, byte)| byte.is_ascii_whitespace()) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut kept_from = 0;
    for (at, byte) in outside_strings(text) {
        if byte.is_ascii_whitespace() {
            out.push_str(&text[kept_from..at]);
            kept_from = at + 1;
        }
    }
    out.push_str(&text[kept_from..bytes.len()]);
    Cow::Owned(out)
}

/// How deeply `text` nests, counting stops past `limit` (a scalar is 0, `{}` or `[]` is 1,
/// `{"a":{}}` is 2).
pub fn depth(text: &str, limit: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for (_, byte) in outside_strings(text) {
        match byte {
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return deepest;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The bytes of `text` that are not inside a string literal (quotes included in neither), with
/// their positions.
fn outside_strings(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut in_string = false;
    let mut escaped = false;
    text.bytes().enumerate().filter(move |&(_, byte)| {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            false
        } else if byte == b'"' {
            in_string = true;
            false
        } else {
            true
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_drops_whitespace_between_tokens_only() {
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
        let sent = "{ \"a b\" :\r\n [1, \"x \\\" y\\\\\", {\"c\":\t\"\\n\"}] }";
        assert_eq!(compact(sent), r#"{"a b":[1,"x \" y\\",{"c":"\n"}]}"#);
        let parsed: serde_json::Value = serde_json::from_str(sent).expect("valid");
        let kept: serde_json::Value = serde_json::from_str(&compact(sent)).expect("still valid");
        assert_eq!(parsed, kept, "the same value");
    }

    /// Scalars are 0 deep, each object or array level adds one (brackets inside strings do not
    /// count), and counting stops past the limit.
    #[test]
    fn depth_counts_levels() {
        assert_eq!(depth("1", 32), 0);
        assert_eq!(depth("{}", 32), 1);
        assert_eq!(depth(r#"{"a":[1,{"b":[]}],"c":2}"#, 32), 4);
        assert_eq!(depth(r#"{"a":"[[[{{{\"]]]"}"#, 32), 1);
        let deep = format!("{}0{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(depth(&deep, 10), 11);
    }
}
