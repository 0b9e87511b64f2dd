//! JSON as text, without a tree: an event's `data` kept as the producer sent it, without the
//! whitespace between tokens, and measured (nesting depth) (docs/protocol.md, "Stored events");
//! strings written into JSON the hub builds itself; and JSON bodies read with their UTF-8 checked
//! once. The `data` given here is already known to be valid JSON (a `RawValue` the parser
//! checked), so a scan that tells strings from the rest is enough.

use std::borrow::Cow;
use std::ops::ControlFlow;

use serde::de::DeserializeOwned;

/// `serde_json::from_slice`, with the bytes checked to be UTF-8 once, as a whole, rather than
/// each string and raw value on its own as `from_slice` does (about 400 instructions per event on
/// ingest). Bytes that are not UTF-8 go through `from_slice`, for its error.
pub fn from_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Appends `text` as a JSON string: as it is between quotes when nothing in it needs escaping
/// (ids and room names, in practice), else escaped by serde_json.
pub fn push_string(out: &mut String, text: &str) {
    if needs_no_escape(text) {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        match serde_json::to_string(text) {
            Ok(quoted) => out.push_str(&quoted),
            Err(_) => out.push_str("\"\""),
        }
    }
}

/// Whether `text` holds no byte that a JSON string must escape (a control character, `"` or
/// `\`), tested eight bytes at a time: every delivered event's id and room name pass through
/// here, and a byte at a time was about 230 instructions for a 32-byte id. Each test leaves a
/// word's byte with its high bit set exactly when some byte of the word matches (bytes of 0x80 and
/// above, UTF-8's multi-byte sequences, never do).
fn needs_no_escape(text: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Whether some byte of `word` is zero.
    fn has_zero(word: u64) -> bool {
        word.wrapping_sub(ONES) & !word & HIGHS != 0
    }
    let (words, tail) = text.as_bytes().as_chunks::<8>();
    let words_plain = words.iter().all(|word| {
        let word = u64::from_ne_bytes(*word);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
        !control
            && !has_zero(word ^ (ONES * u64::from(b'"')))
            && !has_zero(word ^ (ONES * u64::from(b'\\')))
    });
    words_plain && tail.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// `text` without whitespace outside strings (borrowed when it has none, as most producers send).
/// JSON strings cannot hold a raw line break, so the result is one line.
pub fn compact(text: &str) -> Cow<'_, str> {
    // JSON's whitespace is these four bytes: text with none of them anywhere (found by a vector
    // search, not byte by byte) is compact as it is.
    let bytes = text.as_bytes();
    if memchr::memchr3(b' ', b'\n', b'\t', bytes).is_none()
        && memchr::memchr(b'\r', bytes).is_none()
    {
        return Cow::Borrowed(text);
    }
    let mut out: Option<String> = None;
    let mut kept_from = 0;
    for_each_outside_strings(text, |at, byte| {
        if byte.is_ascii_whitespace() {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[kept_from..at]);
            kept_from = at + 1;
        }
        ControlFlow::Continue(())
    });
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[kept_from..]);
            Cow::Owned(out)
        }
    }
}

/// How deeply `text` nests when that is deeper than `limit` (the depth at which counting
/// stopped: `limit + 1`); `None` when it is not.
pub fn too_deep(text: &str, limit: usize) -> Option<usize> {
    // No deeper than it has brackets that open: text with at most `limit` of them anywhere (a
    // vector count, strings included) needs no scan.
    if memchr::memchr2_iter(b'{', b'[', text.as_bytes()).count() <= limit {
        return None;
    }
    Some(depth(text, limit)).filter(|&depth| depth > limit)
}

