//! Redaction of sensitive values in free text and JSON, before anything reaches a sink.
//!
//! This module owns the answer to "what may leave the process in clear" (invariant 5):
//! [`Redactor`] finds card numbers (Luhn-checked), card security codes, PINs and one-time codes,
//! Social Security numbers, passwords, secrets, tokens, `Authorization` headers, credentials in
//! URLs, email addresses, phone numbers and dates of birth in free text and masks them, and it
//! masks the values of sensitive fields (`pin`, `card_number`, `password`, `__token`, …, plus
//! per-tool extras) in JSON at any depth. Every sink — log lines, audit events, error messages,
//! stored transcripts and summaries — passes its text through one.
//!
//! It must not do I/O or log, and must not fail or panic: a redactor that errors is a redactor
//! someone switches off (if its patterns could not be compiled it fails closed and masks every
//! string). It must not touch what it does not recognise as sensitive either: amounts
//! (`$150.00`, `1,250.75`), times (`10:30`), short numbers (`123 Main St`, `4B`), years, order
//! numbers (`ORD-12345`), digit runs that fail the Luhn check, and timestamps come out byte for
//! byte, and a text with nothing to mask comes back borrowed, without an allocation. It errs on
//! the side of masking: any `123-45-6789`-shaped number is treated as an SSN, and a word after
//! "password is" is masked unless it is an obvious description ("wrong", "expired", …).
//!
//! Masking formats, in one place:
//!
//! | what | example in | example out |
//! |---|---|---|
//! | card number (13–19 digits, Luhn-valid) | `4111 1111 1111 1111` | `****1111` |
//! | CVV / CVC / security code / PIN / OTP, by context | `my pin is 4321` | `my pin is [REDACTED]` |
//! | SSN, by shape or by context | `123-45-6789`, `ssn 123456789` | `***-**-6789` |
//! | secret after a sensitive name | `password=hunter2`, `"token": "abc"` | `password=[REDACTED]` |
//! | secret in a phrase | `my password is hunter2` | `my password is [REDACTED]` |
//! | `Authorization` header, bearer and basic credentials | `Authorization: Bearer eyJ…` | `Authorization: Bearer [REDACTED]` |
//! | credentials in a URL | `https://user:pass@host/x` | `https://[REDACTED]@host/x` |
//! | email address | `jane.doe@example.com` | `j***@example.com` |
//! | phone number | `(555) 123-4567`, `+1 555 123 4567` | `***-***-4567` |
//! | date of birth, by context | `DOB 1980-02-29` | `DOB [REDACTED]` |
//! | JSON value under a sensitive field | `{"pin": "4321"}` | `{"pin": "[REDACTED]"}` |
//!
//! When two findings overlap only partly, the union of both is replaced by `[REDACTED]`, so no
//! digit of either survives.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use regex::{CaptureLocations, Captures, Match, Regex};
use serde_json::{Map, Value};

/// What a masked secret is replaced with (and what a sensitive JSON field's value becomes).
pub const REDACTED: &str = "[REDACTED]";

/// Fewest and most digits in a card number (ISO/IEC 7812 primary account numbers).
const CARD_MIN_DIGITS: usize = 13;
const CARD_MAX_DIGITS: usize = 19;

/// How far back [`in_url_authority`] looks for a `://` before an email-like match.
const URL_LOOKBACK: usize = 256;

/// Longest field name the `name=value` scanner reads back from a `=` or `:`.
const MAX_NAME_LEN: usize = 64;

/// Field names (normalized: ASCII lowercase, without `_`, `-`, `.` and spaces) whose values are
/// always masked.
const SENSITIVE_FIELDS: &[&str] = &[
    "accountno",
    "accountnumber",
    "accountpin",
    "apikey",
    "auth",
    "authorization",
    "birthdate",
    "birthday",
    "card",
    "cardno",
    "cardnumber",
    "cardpin",
    "cardsecuritycode",
    "ccnumber",
    "cookie",
    "credential",
    "credentials",
    "creditcard",
    "creditcardnumber",
    "csc",
    "currentpin",
    "cvc",
    "cvc2",
    "cvn",
    "cvv",
    "cvv2",
    "dateofbirth",
    "dob",
    "iban",
    "newpin",
    "oldpin",
    "otp",
    "pan",
    "passcode",
    "passphrase",
    "passwd",
    "password",
    "pin",
    "pincode",
    "pinnumber",
    "privatekey",
    "proxyauthorization",
    "pwd",
    "secret",
    "securitycode",
    "setcookie",
    "socialsecuritynumber",
    "ssn",
    "token",
];

/// Normalized field-name endings that make a field sensitive (`db_password`, `client_secret`,
/// `meta_data_token`, `x-api-key`, `card_cvv`, …).
const SENSITIVE_SUFFIXES: &[&str] = &[
    "accesskey",
    "accountnumber",
    "apikey",
    "authorization",
    "cardnumber",
    "credentials",
    "cvv",
    "dateofbirth",
    "passcode",
    "passphrase",
    "passwd",
    "password",
    "privatekey",
    "secret",
    "secretkey",
    "securitycode",
    "ssn",
    "token",
];

/// Words that, after "password is" / "token was", describe the secret rather than being it.
const NOT_A_SECRET: &[&str] = &[
    "a",
    "absent",
    "accepted",
    "already",
    "also",
    "an",
    "bad",
    "being",
    "blank",
    "case",
    "changed",
    "correct",
    "denied",
    "different",
    "easy",
    "empty",
    "expired",
    "fine",
    "for",
    "good",
    "hard",
    "here",
    "in",
    "incomplete",
    "incorrect",
    "invalid",
    "it",
    "locked",
    "long",
    "missing",
    "my",
    "needed",
    "none",
    "not",
    "now",
    "null",
    "ok",
    "okay",
    "on",
    "out",
    "present",
    "ready",
    "refused",
    "rejected",
    "required",
    "reset",
    "revoked",
    "safe",
    "same",
    "secure",
    "sensitive",
    "set",
    "short",
    "simple",
    "still",
    "strong",
    "that",
    "the",
    "there",
    "this",
    "to",
    "too",
    "unknown",
    "unset",
    "valid",
    "weak",
    "what",
    "wrong",
    "your",
];

/// Separator between a context word and its value: spaces, an optional (escaped) quote, and
/// optionally `:`, `=`, `#`, "is" or "was" ("pin: 4321", "pin is 4321", `"pin": "4321"`).
const SEP: &str = r#"\s*\\?["']?\s*(?:(?:[:=#]|(?i-u:is|was))\s*\\?["']?\s*)?"#;

/// Month names and their abbreviations, for dates of birth written out.
const MONTH: &str = r"(?i-u:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";

/// A maximal run of at least 13 digits, with single spaces or dashes allowed between digits.
const CARD_RUN: &str = r"[0-9](?:[ -]?[0-9]){12,}";

/// An SSN by shape: `123-45-6789` or `123 45 6789`.
const SSN_SHAPE: &str = r"(?-u:\b)[0-9]{3}[ -][0-9]{2}[ -][0-9]{4}(?-u:\b)";

