//! The one canonical text encoding of this crate: canonical JSON and lowercase hex.
//!
//! Everything that is hashed or MACed — audit events and records, checkpoint messages, the
//! digest of arguments awaiting confirmation — is written with these functions, so the same
//! value always yields the same bytes whatever `serde_json` features the build enables. The
//! bytes are frozen: audit chain hashes stored on disk depend on them, so this module must not
//! change its output for any input. It must not know what it encodes (no audit or token types).

use std::fmt::Write as _;

use serde_json::Value;

/// Canonical JSON for any value: object keys sorted bytewise at every level, no whitespace,
/// strings escaped minimally (quote, backslash and control characters only, `\u00xx` in
/// lowercase hex for controls without a short escape), numbers as `serde_json` prints them.
///
/// ```
/// use serde_json::json;
/// use voxguard_guard::canonical_json;
///
/// assert_eq!(canonical_json(&json!({"b": 1, "a": [true, null]})), r#"{"a":[true,null],"b":1}"#);
/// ```
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value);
    out
}

/// Append the canonical JSON of `value` to `out` (see [`canonical_json`]).
pub(crate) fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            // Writing to a String cannot fail.
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_json_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Append `s` to `out` as a JSON string literal, escaped as [`canonical_json`] does.
///
/// Every character that needs an escape is ASCII, so the text is copied in runs between them
/// (audit events are canonicalized on every request; char by char was the writer's hottest
/// loop).
pub(crate) fn write_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut run = 0;
    for (at, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `at` is an ASCII byte, so both slices end on character boundaries.
        out.push_str(&s[run..at]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", byte);
        } else {
            out.push_str(escape);
        }
        run = at + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// `bytes` as lowercase hex, two characters a byte.
pub fn to_hex(bytes: &[u8]) -> String {
    // A digit table, not `format!`: hashes, MACs and pseudonyms are hexed on every request.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Lowercase hex (as [`to_hex`] writes it) back to bytes; `None` for anything else, including
/// uppercase digits and odd lengths.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_every_level_and_escapes_minimally() {
        assert_eq!(
            canonical_json(&json!({"b": 1, "a": {"d": "\u{7f}", "c": "\u{1f}"}})),
            "{\"a\":{\"c\":\"\\u001f\",\"d\":\"\u{7f}\"},\"b\":1}"
        );
        assert_eq!(
            canonical_json(&json!([
                "\"\\\n\r\t\u{8}\u{c}\u{0}",
                -0.0,
                1e300,
                u64::MAX,
                false
            ])),
            r#"["\"\\\n\r\t\b\f\u0000",-0.0,1e+300,18446744073709551615,false]"#
        );
    }

    #[test]
    fn matches_serde_json_for_sorted_input() {
        // serde_json escapes strings the same way; with keys already sorted (its default map
        // is a BTreeMap) the bytes must agree exactly.
        let value = json!({
            "": {"": null},
            "floats": [0.1 + 0.2, 5e-324, 150.0, -1.5e-7],
            "ints": [i64::MIN, 0],
            "text": "\u{2028}\u{7f}\u{0}\u{1b}😀 \\ \"",
        });
        assert_eq!(canonical_json(&value), value.to_string());
    }

    #[test]
    fn strings_escape_as_serde_json_does_for_every_ascii_byte_and_beside_wide_characters() {
        // Runs are copied between escapes: every ASCII character, alone and between
        // multi-byte ones, at the start, the middle and the end of a string.
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            for text in [
                c.to_string(),
                format!("é{c}😀"),
                format!("{c}{c}ab"),
                format!("ab{c}"),
            ] {
                let mut out = String::new();
                write_json_str(&mut out, &text);
                assert_eq!(out, Value::String(text.clone()).to_string(), "{byte:#x}");
            }
        }
    }

    #[test]
    fn hex_round_trips_and_refuses_non_canonical_text() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(to_hex(&bytes), "000fa5ff");
        assert_eq!(from_hex("000fa5ff").as_deref(), Some(&bytes[..]));
        for bad in ["000FA5FF", "abc", "zz", "0g"] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
        assert_eq!(from_hex(""), Some(Vec::new()));
    }
}
