//! The low-level pieces of redaction: edits and how they are applied, regex iteration that can
//! stop early, numeric islands, and the checks and masks for each kind of finding (Luhn,
//! phone shapes, credentials, field names and the values after them).
//!
//! This module owns byte-level scanning and masking formats. It must not decide which rule
//! runs where (the parent's `Rules` and [`Redactor`](super::Redactor) do), and like all of
//! redaction it must not fail, panic or allocate when nothing is masked.

use std::borrow::Cow;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use regex::{Captures, Match, Regex};

/// What a masked secret is replaced with (and what a sensitive JSON field's value becomes).
pub const REDACTED: &str = "[REDACTED]";

/// Fewest and most digits in a card number (ISO/IEC 7812 primary account numbers).
pub(super) const CARD_MIN_DIGITS: usize = 13;
pub(super) const CARD_MAX_DIGITS: usize = 19;

/// How far back [`in_url_authority`] looks for a `://` before an email-like match.
pub(super) const URL_LOOKBACK: usize = 256;

/// Longest field name the `name=value` scanner reads back from a `=` or `:`.
pub(super) const MAX_NAME_LEN: usize = 64;

/// One replacement: `text[start..end]` becomes `with`.
pub(super) struct Edit {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) with: Cow<'static, str>,
}

/// Record an edit unless it would change nothing (already-redacted text stays borrowed).
pub(super) fn push(
    edits: &mut Vec<Edit>,
    text: &str,
    start: usize,
    end: usize,
    with: Cow<'static, str>,
) {
    if start < end && text.get(start..end) != Some(with.as_ref()) {
        edits.push(Edit { start, end, with });
    }
}

/// Apply `edits` to `text`. Edits contained in an earlier one are dropped (for the same span,
/// the rule that ran first wins: the specific formats `****1111` and `***-**-6789` before the
/// `name=value` rule's `[REDACTED]`); edits that overlap an earlier one only partly are merged
/// with it into a single `[REDACTED]`.
pub(super) fn apply(text: &str, mut edits: Vec<Edit>) -> Cow<'_, str> {
    if edits.is_empty() {
        return Cow::Borrowed(text);
    }
    edits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut merged: Vec<Edit> = Vec::with_capacity(edits.len());
    for edit in edits {
        if let Some(last) = merged.last_mut() {
            if edit.start < last.end {
                if edit.end > last.end {
                    last.end = edit.end;
                    last.with = Cow::Borrowed(REDACTED);
                }
                continue;
            }
        }
        merged.push(edit);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for edit in &merged {
        out.push_str(text.get(at..edit.start).unwrap_or_default());
        out.push_str(&edit.with);
        at = edit.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    Cow::Owned(out)
}

/// Without compiled rules nothing can be told apart, so everything is masked.
pub(super) fn fail_closed(text: &str) -> Cow<'_, str> {
    if text.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(REDACTED.to_owned())
    }
}

/// What to do after a match was handled.
pub(super) enum Step {
    /// Continue after the match.
    Next,
    /// The match was rejected; look again one character after its start, so that a shorter
    /// match inside it is still found.
    Retry,
}

/// Run `re` over `text` from `from` to the end, left to right, handing each match to `handle`.
pub(super) fn each_match(
    re: &Regex,
    text: &str,
    from: usize,
    mut handle: impl FnMut(&Captures<'_>) -> Step,
) {
    let mut at = from;
    while at <= text.len() {
        let Some(caps) = re.captures_at(text, at) else {
            break;
        };
        let Some(m) = caps.get(0) else {
            break;
        };
        at = match handle(&caps) {
            Step::Next if m.end() > m.start() => m.end(),
            Step::Next | Step::Retry => next_char(text, m.start()),
        };
    }
}

/// Like [`each_match`], for rules that need only the whole match.
pub(super) fn each_find(
    re: &Regex,
    text: &str,
    from: usize,
    mut handle: impl FnMut(Match<'_>) -> Step,
) {
    let mut at = from;
    while at <= text.len() {
        let Some(m) = re.find_at(text, at) else {
            break;
        };
        at = match handle(m) {
            Step::Next if m.end() > m.start() => m.end(),
            Step::Next | Step::Retry => next_char(text, m.start()),
        };
    }
}

/// The byte offset of the character after the one at `i`.
pub(super) fn next_char(text: &str, i: usize) -> usize {
    text.get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(i + 1, |c| i + c.len_utf8())
}

/// Numeric islands: digits joined by separators of one to three bytes (` `, `-`, `.`, `/`, `(`,
/// `)`, `+`), with a leading `+` or `(`. Every card number, SSN and phone number lies inside
/// one island, as `(start, end, digit count)`.
pub(super) struct NumericIslands<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> NumericIslands<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }
}