/// US formats (`(555) 123-4567`, `555-123-4567`, `555.123.4567`, `+1 555 123 4567`) and
/// international ones starting with `+` (`+15551234567`, `+44 20 7946 0958`).
const PHONE: &str = r"(?:\+?1[ .-]?)?(?:\([0-9]{3}\)[ .-]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}|\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,5}";

/// An email address (practical shape, not RFC 5322).
const EMAIL: &str = r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?-u:\b)";

/// The user-info part of a URL: `scheme://user:pass@host`.
const URL_USERINFO: &str = r#"://([^\s/?#"'<>\\]+)@"#;

/// Anchored at a keyword: "Bearer <token>" and "Basic <base64>" wherever they appear.
const AUTH_SCHEME: &str = r"^((?i-u:bearer|basic))\s+([A-Za-z0-9._~+/-]+=*)";

/// Anchored at a keyword: "password is hunter2", "secret abc123", "api key was k-42" — the
/// value after a secret word and spaces (`name: value` is the field-name scanner's job).
const SECRET_PHRASE: &str = r#"^(?i-u:pass(?:word|wd|phrase|code)|secret|token|api[ _-]?key)(\s+(?i-u:is|was)\s+|\s+)([^\s"'<>,;:=][^\s"'<>,;]*)"#;

/// Anchored at a keyword: a card security code, PIN or one-time code and its digits.
fn code_context() -> String {
    format!(
        r"^(?i-u:cvv2?|cvc2?|cvn|csc|security\s+code|card\s+(?:security|verification)\s+code|verification\s+code|pin(?:\s+(?:number|code))?|passcode|otp){SEP}([0-9]+(?:[ -][0-9]+)*)(?-u:\b)"
    )
}

/// Anchored at a keyword: "ssn", "social security number" and nine digits.
fn ssn_context() -> String {
    format!(
        r"^(?i-u:ssn|social\s+security(?:\s+(?:number|num|no\.?))?){SEP}([0-9]{{3}}[ -]?[0-9]{{2}}[ -]?[0-9]{{4}})(?-u:\b)"
    )
}

/// Anchored at a keyword: "DOB", "date of birth", "born on", … and a date.
fn dob_context() -> String {
    let date = format!(
        r"[0-9]{{4}}[-/.][0-9]{{1,2}}[-/.][0-9]{{1,2}}|[0-9]{{1,2}}[-/.][0-9]{{1,2}}[-/.](?:[0-9]{{4}}|[0-9]{{2}})|[0-9]{{8}}|{MONTH}\.?\s+[0-9]{{1,2}}(?i-u:st|nd|rd|th)?,?\s+[0-9]{{4}}|[0-9]{{1,2}}(?i-u:st|nd|rd|th)?\s+(?i-u:of\s+)?{MONTH}\.?,?\s+[0-9]{{4}}"
    );
    format!(
        r"^(?i-u:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date|birthday|born(?:\s+on)?){SEP}({date})(?-u:\b)"
    )
}

/// A rule that starts at a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// CVV/CVC/security code/PIN/passcode/OTP digits.
    Code,
    /// SSN digits after "ssn" / "social security number".
    Ssn,
    /// A date after "DOB" / "date of birth" / "born on".
    Dob,
    /// The word after "password" / "secret" / "token" / "api key" (and "is"/"was").
    Secret,
    /// The credential after "Bearer" / "Basic".
    Auth,
}

impl Context {
    /// Whether the keyword must start a word ("pin" but not "spin"); secret words may end a
    /// longer name ("mysecret abc123").
    fn needs_word_start(self) -> bool {
        self != Self::Secret
    }
}

/// Capture slots reused across the keyword hits of one text, one set per [`Context`].
#[derive(Default)]
struct Scratch {
    locations: [Option<CaptureLocations>; 5],
}

impl Scratch {
    fn locations(&mut self, context: Context, re: &Regex) -> &mut CaptureLocations {
        self.locations[context as usize].get_or_insert_with(|| re.capture_locations())
    }
}

/// Keyword stems (matched in the ASCII-lowercased text) and the rules to try where one starts, in
/// order. A stem is where an anchored rule may begin; the rule's own pattern decides.
const KEYWORDS: &[(&str, &[Context])] = &[
    ("cvv", &[Context::Code]),
    ("cvc", &[Context::Code]),
    ("cvn", &[Context::Code]),
    ("csc", &[Context::Code]),
    ("otp", &[Context::Code]),
    ("pin", &[Context::Code]),
    ("security", &[Context::Code]),
    ("verification", &[Context::Code]),
    ("card", &[Context::Code]),
    ("pass", &[Context::Code, Context::Secret]),
    ("ssn", &[Context::Ssn]),
    ("social", &[Context::Ssn]),
    ("dob", &[Context::Dob]),
    ("d.o.b", &[Context::Dob]),
    ("date", &[Context::Dob]),
    ("birth", &[Context::Dob]),
    ("born", &[Context::Dob]),
    ("secret", &[Context::Secret]),
    ("token", &[Context::Secret]),
    ("api", &[Context::Secret]),
    ("bearer", &[Context::Auth]),
    ("basic", &[Context::Auth]),
];

/// Fewest digits in a numeric island worth a look by the digit-shaped rules (an E.164 phone
/// number has at least 8).
const MIN_ISLAND_DIGITS: usize = 8;

/// The compiled patterns, built once per process and shared by every [`Redactor`].
///
/// Scanning a 2 KB text once costs a few microseconds per regular expression, so the text is
/// read whole only three times: once by an Aho-Corasick automaton for keywords (each hit then
/// runs the matching `^`-anchored rule from there), once by a byte loop for numeric islands
/// (the digit-shaped rules run only inside islands with enough digits), and once for `:`/`=`
/// (the field-name scanner); the email and URL rules run only when there is an `@`.
struct Rules {
    keywords: AhoCorasick,
    code_context: Regex,
    ssn_context: Regex,
    dob_context: Regex,
    secret_phrase: Regex,
    auth_scheme: Regex,
    card: Regex,
    ssn_shape: Regex,
    phone: Regex,
    email: Regex,
    url_userinfo: Regex,
}

impl Rules {
    /// `None` only if a pattern does not compile — a bug the tests catch; the redactor then
    /// fails closed.
    fn build() -> Option<Self> {
        let re = |p: &str| Regex::new(p).ok();
        let keywords = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(KEYWORDS.iter().map(|(stem, _)| stem))
            .ok()?;
        Some(Self {
            keywords,
            code_context: re(&code_context())?,
            ssn_context: re(&ssn_context())?,
            dob_context: re(&dob_context())?,
            secret_phrase: re(SECRET_PHRASE)?,
            auth_scheme: re(AUTH_SCHEME)?,
            card: re(CARD_RUN)?,
            ssn_shape: re(SSN_SHAPE)?,
            phone: re(PHONE)?,
            email: re(EMAIL)?,
            url_userinfo: re(URL_USERINFO)?,
        })
    }

