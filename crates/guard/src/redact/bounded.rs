//! Bounded redaction for log lines: what one request field can make the redactor read.
//!
//! This module owns the caps on attacker-sized text that reaches a log line (a path, a header
//! value, an argument, a whole line) and the marker that says how much was cut. A field is cut
//! at its cap *before* redaction, the kept part is redacted, and the marker is appended after,
//! so the redactor never reads more than the cap from one field and the marker itself cannot be
//! taken for a secret's value. It must not decide what is sensitive (the parent module does).

use std::borrow::Cow;

use super::Redactor;

/// Most bytes of a request path kept in a log line.
pub const MAX_LOG_PATH: usize = 256;

/// Most bytes of one other request field (a header value, an argument) kept in a log line.
pub const MAX_LOG_FIELD: usize = 1024;

/// Most bytes of one formatted log line (or one multi-line event) kept by the log writer.
pub const MAX_LOG_LINE: usize = 16 * 1024;

/// The marker that replaces what was cut: ` …[truncated 123456 bytes]`. It starts with a space
/// so that a redactor reading the line again (the log writer does) ends a bare `name:value` at
/// it instead of swallowing the marker into the value.
pub fn truncation_marker(dropped: usize) -> String {
    format!(" …[truncated {dropped} bytes]")
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to at most `max` bytes on a character boundary, and how many bytes were cut.
///
/// When anything is cut, the run of word characters (ASCII letters, digits, the separators of
/// card numbers and tokens — `-`, `_`, `.`, space, and `%` of their percent-encoded forms — and
/// the `:`/`=` of `name=value`) that the
/// cut went through is cut too: a secret split by the cap would otherwise leave a part too short
/// for the redactor to recognise (12 digits of a card number pass no Luhn check) in clear, and a
/// dangling `pin:` would make the redactor take the marker for its value.
pub fn clip(text: &str, max: usize) -> (&str, usize) {
    if text.len() <= max {
        return (text, 0);
    }
    // `%` too: a separator written percent-encoded (`4111%2D1111…`) is part of the run.
    let kept = prefix(text, max).trim_end_matches(|c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ' | ':' | '=' | '%')
    });
    (kept, text.len() - kept.len())
}

impl Redactor {
    /// Redact at most the first `max` bytes of `text`: longer text is cut before redaction and
    /// ends with [`truncation_marker`]. Borrowed when nothing was cut or masked.
    ///
    /// ```
    /// use voxguard_guard::redact::MAX_LOG_PATH;
    /// use voxguard_guard::Redactor;
    ///
    /// let path = "/pin:4321".repeat(10_000);
    /// let logged = Redactor::new().redact_bounded(&path, MAX_LOG_PATH);
    /// assert!(logged.len() < MAX_LOG_PATH + 40);
    /// assert!(logged.contains("…[truncated "));
    /// assert!(!logged.contains("4321"));
    /// ```
    pub fn redact_bounded<'a>(&self, text: &'a str, max: usize) -> Cow<'a, str> {
        let (kept, dropped) = clip(text, max);
        let redacted = self.redact_text(kept);
        if dropped == 0 {
            return redacted;
        }
        let mut out = redacted.into_owned();
        out.push_str(&truncation_marker(dropped));
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod cut_tests {
    use super::*;

    #[test]
    fn a_secret_split_by_the_cap_is_cut_whole() {
        let text = format!("{}4111 1111 1111 1111 tail", "x/".repeat(60));
        for max in 120..text.len() {
            let logged = Redactor::new().redact_bounded(&text, max);
            assert!(!logged.contains("1111"), "{max}: {logged}");
        }
        let (kept, dropped) = clip("abc/def", 5);
        assert_eq!((kept, dropped), ("abc/", 3));
    }
}