impl Iterator for NumericIslands<'_> {
    type Item = (usize, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.bytes;
        let first = self.at + bytes.get(self.at..)?.iter().position(u8::is_ascii_digit)?;
        let mut start = first;
        while start > 0 && first - start < 2 && matches!(bytes[start - 1], b'+' | b'(') {
            start -= 1;
        }
        let (mut end, mut digits) = (first, 0);
        loop {
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
                digits += 1;
            }
            let mut next = end;
            while next < bytes.len() && next - end < 3 && is_island_separator(bytes[next]) {
                next += 1;
            }
            if next > end && bytes.get(next).is_some_and(u8::is_ascii_digit) {
                end = next;
            } else {
                break;
            }
        }
        self.at = end;
        Some((start, end, digits))
    }
}

pub(super) fn is_island_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+')
}

/// A byte of an ASCII word (`\b` in the patterns is ASCII too).
pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Card numbers inside the digit run `text[start..end]`: the run itself if it is a Luhn-valid
/// 13–19 digit number, otherwise every Luhn-valid 13–19 digit stretch of whole digit groups
/// (leftmost first, longest first), so a card stays masked when another number is written next
/// to it ("4111 1111 1111 1111 12 26"). Digits glued to a card without a separator make it a
/// different, longer number and are left to the other rules.
pub(super) fn card_edits(text: &str, start: usize, end: usize, edits: &mut Vec<Edit>) {
    let bytes = text.as_bytes();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = start;
    while i < end {
        if bytes[i].is_ascii_digit() {
            let group_start = i;
            while i < end && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((group_start, i));
        } else {
            i += 1;
        }
    }
    let mut first = 0;
    while first < groups.len() {
        let from = groups[first].0;
        // A lone `0.` is a decimal's integer part (`0.4111…`), not the start of a card grouped
        // with dots: no card number starts with 0 (ISO/IEC 7812).
        if groups[first].1 - from == 1 && bytes[from] == b'0' && bytes.get(from + 1) == Some(&b'.')
        {
            first += 1;
            continue;
        }
        let mut luhn = LuhnSums::default();
        let mut best = None;
        for (last, &(a, b)) in groups.iter().enumerate().skip(first) {
            if luhn.digits + (b - a) > CARD_MAX_DIGITS {
                break;
            }
            luhn.extend(&bytes[a..b]);
            if luhn.digits >= CARD_MIN_DIGITS && luhn.valid() {
                best = Some(last);
            }
        }
        match best {
            Some(last) => {
                let to = groups[last].1;
                let masked = format!("****{}", last_digits(&text[from..to], 4));
                push(edits, text, from, to, masked.into());
                first = last + 1;
            }
            None => first += 1,
        }
    }
}

/// The Luhn check of a digit string that grows to the right, in constant time per digit.
///
/// Which digits Luhn doubles depends on the length (every second one counted from the right),
/// so the sums of plain and of doubled digits are kept for even and odd positions from the left
/// and combined for the current length. [`card_edits`] tries up to 19 lengths per start; checking
/// each one afresh made a long run of one-digit groups cost hundreds of steps per byte.
#[derive(Default)]
pub(super) struct LuhnSums {
    /// `[plain, doubled]` sums of the digits at even and odd positions from the left.
    sums: [[u32; 2]; 2],
    pub(super) digits: usize,
}

impl LuhnSums {
    /// Append the ASCII digits of `group`.
    pub(super) fn extend(&mut self, group: &[u8]) {
        for &b in group.iter().filter(|b| b.is_ascii_digit()) {
            let d = u32::from(b - b'0');
            let parity = self.digits % 2;
            self.sums[0][parity] += d;
            self.sums[1][parity] += if d > 4 { 2 * d - 9 } else { 2 * d };
            self.digits += 1;
        }
    }

    /// Whether the digits so far pass the Luhn check: the last digit is not doubled, the one
    /// before it is, and so on.
    pub(super) fn valid(&self) -> bool {
        let last = self.digits.wrapping_sub(1) % 2;
        (self.sums[0][last] + self.sums[1][1 - last]) % 10 == 0
    }
}

/// The Luhn (mod 10) check, owned by the payment module: one implementation for both.
pub(super) use crate::payment::luhn_valid;