    /// Run the `context` rule anchored at `at`; the end of its match if it masked something.
    fn context_at(
        &self,
        context: Context,
        text: &str,
        at: usize,
        scratch: &mut Scratch,
        edits: &mut Vec<Edit>,
    ) -> Option<usize> {
        let bytes = text.as_bytes();
        if context.needs_word_start() && at > 0 && is_word_byte(bytes[at - 1]) {
            return None;
        }
        let rest = text.get(at..)?;
        let re = match context {
            Context::Code => &self.code_context,
            Context::Ssn => &self.ssn_context,
            Context::Dob => &self.dob_context,
            Context::Secret => &self.secret_phrase,
            Context::Auth => &self.auth_scheme,
        };
        // The DFA finds the match; the capture engine then runs on just that span (plus the
        // character after it, for a trailing `\b`), where it is fast.
        let found = re.find(rest)?;
        let end = at + found.end();
        let rest = rest.get(..next_char(rest, found.end()).min(rest.len()))?;
        let locs = scratch.locations(context, re);
        re.captures_read(locs, rest)?;
        let locs = &*locs;
        let span = |i: usize| {
            let (s, e) = locs.get(i)?;
            Some((at + s, at + e, rest.get(s..e)?))
        };
        match context {
            Context::Code => {
                let (s, e, digits) = span(1)?;
                if count_digits(digits) < 3 {
                    return None;
                }
                push(edits, text, s, e, REDACTED.into());
            }
            Context::Ssn => {
                let (s, e, digits) = span(1)?;
                push(edits, text, s, e, mask_ssn(digits));
            }
            Context::Dob => {
                let (s, e, _) = span(1)?;
                push(edits, text, s, e, REDACTED.into());
            }
            Context::Secret => {
                let (_, _, sep) = span(1)?;
                let (s, _, value) = span(2)?;
                let secret = trim_sentence_end(value);
                let masked = if sep.trim().is_empty() {
                    looks_like_secret(secret)
                } else {
                    NOT_A_SECRET
                        .binary_search(&secret.to_ascii_lowercase().as_str())
                        .is_err()
                };
                if !masked || secret.is_empty() {
                    return None;
                }
                push(edits, text, s, s + secret.len(), REDACTED.into());
            }
            Context::Auth => {
                let (_, _, scheme) = span(1)?;
                let (s, e, value) = span(2)?;
                if !is_credential(scheme, value) {
                    return None;
                }
                push(edits, text, s, e, REDACTED.into());
            }
        }
        Some(end)
    }
}

/// Masks sensitive values in free text and JSON; see the [module docs](self) for the rules and
/// the exact masking formats.
///
/// Cloning is cheap (the compiled rules are shared), and a `Redactor` is `Send + Sync`, so one
/// instance can serve every sink of a process. [`Redactor::default`] applies the standard rules.
///
/// ```
/// use serde_json::json;
/// use voxguard_guard::Redactor;
///
/// let redactor = Redactor::new().with_sensitive_fields(["member_id"]);
///
/// assert_eq!(
///     redactor.redact_text("card 4111 1111 1111 1111, cvv 123, total $150.00 at 10:30"),
///     "card ****1111, cvv [REDACTED], total $150.00 at 10:30"
/// );
/// assert_eq!(redactor.redact_text("call me at (555) 123-4567"), "call me at ***-***-4567");
///
/// let mut event = json!({"args": {"Member-ID": "M-77", "PIN": "4321", "note": "ssn 123-45-6789"}});
/// redactor.redact_json(&mut event);
/// assert_eq!(
///     event,
///     json!({"args": {"Member-ID": "[REDACTED]", "PIN": "[REDACTED]", "note": "ssn ***-**-6789"}})
/// );
/// ```
#[derive(Clone)]
pub struct Redactor {
    rules: Option<Arc<Rules>>,
    extra_fields: Arc<BTreeSet<String>>,
}

impl Default for Redactor {
    /// Same as [`Redactor::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("keywords", &KEYWORDS.len())
            .field("fail_closed", &self.rules.is_none())
            .field("extra_fields", &self.extra_fields)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor with the standard rules and field names. The patterns are compiled once per
    /// process; later calls share them.
    pub fn new() -> Self {
        static SHARED: OnceLock<Redactor> = OnceLock::new();
        SHARED
            .get_or_init(|| Redactor {
                rules: Rules::build().map(Arc::new),
                extra_fields: Arc::new(BTreeSet::new()),
            })
            .clone()
    }