/// How deeply `text` nests, counting stops past `limit` (a scalar is 0, `{}` or `[]` is 1,
/// `{"a":{}}` is 2).
fn depth(text: &str, limit: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for_each_outside_strings(text, |_, byte| {
        match byte {
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return ControlFlow::Break(());
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        ControlFlow::Continue(())
    });
    deepest
}

/// Calls `each` with every byte of `text` that is not inside a string literal (quotes included
/// in neither) and its position, until it breaks. A string's content is skipped by searching for
/// its next quote or backslash (`memchr`), not byte by byte: most of an event's bytes are in
/// strings.
fn for_each_outside_strings(text: &str, mut each: impl FnMut(usize, u8) -> ControlFlow<()>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte != b'"' {
            if each(at, byte).is_break() {
                return;
            }
            at += 1;
            continue;
        }
        at += 1;
        loop {
            let Some(found) = bytes
                .get(at..)
                .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
            else {
                // An unterminated string (not valid JSON): nothing outside it follows.
                return;
            };
            let found = at + found;
            if bytes[found] == b'"' {
                at = found + 1;
                break;
            }
            // A backslash escapes the byte after it.
            at = found + 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The word-at-a-time test agrees with the byte-at-a-time one, wherever in the text (in
        /// a whole word or the tail) a byte to escape sits, and what `push_string` writes is the
        /// JSON string of the text.
        #[test]
        fn words_and_bytes_agree_on_escaping(
            text in "[a-z0-9:\\-]{0,20}(\"|\\\\|[\\x00-\\x1f]|[ -~]|é|€)?[a-z0-9é:\\-]{0,20}",
        ) {
            let by_bytes = text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
            proptest::prop_assert_eq!(needs_no_escape(&text), by_bytes);
            let mut out = String::new();
            push_string(&mut out, &text);
            let back: String = serde_json::from_str(&out).expect("a JSON string");
            proptest::prop_assert_eq!(back, text);
        }
    }

    /// A UTF-8 body parses as `from_slice` parses it; one that is not gets `from_slice`'s error.
    #[test]
    fn json_bytes_parse_as_from_slice() {
        let text = "{\"note\":\"café ✓\",\"n\":[1,2]}".as_bytes();
        let parsed: serde_json::Value = from_json_bytes(text).expect("UTF-8 JSON");
        let sliced: serde_json::Value = serde_json::from_slice(text).expect("UTF-8 JSON");
        assert_eq!(parsed, sliced);
        let latin1 = b"{\"note\":\"caf\xe9\"}";
        let ours = from_json_bytes::<serde_json::Value>(latin1).expect_err("not UTF-8");
        let theirs = serde_json::from_slice::<serde_json::Value>(latin1).expect_err("not UTF-8");
        assert_eq!(ours.to_string(), theirs.to_string());
    }

    /// Each byte that needs escaping is found at every offset of a word and of the tail.
    #[test]
    fn each_escaped_byte_is_found_anywhere() {
        for byte in (0u8..0x20).chain([b'"', b'\\']) {
            for len in 1..=19 {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = byte;
                    let text = String::from_utf8(text).expect("ASCII");
                    assert!(!needs_no_escape(&text), "{byte:#x} at {at} of {len}");
                }
            }
        }
        for plain in [
            "",
            "photo:p-1",
            "ev-0123456789abcdef0123456789abcdef",
            "é~\u{7f}€",
        ] {
            assert!(needs_no_escape(plain), "{plain}");
        }
    }

    #[test]
    fn compact_drops_whitespace_between_tokens_only() {
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
        // Whitespace only inside strings: scanned, and kept as it is.
        let spaced = "{\"a b\":\"c\\td\"}";
        assert!(matches!(compact(spaced), Cow::Borrowed(_)));
        assert!(matches!(compact("{\"a\":\"x y\"}"), Cow::Borrowed(_)));
        for blank in [" ", "\n", "\t", "\r"] {
            let sent = format!("{{\"a\":{blank}1}}");
            assert_eq!(compact(&sent), r#"{"a":1}"#, "{blank:?}");
        }
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

    /// `too_deep` answers as `depth` does, whether its count of brackets settles it (few
    /// brackets) or it scans (brackets in strings, or deep text).
    #[test]
    fn too_deep_is_depth_past_the_limit() {
        let shallow_with_brackets_in_strings = r#"{"a":"[[[{{{","b":["{{"]}"#;
        for (text, limit) in [
            ("1", 0),
            ("{}", 0),
            ("{}", 1),
            (r#"{"a":[1,{"b":[]}],"c":2}"#, 3),
            (r#"{"a":[1,{"b":[]}],"c":2}"#, 4),
            (shallow_with_brackets_in_strings, 2),
            (shallow_with_brackets_in_strings, 1),
        ] {
            let deep = depth(text, limit);
            assert_eq!(
                too_deep(text, limit),
                (deep > limit).then_some(deep),
                "{text} {limit}"
            );
        }
        assert_eq!(too_deep(shallow_with_brackets_in_strings, 2), None);
        assert_eq!(too_deep(&"[".repeat(100), 10), Some(11));
    }

    /// Escapes at the end of strings, escaped backslashes before a quote, and text cut short
    /// inside a string or an escape are told apart without reading past the end.
    #[test]
    fn strings_end_where_an_unescaped_quote_is() {
        assert_eq!(depth(r#"["\\",[["\"]]]"#, 32), 3);
        assert_eq!(
            depth(r#"["\"]]]"#, 32),
            1,
            "an escaped quote does not end the string"
        );
        assert_eq!(compact(r#"{"a":"x\\" , "b" : 1}"#), r#"{"a":"x\\","b":1}"#);
        assert_eq!(depth("[\"abc", 32), 1);
        assert_eq!(depth("[\"abc\\", 32), 1);
        assert_eq!(compact("[ \"a b"), "[\"a b");
    }

    /// Any JSON value: strings with quotes, backslashes, brackets and whitespace inside.
    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[ a\\\\\"{}\\[\\]\\t\\n\\u{e9}]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z\\\"{ ]{0,4}", inner, 0..6)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    /// The nesting of a parsed value, as `depth` counts it.
    fn value_depth(value: &serde_json::Value) -> usize {
        match value {
            serde_json::Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
            serde_json::Value::Object(map) => 1 + map.values().map(value_depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    proptest::proptest! {
        /// Compacting pretty-printed JSON gives one line holding the same value, the same as
        /// serde's own compact form; the depth is the value's.
        #[test]
        fn compact_and_depth_agree_with_a_parser(value in json_value()) {
            let pretty = serde_json::to_string_pretty(&value).expect("print");
            let compacted = compact(&pretty);
            proptest::prop_assert_eq!(compacted.as_ref(), serde_json::to_string(&value).expect("print"));
            proptest::prop_assert_eq!(depth(&pretty, 64), value_depth(&value));
        }
    }
}