/// `****1111` for an integer that is a Luhn-valid card number.
/// [`mask_card_integer`] for any JSON number: an integer by its magnitude (a sign does not
/// hide a card). A float (a fraction or an exponent was written) is masked whenever its integer
/// part has as many digits as a card number, without the Luhn check: a float holds such a
/// number only approximately (`4111111111111111.75` is stored as `4111111111111112.0`), and no
/// amount is that large.
pub(super) fn mask_card_number(n: &serde_json::Number) -> Option<String> {
    if let Some(n) = n.as_u64() {
        return mask_card_integer(n);
    }
    if let Some(n) = n.as_i64() {
        return mask_card_integer(n.unsigned_abs());
    }
    let whole = n.as_f64()?.abs().trunc();
    if whole < 1e19 {
        // Below 1e19 (< 2^64), so the cast keeps the value (the nearest integer, past 2^53).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let digits = (whole as u64).to_string();
        if (CARD_MIN_DIGITS..=CARD_MAX_DIGITS).contains(&digits.len()) {
            return Some(format!("****{}", last_digits(&digits, 4)));
        }
    }
    // The digits wherever the point stands (`0.4111111111111111`, `4111.111111111111`,
    // `4.111111111111111e19`): the significant ones of the number as written, a card when
    // they are as many as a card has and Luhn-valid — also with the zeros a fraction's
    // shortest form drops (`0.4291417776317030` prints as `0.429141777631703`).
    let text = n.to_string();
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_start_matches('0');
    let digits = if mantissa.contains('.') {
        digits.trim_end_matches('0')
    } else {
        digits
    };
    if (CARD_MIN_DIGITS..=CARD_MAX_DIGITS).contains(&digits.len()) && luhn_valid(digits) {
        return Some(format!("****{}", last_digits(digits, 4)));
    }
    // The zero a shortest form drops from a 15- or 16-digit card (the lengths a float holds
    // whole), and only one: each restored zero is another one-in-ten chance for an ordinary
    // value to pass Luhn.
    let restored = format!("{digits}0");
    ((15..=16).contains(&restored.len()) && luhn_valid(&restored))
        .then(|| format!("****{}", last_digits(&restored, 4)))
}

pub(super) fn mask_card_integer(n: u64) -> Option<String> {
    let digits = n.to_string();
    ((CARD_MIN_DIGITS..=CARD_MAX_DIGITS).contains(&digits.len()) && luhn_valid(&digits))
        .then(|| format!("****{}", last_digits(&digits, 4)))
}

/// The last `n` ASCII digits of `s`, in order.
pub(super) fn last_digits(s: &str, n: usize) -> String {
    let mut tail: Vec<char> = s
        .chars()
        .rev()
        .filter(char::is_ascii_digit)
        .take(n)
        .collect();
    tail.reverse();
    tail.into_iter().collect()
}

pub(super) fn count_digits(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

pub(super) fn mask_ssn(s: &str) -> Cow<'static, str> {
    format!("***-**-{}", last_digits(s, 4)).into()
}

/// `j***` (of `j***@example.com`): the first character of the local part is kept.
pub(super) fn mask_email_local(local: &str) -> String {
    let first = local.chars().next().map(String::from).unwrap_or_default();
    format!("{first}***")
}

/// Whether a phone-shaped match is a whole phone number, not digits inside a longer number.
pub(super) fn is_phone(bytes: &[u8], start: usize, end: usize) -> bool {
    let digits = bytes[start..end]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .count();
    let min = if bytes[start] == b'+' { 8 } else { 10 };
    let before = start.checked_sub(1).map(|i| bytes[i]);
    let after = bytes.get(end).copied();
    (min..=15).contains(&digits)
        && !before.is_some_and(|b| b.is_ascii_digit() || b == b'+')
        && !after.is_some_and(|b| b.is_ascii_digit())
}

/// Whether `start` lies in the authority of a URL (`https://user:pass@host`), where the URL
/// rule masks the user info and the email rule must not take half of it.
pub(super) fn in_url_authority(bytes: &[u8], start: usize) -> bool {
    let window = &bytes[start.saturating_sub(URL_LOOKBACK)..start];
    let token = window
        .iter()
        .rposition(u8::is_ascii_whitespace)
        .map_or(window, |p| &window[p + 1..]);
    token
        .windows(3)
        .rposition(|w| w == b"://")
        .is_some_and(|p| !token[p + 3..].contains(&b'/'))
}

/// Whether the word after "Bearer" / "Basic" is a credential rather than prose ("basic plan").
pub(super) fn is_credential(scheme: &str, value: &str) -> bool {
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(value)
            .or_else(|_| STANDARD_NO_PAD.decode(value));
        decoded.is_ok_and(|d| d.contains(&b':'))
    } else {
        value.len() >= 8 && (value.len() >= 20 || !value.bytes().all(|b| b.is_ascii_alphabetic()))
    }
}

/// A bare word after "secret" / "token": masked when it has a digit or a symbol in it.
pub(super) fn looks_like_secret(word: &str) -> bool {
    word.chars().any(char::is_alphanumeric) && !word.chars().all(char::is_alphabetic)
}