    /// Extra field names whose values are always masked (per-tool `.sensitive_args([...])` on top
    /// of the defaults). Names match case-insensitively and ignoring `_`, `-`, `.` and spaces,
    /// in JSON ([`Redactor::redact_json`]) and in `name=value` / `name: value` text.
    #[must_use]
    pub fn with_sensitive_fields<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut fields = (*self.extra_fields).clone();
        fields.extend(
            names
                .into_iter()
                .map(|name| normalize_field(&name.into()))
                .filter(|name| !name.is_empty()),
        );
        self.extra_fields = Arc::new(fields);
        self
    }

    /// Redact free text (log messages, error messages, transcripts, summaries).
    ///
    /// Returns [`Cow::Borrowed`] when nothing was masked, so the common case does not allocate.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(rules) = self.rules.as_deref() else {
            return fail_closed(text);
        };
        let mut edits = Vec::new();
        self.find(rules, text, &mut edits);
        apply(text, edits)
    }

    /// Redact a JSON value in place: values under sensitive field names (at any depth,
    /// case-insensitive, `_`/`-` insensitive) are replaced wholesale by `"[REDACTED]"` (a `null`
    /// stays `null`); every other string is passed through [`Redactor::redact_text`], and so are
    /// object keys (a key that changes is renamed; on a clash `~2`, `~3`, … is appended).
    /// Integers that are Luhn-valid card numbers become the string `"****1111"`. Nesting depth
    /// is not limited by the stack: the walk is iterative.
    pub fn redact_json(&self, value: &mut Value) {
        let mut stack = vec![value];
        while let Some(value) = stack.pop() {
            match value {
                Value::String(s) => {
                    if let Cow::Owned(masked) = self.redact_text(s) {
                        *s = masked;
                    }
                }
                Value::Number(n) => {
                    if let Some(masked) = n.as_u64().and_then(mask_card_integer) {
                        *value = Value::String(masked);
                    }
                }
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => {
                    self.redact_keys(map);
                    for (key, child) in map.iter_mut() {
                        if self.is_sensitive_field(key) {
                            if !child.is_null() {
                                *child = Value::String(REDACTED.to_owned());
                            }
                        } else {
                            stack.push(child);
                        }
                    }
                }
                Value::Null | Value::Bool(_) => {}
            }
        }
    }

    /// Whether a field name is sensitive by default or by configuration. Names are compared
    /// case-insensitively, ignoring `_`, `-`, `.` and spaces; by default a name is sensitive when
    /// it is one of the standard names (`pin`, `cvv`, `card_number`, `ssn`, `password`,
    /// `__token`, `api_key`, `authorization`, `dob`, `account_number`, …) or ends with one of
    /// the standard endings (`…password`, `…secret`, `…token`, `…api_key`, `…card_number`, …).
    ///
    /// ```
    /// let redactor = voxguard_guard::Redactor::new();
    /// assert!(redactor.is_sensitive_field("Card-Number"));
    /// assert!(redactor.is_sensitive_field("client_secret"));
    /// assert!(!redactor.is_sensitive_field("max_tokens"));
    /// assert!(!redactor.is_sensitive_field("amount"));
    /// ```
    pub fn is_sensitive_field(&self, name: &str) -> bool {
        // Short ASCII names (nearly all) are normalized on the stack: the field-name scanner
        // asks for every `:` and `=` in a text.
        let mut buf = [0u8; MAX_NAME_LEN];
        if name.len() <= MAX_NAME_LEN && name.is_ascii() {
            let mut len = 0;
            for b in name
                .bytes()
                .filter(|b| !matches!(b, b'_' | b'-' | b'.') && !b.is_ascii_whitespace())
            {
                buf[len] = b.to_ascii_lowercase();
                len += 1;
            }
            std::str::from_utf8(&buf[..len]).is_ok_and(|n| self.is_sensitive_normalized(n))
        } else {
            self.is_sensitive_normalized(&normalize_field(name))
        }
    }

    fn is_sensitive_normalized(&self, name: &str) -> bool {
        // Comparing last bytes first skips most suffix comparisons cheaply.
        let last = name.as_bytes().last();
        SENSITIVE_FIELDS.binary_search(&name).is_ok()
            || SENSITIVE_SUFFIXES
                .iter()
                .any(|s| s.as_bytes().last() == last && name.ends_with(s))
            || (!self.extra_fields.is_empty() && self.extra_fields.contains(name))
    }

    /// Every finding in `text`, as edits in the order the rules ran.
    fn find(&self, rules: &Rules, text: &str, edits: &mut Vec<Edit>) {
        let bytes = text.as_bytes();

        // Digit-shaped rules, inside numeric islands only.
        for (start, end, digits) in NumericIslands::new(bytes) {
            if digits < MIN_ISLAND_DIGITS {
                continue;
            }
            let plus = bytes[start] == b'+';
            // The haystack ends one character after the island, so a trailing `\b` sees it.
            let hay = text
                .get(..next_char(text, end).min(text.len()))
                .unwrap_or(text);
            if digits >= CARD_MIN_DIGITS {
                each_find(&rules.card, hay, start, |m| {
                    card_edits(text, m.start(), m.end(), edits);
                    Step::Next
                });
            }
            if digits >= 9 {
                each_find(&rules.ssn_shape, hay, start, |m| {
                    push(edits, text, m.start(), m.end(), mask_ssn(m.as_str()));
                    Step::Next
                });
            }
            if digits < 10 && !plus {
                continue;
            }
            each_find(&rules.phone, hay, start, |m| {
                if !is_phone(bytes, m.start(), m.end()) {
                    return Step::Retry;
                }
                let masked = format!("***-***-{}", last_digits(m.as_str(), 4));
                push(edits, text, m.start(), m.end(), masked.into());
                Step::Next
            });
        }

        // Keyword-led rules, each anchored where its keyword starts. Lowercasing only changes
        // ASCII bytes, so offsets in `lower` are offsets in `text`.
        let lower: Cow<'_, str> = if bytes.iter().any(u8::is_ascii_uppercase) {
            Cow::Owned(text.to_ascii_lowercase())
        } else {
            Cow::Borrowed(text)
        };
        let mut scratch = Scratch::default();
        let mut resume = 0;
        for hit in rules.keywords.find_iter(lower.as_ref()) {
            if hit.start() < resume {
                continue;
            }
            let contexts = KEYWORDS
                .get(hit.pattern().as_usize())
                .map_or(&[][..], |k| k.1);
            for &context in contexts {
                if let Some(end) = rules.context_at(context, text, hit.start(), &mut scratch, edits)
                {
                    resume = end;
                    break;
                }
            }
        }

        if bytes.contains(&b'@') {
            each_find(&rules.email, text, 0, |m| {
                // Only the local part is replaced: the domain stays text like any other, so
                // the other rules still see the digits in it.
                let local = m.as_str().split('@').next().unwrap_or_default();
                if !in_url_authority(bytes, m.start()) {
                    let end = m.start() + local.len();
                    push(edits, text, m.start(), end, mask_email_local(local).into());
                }
                Step::Next
            });
            if text.contains("://") {
                each_match(&rules.url_userinfo, text, 0, |caps| {
                    if let Some(m) = caps.get(1) {
                        push(edits, text, m.start(), m.end(), REDACTED.into());
                    }
                    Step::Next
                });
            }
        }

        self.assignments(text, edits);
    }

    /// `name=value`, `name: value`, `"name": "value"` and `\"name\":\"value\"` where `name` is a
    /// sensitive field name: the value is masked (an `Authorization`-style scheme word is kept).
    fn assignments(&self, text: &str, edits: &mut Vec<Edit>) {
        let bytes = text.as_bytes();
        for (pos, &b) in bytes.iter().enumerate() {
            if b != b':' && b != b'=' {
                continue;
            }
            let Some(name) = name_before(text, pos) else {
                continue;
            };
            if !self.is_sensitive_field(name) {
                continue;
            }
            if let Some((start, end)) = value_after(bytes, pos + 1) {
                push(edits, text, start, end, REDACTED.into());
            }
        }
    }

    /// Object keys are caller data too: a key that contains a secret is renamed to its redacted
    /// form (with a `~n` suffix if that name is taken).
    fn redact_keys(&self, map: &mut Map<String, Value>) {
        if self.rules.is_none() {
            // Failing closed masks every value; keys are kept so the shape stays readable.
            return;
        }
        let renames: Vec<(String, String)> = map
            .keys()
            .filter_map(|key| match self.redact_text(key) {
                Cow::Owned(masked) => Some((key.clone(), masked)),
                Cow::Borrowed(_) => None,
            })
            .collect();
        for (old, new) in renames {
            if let Some(child) = map.remove(&old) {
                let mut key = new.clone();
                let mut n = 2;
                while map.contains_key(&key) {
                    key = format!("{new}~{n}");
                    n += 1;
                }
                map.insert(key, child);
            }
        }
    }
}

/// One replacement: `text[start..end]` becomes `with`.
struct Edit {
    start: usize,
    end: usize,
    with: Cow<'static, str>,
}

/// Record an edit unless it would change nothing (already-redacted text stays borrowed).
fn push(edits: &mut Vec<Edit>, text: &str, start: usize, end: usize, with: Cow<'static, str>) {
    if start < end && text.get(start..end) != Some(with.as_ref()) {
        edits.push(Edit { start, end, with });
    }
}

/// Apply `edits` to `text`. Edits contained in an earlier one are dropped (for the same span,
/// the rule that ran first wins: the specific formats `****1111` and `***-**-6789` before the
/// `name=value` rule's `[REDACTED]`); edits that overlap an earlier one only partly are merged
/// with it into a single `[REDACTED]`.
fn apply(text: &str, mut edits: Vec<Edit>) -> Cow<'_, str> {
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
fn fail_closed(text: &str) -> Cow<'_, str> {
    if text.is_empty() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(REDACTED.to_owned())
    }
}