pub(super) fn trim_sentence_end(word: &str) -> &str {
    word.trim_end_matches(['.', '!', '?', ')', ':'])
}

/// ASCII lowercase without `_`, `-`, `.` and whitespace.
pub(super) fn normalize_field(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.') && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub(super) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The field name written just before the `:` or `=` at `pos`, skipping spaces and a closing
/// (possibly escaped) quote.
pub(super) fn name_before(text: &str, pos: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut end = pos;
    while end > 0 && matches!(bytes[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    if end > 0 && matches!(bytes[end - 1], b'"' | b'\'') {
        end -= 1;
        if end > 0 && bytes[end - 1] == b'\\' {
            end -= 1;
        }
    }
    let mut start = end;
    while start > 0 && is_name_byte(bytes[start - 1]) {
        start -= 1;
        if end - start > MAX_NAME_LEN {
            return None;
        }
    }
    text.get(start..end).filter(|name| !name.is_empty())
}

/// Where bare values end, remembered between the field-name scanner's calls.
///
/// A bare value runs to the next delimiter (see [`BareEnds::end`]); with `pin:pin:pin:…` every
/// `:` starts a value that ends at the same far delimiter, and finding it afresh each time made
/// the scan quadratic. The span `[from, end)` holds no delimiter and `end` is a delimiter (or the
/// end of the text), so any value starting inside it ends at `end`: the scanner's starts only
/// move forward, so the text is read once.
#[derive(Default)]
pub(super) struct BareEnds {
    known: Option<(usize, usize)>,
}

impl BareEnds {
    /// The end of the bare value starting at `start`: up to whitespace or a delimiter (an
    /// earlier `[REDACTED]` is read whole, so redacting twice changes nothing more).
    pub(super) fn end(&mut self, bytes: &[u8], start: usize) -> usize {
        let rest = bytes.get(start..).unwrap_or_default();
        if rest.starts_with(REDACTED.as_bytes()) {
            return start + REDACTED.len();
        }
        match self.known {
            Some((from, end)) if from <= start && start <= end => end,
            _ => {
                let end = start
                    + rest
                        .iter()
                        .position(|&b| ends_bare(b))
                        .unwrap_or(rest.len());
                self.known = Some((start, end));
                end
            }
        }
    }
}

/// A byte that ends a bare value: whitespace or a delimiter.
fn ends_bare(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b',' | b';' | b'&' | b'"' | b'\'' | b'<' | b'>' | b')' | b']' | b'}' | b'\\'
        )
}

/// The span of the value written after a `:` or `=` at `from - 1`: the inside of a quoted
/// string, or a bare word. An authentication scheme word ("Bearer", "Basic") is kept and the
/// word after it is the value. `None` for no value or a structured one (`{`, `[`).
///
/// Linear over a whole text: the separator runs it skips are disjoint between two sensitive
/// names, a quoted value ends at the next quote of its kind (where the next value of that kind
/// starts at the earliest), and bare values are measured through `bare`.
pub(super) fn value_after(
    bytes: &[u8],
    from: usize,
    bare: &mut BareEnds,
) -> Option<(usize, usize)> {
    let mut i = from;
    while i < bytes.len() && matches!(bytes[i], b':' | b'=') {
        i += 1;
    }
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    let rest = bytes.get(i..)?;
    if rest.starts_with(b"\\\"") {
        let start = i + 2;
        let end = bytes[start..]
            .windows(2)
            .position(|w| w == b"\\\"")
            .map_or_else(|| bare.end(bytes, start), |len| start + len);
        return Some((start, end)).filter(|(s, e)| s < e);
    }
    match rest.first() {
        Some(&quote @ (b'"' | b'\'')) => {
            let start = i + 1;
            let mut j = start;
            while j < bytes.len() && bytes[j] != quote && bytes[j] != b'\n' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            Some((start, j.min(bytes.len()))).filter(|(s, e)| s < e)
        }
        Some(b'{' | b'[') | None => None,
        Some(_) => {
            let end = bare.end(bytes, i);
            let word = &bytes[i..end];
            let is_scheme = [
                "basic",
                "bearer",
                "digest",
                "token",
                "negotiate",
                "ntlm",
                "hmac",
            ]
            .iter()
            .any(|s| word.eq_ignore_ascii_case(s.as_bytes()));
            if is_scheme && bytes.get(end) == Some(&b' ') {
                let mut k = end;
                while k < bytes.len() && bytes[k] == b' ' {
                    k += 1;
                }
                let next = bare.end(bytes, k);
                if next > k {
                    return Some((k, next));
                }
            }
            Some((i, end)).filter(|(s, e)| s < e)
        }
    }
}