/// What to do after a match was handled.
enum Step {
    /// Continue after the match.
    Next,
    /// The match was rejected; look again one character after its start, so that a shorter
    /// match inside it is still found.
    Retry,
}

/// Run `re` over `text` from `from` to the end, left to right, handing each match to `handle`.
fn each_match(re: &Regex, text: &str, from: usize, mut handle: impl FnMut(&Captures<'_>) -> Step) {
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
fn each_find(re: &Regex, text: &str, from: usize, mut handle: impl FnMut(Match<'_>) -> Step) {
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
fn next_char(text: &str, i: usize) -> usize {
    text.get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(i + 1, |c| i + c.len_utf8())
}

/// Numeric islands: digits joined by separators of one or two bytes (` `, `-`, `.`, `/`, `(`,
/// `)`, `+`), with a leading `+` or `(`. Every card number, SSN and phone number lies inside
/// one island, as `(start, end, digit count)`.
struct NumericIslands<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> NumericIslands<'a> {
    fn new(bytes: &'a [u8]) -> Self {
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
            while next < bytes.len() && next - end < 2 && is_island_separator(bytes[next]) {
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

fn is_island_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'+')
}

/// A byte of an ASCII word (`\b` in the patterns is ASCII too).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Card numbers inside the digit run `text[start..end]`: the run itself if it is a Luhn-valid
/// 13–19 digit number, otherwise every Luhn-valid 13–19 digit stretch of whole digit groups
/// (leftmost first, longest first), so a card stays masked when another number is written next
/// to it ("4111 1111 1111 1111 12 26"). Digits glued to a card without a separator make it a
/// different, longer number and are left to the other rules.
fn card_edits(text: &str, start: usize, end: usize, edits: &mut Vec<Edit>) {
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
        let mut digits = 0;
        let mut best = None;
        for (last, &(a, b)) in groups.iter().enumerate().skip(first) {
            digits += b - a;
            if digits > CARD_MAX_DIGITS {
                break;
            }
            if digits >= CARD_MIN_DIGITS && luhn_valid(&bytes[from..b]) {
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

/// The Luhn (mod 10) check over the ASCII digits of `bytes`; other bytes are skipped.
fn luhn_valid(bytes: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &b in bytes.iter().rev().filter(|b| b.is_ascii_digit()) {
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum % 10 == 0
}

/// `****1111` for an integer that is a Luhn-valid card number.
fn mask_card_integer(n: u64) -> Option<String> {
    let digits = n.to_string();
    ((CARD_MIN_DIGITS..=CARD_MAX_DIGITS).contains(&digits.len()) && luhn_valid(digits.as_bytes()))
        .then(|| format!("****{}", last_digits(&digits, 4)))
}

/// The last `n` ASCII digits of `s`, in order.
fn last_digits(s: &str, n: usize) -> String {
    let mut tail: Vec<char> = s
        .chars()
        .rev()
        .filter(char::is_ascii_digit)
        .take(n)
        .collect();
    tail.reverse();
    tail.into_iter().collect()
}

fn count_digits(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

fn mask_ssn(s: &str) -> Cow<'static, str> {
    format!("***-**-{}", last_digits(s, 4)).into()
}

/// `j***` (of `j***@example.com`): the first character of the local part is kept.
fn mask_email_local(local: &str) -> String {
    let first = local.chars().next().map(String::from).unwrap_or_default();
    format!("{first}***")
}

/// Whether a phone-shaped match is a whole phone number, not digits inside a longer number.
fn is_phone(bytes: &[u8], start: usize, end: usize) -> bool {
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
fn in_url_authority(bytes: &[u8], start: usize) -> bool {
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
fn is_credential(scheme: &str, value: &str) -> bool {
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
fn looks_like_secret(word: &str) -> bool {
    word.chars().any(char::is_alphanumeric) && !word.chars().all(char::is_alphabetic)
}

fn trim_sentence_end(word: &str) -> &str {
    word.trim_end_matches(['.', '!', '?', ')', ':'])
}

/// ASCII lowercase without `_`, `-`, `.` and whitespace.
fn normalize_field(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.') && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// The field name written just before the `:` or `=` at `pos`, skipping spaces and a closing
/// (possibly escaped) quote.
fn name_before(text: &str, pos: usize) -> Option<&str> {
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

/// The span of the value written after a `:` or `=` at `from - 1`: the inside of a quoted
/// string, or a bare word. An authentication scheme word ("Bearer", "Basic") is kept and the
/// word after it is the value. `None` for no value or a structured one (`{`, `[`).
fn value_after(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
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
        let len = bytes[start..]
            .windows(2)
            .position(|w| w == b"\\\"")
            .unwrap_or_else(|| bare_len(&bytes[start..]));
        return Some((start, start + len)).filter(|(s, e)| s < e);
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
            let len = bare_len(rest);
            let word = &rest[..len];
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
            if is_scheme && rest.get(len) == Some(&b' ') {
                let mut k = i + len;
                while k < bytes.len() && bytes[k] == b' ' {
                    k += 1;
                }
                let next = bare_len(&bytes[k..]);
                if next > 0 {
                    return Some((k, k + next));
                }
            }
            Some((i, i + len)).filter(|(s, e)| s < e)
        }
    }
}

/// Length of a bare value: up to whitespace or a delimiter (an earlier `[REDACTED]` is read
/// whole, so redacting twice changes nothing more).
fn bare_len(bytes: &[u8]) -> usize {
    if bytes.starts_with(REDACTED.as_bytes()) {
        return REDACTED.len();
    }
    bytes
        .iter()
        .position(|&b| {
            b.is_ascii_whitespace()
                || matches!(
                    b,
                    b',' | b';' | b'&' | b'"' | b'\'' | b'<' | b'>' | b')' | b']' | b'}' | b'\\'
                )
        })
        .unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn redact(text: &str) -> String {
        Redactor::new().redact_text(text).into_owned()
    }

    fn assert_table(cases: &[(&str, &str)]) {
        for (input, expected) in cases {
            assert_eq!(redact(input), *expected, "input: {input:?}");
        }
    }

    fn assert_untouched(cases: &[&str]) {
        let redactor = Redactor::new();
        for input in cases {
            let out = redactor.redact_text(input);
            assert!(
                matches!(out, Cow::Borrowed(_)),
                "changed {input:?} into {out:?}"
            );
        }
    }

    #[test]
    fn rules_compile() {
        assert!(Rules::build().is_some());
        assert!(Redactor::new().rules.is_some());
    }

    #[test]
    fn sorted_field_list_for_binary_search() {
        assert!(SENSITIVE_FIELDS.windows(2).all(|w| w[0] < w[1]));
        assert!(NOT_A_SECRET.windows(2).all(|w| w[0] < w[1]));
        for name in SENSITIVE_FIELDS.iter().chain(SENSITIVE_SUFFIXES) {
            assert_eq!(normalize_field(name), *name);
        }
    }

    #[test]
    fn card_numbers() {
        assert_table(&[
            ("4111111111111111", "****1111"),
            ("card 4111 1111 1111 1111 ok", "card ****1111 ok"),
            ("card 4111-1111-1111-1111.", "card ****1111."),
            ("amex 3782 822463 10005", "amex ****0005"),
            ("visa13 4222222222222", "visa13 ****2222"),
            ("19 digits 6011000990139424009", "19 digits ****4009"),
            ("x4111111111111111y", "x****1111y"),
            ("(5500 0000 0000 0004)", "(****0004)"),
            // Another number written next to the card does not hide it.
            ("4111 1111 1111 1111 12 26 thanks", "****1111 12 26 thanks"),
            ("ref 77 4111111111111111", "ref 77 ****1111"),
            ("4111111111111111-05", "****1111-05"),
            (
                "pay with 4111111111111111 and 5500000000000004",
                "pay with ****1111 and ****0004",
            ),
        ]);
    }

    #[test]
    fn non_luhn_digit_runs_are_left_alone() {
        assert_untouched(&[
            "order 4111111111111112",
            "tracking 1234 5678 9012 3456",
            "id 1234567890123",
            "ORD-12345",
            "4111 1111", // too short
            "account 12345678",
        ]);
    }

    #[test]
    fn security_codes_and_pins_by_context() {
        assert_table(&[
            ("cvv 123", "cvv [REDACTED]"),
            ("CVC: 1234", "CVC: [REDACTED]"),
            ("the CVV2 is 987", "the CVV2 is [REDACTED]"),
            ("security code is 123", "security code is [REDACTED]"),
            ("PIN 4321", "PIN [REDACTED]"),
            ("pin: 4321", "pin: [REDACTED]"),
            ("my pin is 4321.", "my pin is [REDACTED]."),
            (
                "my PIN number is 4 3 2 1 ok",
                "my PIN number is [REDACTED] ok",
            ),
            ("pin=4321&x=1", "pin=[REDACTED]&x=1"),
            (r#"{"pin": "4321"}"#, r#"{"pin": "[REDACTED]"}"#),
            (
                "your verification code is 918273",
                "your verification code is [REDACTED]",
            ),
            ("passcode 5555", "passcode [REDACTED]"),
        ]);
        assert_untouched(&[
            "spin 1234 times",
            "pin the note on the board",
            "the PIN was wrong",
            "step 2 of 3",
            "enter your pin now",
        ]);
    }

    #[test]
    fn ssns() {
        assert_table(&[
            ("ssn 123-45-6789", "ssn ***-**-6789"),
            ("123 45 6789", "***-**-6789"),
            ("SSN: 123456789", "SSN: ***-**-6789"),
            (
                "my social security number is 123456789",
                "my social security number is ***-**-6789",
            ),
            ("ssn=123-45-6789", "ssn=***-**-6789"),
        ]);
        assert_untouched(&["123456789", "zip 12345-6789", "call 12-345-6789"]);
    }

    #[test]
    fn secrets() {
        assert_table(&[
            ("password=hunter2", "password=[REDACTED]"),
            ("passwd: s3cr3t!", "passwd: [REDACTED]"),
            (
                "db_password = 'correct horse'",
                "db_password = '[REDACTED]'",
            ),
            ("secret abc123", "secret [REDACTED]"),
            (
                "client_secret=xyz&grant=1",
                "client_secret=[REDACTED]&grant=1",
            ),
            ("token=abc.def.ghi", "token=[REDACTED]"),
            ("api_key=sk_live_42", "api_key=[REDACTED]"),
            ("X-Api-Key: k-1234", "X-Api-Key: [REDACTED]"),
            (
                "Authorization: Basic dXNlcjpwYXNz",
                "Authorization: Basic [REDACTED]",
            ),
            (
                "authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
                "authorization: Bearer [REDACTED]",
            ),
            (
                "sent Bearer abcdef123456 upstream",
                "sent Bearer [REDACTED] upstream",
            ),
            (
                "header Basic dXNlcjpwYXNz seen",
                "header Basic [REDACTED] seen",
            ),
            (
                "POST /swaig?__token=AbC-123_x&call_id=9",
                "POST /swaig?__token=[REDACTED]&call_id=9",
            ),
            (
                "url https://user:pa55@agent.example.com/swaig",
                "url https://[REDACTED]@agent.example.com/swaig",
            ),
            (
                "https://signalwire:s3cret@host:3000/x",
                "https://[REDACTED]@host:3000/x",
            ),
            ("my password is hunter2.", "my password is [REDACTED]."),
            ("my password is swordfish", "my password is [REDACTED]"),
            (
                r#"{\"password\":\"hunter2\",\"ok\":1}"#,
                r#"{\"password\":\"[REDACTED]\",\"ok\":1}"#,
            ),
        ]);
        assert_untouched(&[
            "the password is wrong",
            "token refused: expired",
            "reason=token_expired",
            "max_tokens=100",
            "Secret Santa party",
            "basic checking account",
            "the bearer bonds",
            "https://agent.example.com/swaig",
            "a password reset link",
        ]);
    }

    #[test]
    fn emails() {
        assert_table(&[
            ("mail jane.doe@example.com now", "mail j***@example.com now"),
            ("<John+x@Mail.Example.co.uk>.", "<J***@Mail.Example.co.uk>."),
            ("mailto:a@b.io", "mailto:a***@b.io"),
        ]);
        assert_untouched(&["user@localhost", "@handle", "a @ b"]);
    }

    #[test]
    fn phones() {
        assert_table(&[
            ("call (555) 123-4567", "call ***-***-4567"),
            ("call 555-123-4567.", "call ***-***-4567."),
            ("call 555.123.4567", "call ***-***-4567"),
            ("call +1 555 123 4567", "call ***-***-4567"),
            ("call 1-800-555-1234", "call ***-***-1234"),
            ("from +15551234567", "from ***-***-4567"),
            ("from +44 20 7946 0958", "from ***-***-0958"),
        ]);
        assert_untouched(&["room 555", "ext 1234", "5551234567890123", "+1234"]);
    }

    #[test]
    fn dates_of_birth_by_context() {
        assert_table(&[
            ("DOB 1980-02-29", "DOB [REDACTED]"),
            ("date of birth: 02/29/1980", "date of birth: [REDACTED]"),
            ("born on 1980-02-29", "born on [REDACTED]"),
            ("birthday is March 3rd, 1980.", "birthday is [REDACTED]."),
            ("d.o.b. 29 Feb 1980", "d.o.b. [REDACTED]"),
            ("dob=1980-02-29", "dob=[REDACTED]"),
        ]);
        assert_untouched(&[
            "meeting on 1980-02-29",
            "born in 1980",
            "due 02/29/2024",
            "DOB unknown",
        ]);
    }

    #[test]
    fn ordinary_values_are_left_alone() {
        assert_untouched(&[
            "",
            "total $150.00",
            "balance 1,250.75 USD",
            "at 10:30 tomorrow",
            "123 Main St, Apt 4B",
            "in 1999 and 2024",
            "order ORD-12345 shipped",
            "2024-01-15T10:30:00.123456Z INFO voxguard: request done status=200 latency_ms=12",
            "ts=2024-01-15T10:30:00Z call_id=3f1c2b9e-7d4a-4c1e-9b2f-0a1b2c3d4e5f fn=get_balance",
            "version 1.0.0",
            "2024-01-15 10:30:00.123 INFO request done in 12 ms",
            r#"{"timestamp":"2024-01-15T10:30:00.123456Z","level":"INFO","fields":{"message":"tool called","status":200}}"#,
            "retry 3 of 5 after 250 ms; took 1.5s; 99.9% ok",
            "Tuesday, March 3rd 2026 at 4pm",
            "Dan Smith, 123 Main St",
        ]);
    }

    #[test]
    fn overlapping_findings_are_merged() {
        // An email whose local part is a card: both masks cover it; nothing of the card is left.
        let out = redact("4111111111111111@x.com");
        assert!(!out.contains("41111111"), "{out}");
        // A card in an email's domain: the local part is masked, the domain is still read.
        let out = redact("a@0-1000-0000-0000-0008a.aA");
        assert_eq!(out, "a***@****0008a.aA");
        // A token value that is also a card number.
        assert_eq!(redact("token=4111111111111111"), "token=****1111");
    }

    #[test]
    fn redaction_is_idempotent_on_its_own_output() {
        let redactor = Redactor::new();
        for input in [
            "card 4111 1111 1111 1111 cvv 123 pin 4321 ssn 123-45-6789",
            "password=hunter2 email jane@example.com phone (555) 123-4567 DOB 1980-02-29",
            "https://user:pass@example.com/x Authorization: Bearer abc.def.ghi12",
        ] {
            let once = redactor.redact_text(input).into_owned();
            assert!(
                matches!(redactor.redact_text(&once), Cow::Borrowed(_)),
                "{once}"
            );
        }
    }

    #[test]
    fn borrowed_when_nothing_changes() {
        let redactor = Redactor::new();
        let text = "The order ORD-12345 of $150.00 ships at 10:30.";
        match redactor.redact_text(text) {
            Cow::Borrowed(out) => assert!(std::ptr::eq(out, text)),
            Cow::Owned(out) => panic!("allocated for an unchanged text: {out}"),
        }
        assert!(matches!(redactor.redact_text("pin 4321"), Cow::Owned(_)));
    }

    #[test]
    fn sensitive_field_names() {
        let redactor = Redactor::new();
        for name in [
            "pin",
            "PIN",
            "cvv",
            "cvc",
            "cvv2",
            "security_code",
            "Security-Code",
            "card_number",
            "cardNumber",
            "CARD_NUMBER",
            "card",
            "pan",
            "ssn",
            "password",
            "Password",
            "passwd",
            "secret",
            "client_secret",
            "token",
            "__token",
            "meta_data_token",
            "api_key",
            "apikey",
            "API-KEY",
            "x-api-key",
            "authorization",
            "Authorization",
            "auth",
            "credentials",
            "dob",
            "date_of_birth",
            "DateOfBirth",
            "account_number",
            "accountNumber",
        ] {
            assert!(redactor.is_sensitive_field(name), "{name}");
        }
        for name in [
            "amount",
            "order_number",
            "call_id",
            "function",
            "name",
            "max_tokens",
            "token_type",
            "spin",
            "date",
            "phone",
            "description",
            "",
        ] {
            assert!(!redactor.is_sensitive_field(name), "{name}");
        }
        let custom = redactor.with_sensitive_fields(["member_id", "Mother-Maiden-Name"]);
        assert!(custom.is_sensitive_field("MemberID"));
        assert!(custom.is_sensitive_field("mother_maiden_name"));
        assert!(custom.is_sensitive_field("pin"), "defaults still apply");
        assert!(
            !Redactor::new().is_sensitive_field("member_id"),
            "extras are per instance"
        );
    }

    #[test]
    fn json_redaction_at_depth() {
        let redactor = Redactor::new().with_sensitive_fields(["member_id"]);
        let mut value = json!({
            "function": "pay_bill",
            "argument": {
                "parsed": [{
                    "Card_Number": "4111 1111 1111 1111",
                    "CVV": 123,
                    "amount": "150.00",
                    "memberId": {"nested": "object"},
                    "note": "my pin is 4321, email jane@example.com",
                    "empty": null,
                    "Password": null,
                }],
                "raw": "{\"card_number\":\"4111111111111111\",\"pin\":\"4321\"}",
            },
            "global_data": {"items": [{"SECURITY-CODE": "999"}, ["call 555-123-4567", 7, true]]},
            "__token": "abc",
            "meta_data_token": "def",
            "raw_card": 4111111111111111u64,
            "order_id": 12345,
            "call_id": "3f1c2b9e-7d4a-4c1e-9b2f-0a1b2c3d4e5f",
        });
        redactor.redact_json(&mut value);
        assert_eq!(
            value,
            json!({
                "function": "pay_bill",
                "argument": {
                    "parsed": [{
                        "Card_Number": "[REDACTED]",
                        "CVV": "[REDACTED]",
                        "amount": "150.00",
                        "memberId": "[REDACTED]",
                        "note": "my pin is [REDACTED], email j***@example.com",
                        "empty": null,
                        "Password": null,
                    }],
                    "raw": "{\"card_number\":\"****1111\",\"pin\":\"[REDACTED]\"}",
                },
                "global_data": {"items": [{"SECURITY-CODE": "[REDACTED]"}, ["call ***-***-4567", 7, true]]},
                "__token": "[REDACTED]",
                "meta_data_token": "[REDACTED]",
                "raw_card": "****1111",
                "order_id": 12345,
                "call_id": "3f1c2b9e-7d4a-4c1e-9b2f-0a1b2c3d4e5f",
            })
        );
    }

    #[test]
    fn json_keys_are_redacted_too() {
        let mut value = json!({"4111111111111111": 1, "****1111": 2, "plain": 3});
        Redactor::new().redact_json(&mut value);
        assert_eq!(value, json!({"****1111": 2, "****1111~2": 1, "plain": 3}));
    }

    #[test]
    fn deep_json_does_not_overflow_the_stack() {
        let mut value = json!("pin 4321");
        for _ in 0..100_000 {
            value = Value::Array(vec![value]);
        }
        Redactor::new().redact_json(&mut value);
        let mut inner = &value;
        while let Value::Array(items) = inner {
            inner = &items[0];
        }
        assert_eq!(inner, &json!("pin [REDACTED]"));
        // Drop iteratively too: serde_json's recursive drop would overflow on this depth.
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            if let Value::Array(items) = v {
                stack.extend(items);
            }
        }
    }

    #[test]
    fn cheap_shared_and_thread_safe() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Redactor>();
        let a = Redactor::new();
        let b = a.clone();
        assert!(Arc::ptr_eq(
            a.rules.as_ref().expect("rules compile"),
            b.rules.as_ref().expect("rules compile")
        ));
        let debug = format!("{:?}", a.with_sensitive_fields(["member_id"]));
        assert!(
            debug.contains("Redactor") && debug.contains("memberid"),
            "{debug}"
        );
    }

    #[test]
    fn fails_closed_without_rules() {
        let broken = Redactor {
            rules: None,
            extra_fields: Arc::new(BTreeSet::new()),
        };
        assert_eq!(broken.redact_text("anything at all"), REDACTED);
        assert!(matches!(broken.redact_text(""), Cow::Borrowed("")));
        let mut value = json!({"pin": "1", "note": "hello"});
        broken.redact_json(&mut value);
        assert_eq!(value, json!({"pin": REDACTED, "note": REDACTED}));
    }

    /// A 2 KB call transcript with many kinds of secrets: none survives, the rest does.
    #[test]
    fn transcript_sanity() {
        let secrets = [
            "4111 1111 1111 1111",
            "4111111111111111",
            "5500-0000-0000-0004",
            "cvv 737",
            "4321",
            "123-45-6789",
            "hunter2",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
            "s3cr3t-pa55",
            "jane.doe@example.com",
            "(555) 123-4567",
            "1980-02-29",
            "sk_live_51Hx",
        ];
        let kept = ["$150.00", "10:30", "ORD-12345", "123 Main St", "1,250.75"];
        let mut transcript = String::new();
        let mut turn = 0;
        while transcript.len() < 2048 {
            turn += 1;
            transcript.push_str(&format!(
                "[{turn:02}] agent: How can I help with order ORD-12345 today?\n\
                 user: I want to pay $150.00 with card 4111 1111 1111 1111, cvv 737, my pin is 4321.\n\
                 user: Backup card 5500-0000-0000-0004; ssn 123-45-6789; DOB 1980-02-29.\n\
                 tool: POST https://agent:s3cr3t-pa55@bank.example.com/swaig?__token=sk_live_51Hx \
                 Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl\n\
                 user: email jane.doe@example.com, phone (555) 123-4567, password is hunter2.\n\
                 agent: Balance 1,250.75, delivery at 10:30 to 123 Main St. Raw 4111111111111111.\n"
            ));
        }
        let out = Redactor::new().redact_text(&transcript);
        for secret in secrets {
            assert!(!out.contains(secret), "{secret} survived in:\n{out}");
        }
        for value in kept {
            assert_eq!(
                out.matches(value).count(),
                transcript.matches(value).count(),
                "{value} was touched"
            );
        }
    }

    /// 16 Luhn-valid digits: 15 random ones and the check digit.
    fn luhn_card() -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..10, 15).prop_map(|mut digits| {
            digits[0] = digits[0].max(1);
            for check in 0..10u8 {
                let candidate: String = digits
                    .iter()
                    .chain(std::iter::once(&check))
                    .map(|d| char::from(b'0' + d))
                    .collect();
                if luhn_valid(candidate.as_bytes()) {
                    return candidate;
                }
            }
            unreachable!("one check digit always satisfies Luhn")
        })
    }

    fn grouped(card: &str, sep: &str) -> String {
        card.as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// Filler words for the survivors property: random letters, with the few words that give a
    /// number a sensitive context ("pin", "cvv", "token", …) replaced.
    fn filler() -> impl Strategy<Value = String> {
        const CONTEXT: &[&str] = &[
            "pin", "cvv", "cvc", "cvn", "csc", "ssn", "dob", "otp", "born", "birth", "token",
            "secret", "pass", "pwd", "key", "code", "bearer", "basic", "social",
        ];
        proptest::collection::vec("[a-zA-Z]{1,8}[.,!?]?", 1..5).prop_map(|words| {
            words
                .into_iter()
                .map(|w| {
                    let lower = w.to_ascii_lowercase();
                    if CONTEXT.iter().any(|k| lower.contains(k)) {
                        "word".to_owned()
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    proptest! {
        #[test]
        fn luhn_valid_cards_never_survive(
            card in luhn_card(),
            style in 0usize..3,
            prefix in "[A-Za-z0-9 .,;:!?@#$%&*()/_+=-]{0,40}",
            before in "[A-Za-z .,;:!?@#$%&*()/_+=-]?",
            after in "[A-Za-z .,;:!?@#$%&*()/_+=-]?",
            suffix in "[A-Za-z0-9 .,;:!?@#$%&*()/_+=-]{0,40}",
        ) {
            let written = match style {
                0 => card.clone(),
                1 => grouped(&card, " "),
                _ => grouped(&card, "-"),
            };
            // The characters touching the card are not digits: a digit glued to it makes a
            // different, longer number (see `card_edits`).
            let prefix = if before.is_empty() { String::new() } else { format!("{prefix}{before}") };
            let suffix = if after.is_empty() { String::new() } else { format!("{after}{suffix}") };
            let text = format!("{prefix}{written}{suffix}");
            let out = Redactor::new().redact_text(&text);
            let digits_only: String = out.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(!digits_only.contains(&card), "{text:?} -> {out:?}");
            for group in out.split(|c: char| !c.is_ascii_digit()).filter(|g| g.len() >= 5) {
                prop_assert!(!group.contains(&card), "{text:?} -> {out:?}");
            }
        }

        #[test]
        fn amounts_times_and_short_numbers_survive(
            values in proptest::collection::vec(
                prop_oneof![
                    "\\$[0-9]{1,6}\\.[0-9]{2}",
                    "([01][0-9]|2[0-3]):[0-5][0-9]",
                    "[0-9]{1,4}",
                ],
                1..6,
            ),
            fillers in proptest::collection::vec(filler(), 6),
        ) {
            let mut text = fillers[0].clone();
            for (value, filler) in values.iter().zip(&fillers[1..]) {
                text.push(' ');
                text.push_str(value);
                text.push(' ');
                text.push_str(filler);
            }
            let out = Redactor::new().redact_text(&text);
            prop_assert!(matches!(out, Cow::Borrowed(_)), "{text:?} -> {out:?}");
        }

        #[test]
        fn any_text_is_handled_without_panic(
            text in "[0-9a-zA-Z :=@/.,;#+()\\[\\]{}\"'\\\\-é☕\u{200B}]{0,120}",
            arbitrary in any::<String>(),
        ) {
            let redactor = Redactor::new();
            for input in [&text, &arbitrary] {
                let out = redactor.redact_text(input);
                if let Cow::Borrowed(same) = out {
                    prop_assert_eq!(same, input.as_str());
                }
                let mut value = json!({ input.as_str(): input.as_str() });
                redactor.redact_json(&mut value);
            }
        }

        #[test]
        fn cards_in_json_strings_never_survive(card in luhn_card(), note in "[a-z ]{0,20}") {
            let mut value = json!({"args": {"note": format!("{note} {card}"), "list": [card.clone()]}});
            Redactor::new().redact_json(&mut value);
            prop_assert!(!value.to_string().contains(&card));
        }
    }
}
