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
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, OnceLock};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{CaptureLocations, Regex};
use serde_json::{Map, Value};

pub use bounded::{clip, prefix, truncation_marker, MAX_LOG_FIELD, MAX_LOG_LINE, MAX_LOG_PATH};
pub use scan::REDACTED;
use scan::*;

mod bounded;
mod scan;
#[cfg(test)]
mod tests;

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

/// Whether a normalized name is one of [`SENSITIVE_FIELDS`] or ends with one of
/// [`SENSITIVE_SUFFIXES`]. The log writer asks this for every `:` and `=` of every line, so
/// the lists are looked up by the name's last byte: a handful of length and byte comparisons
/// instead of a binary search and a pass over every ending.
fn is_standard_sensitive(name: &str) -> bool {
    /// Per last byte: each standard name or ending that ends with it, and whether it is an
    /// ending (matched at the end of the name) or a whole name (matched exactly).
    type Buckets = Vec<Vec<(&'static str, bool)>>;
    static BUCKETS: OnceLock<Buckets> = OnceLock::new();
    let buckets = BUCKETS.get_or_init(|| {
        let mut buckets: Buckets = vec![Vec::new(); 256];
        let whole = SENSITIVE_FIELDS.iter().map(|f| (*f, false));
        let endings = SENSITIVE_SUFFIXES.iter().map(|f| (*f, true));
        for (text, is_ending) in whole.chain(endings) {
            if let Some(&last) = text.as_bytes().last() {
                buckets[usize::from(last)].push((text, is_ending));
            }
        }
        buckets
    });
    let Some(&last) = name.as_bytes().last() else {
        return false;
    };
    buckets[usize::from(last)].iter().any(|&(text, is_ending)| {
        if is_ending {
            name.ends_with(text)
        } else {
            name == text
        }
    })
}

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

/// A maximal run of at least 13 digits, with a separator allowed between digits: one space,
/// dash, dot or slash, two spaces, or a dash, dot or slash with a space on either side
/// (`4111 1111 …`, `4111.1111.…`, `4111/1111/…`, `4111 - 1111 - …`, `4111  1111  …`).
const CARD_RUN: &str = r"[0-9](?:(?:[ ./-]| ?[./-] ?|  )?[0-9]){12,}";

/// An SSN by shape: `123-45-6789` or `123 45 6789`.
const SSN_SHAPE: &str = r"(?-u:\b)[0-9]{3}[ -][0-9]{2}[ -][0-9]{4}(?-u:\b)";

/// US formats (`(555) 123-4567`, `555-123-4567`, `555.123.4567`, `+1 555 123 4567`) and
/// international ones starting with `+` (`+15551234567`, `+44 20 7946 0958`).
const PHONE: &str = r"(?:\+?1[ .-]?)?(?:\([0-9]{3}\)[ .-]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}|\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,5}";

/// An email address (practical shape, not RFC 5322).
const EMAIL: &str = r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?-u:\b)";

/// The user-info part of a URL: `scheme://user:pass@host`.
const URL_USERINFO: &str = r#"://([^\s/?#"'<>\\]+)@"#;

/// Anchored at a keyword: `Bearer <token>` and `Basic <base64>` wherever they appear.
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
    /// Integers that are Luhn-valid card numbers (negative ones too) become the string
    /// `"****1111"`; so does a float (`4111111111111111.0`, `4.111111111111111e15`) whose
    /// integer part has a card number's length, Luhn-valid or not (a float holds such numbers
    /// only approximately); so does any other float whose significant digits could be one
    /// (`0.4111111111111111`, `4.111111111111111e19`). Nesting depth is not limited by the
    /// stack: the walk is iterative.
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
                    if let Some(masked) = mask_card_number(n) {
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
        is_standard_sensitive(name)
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
    ///
    /// Linear in the text: names are read back at most [`MAX_NAME_LEN`] bytes, and values are
    /// measured through one [`BareEnds`], so a run of `pin:pin:…` is not read once per `:`.
    fn assignments(&self, text: &str, edits: &mut Vec<Edit>) {
        let bytes = text.as_bytes();
        let mut bare = BareEnds::default();
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
            if let Some((start, end)) = value_after(bytes, pos + 1, &mut bare) {
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
        // The first free `~n` per new name, so that many keys redacted to one name cost linear
        // time, not a search from `~2` each: every `{new}~k` with `2 <= k < next` is taken.
        let mut next_suffix: HashMap<String, usize> = HashMap::new();
        for (old, new) in renames {
            if let Some(child) = map.remove(&old) {
                // Removing `{name}~k` frees that suffix again.
                if let Some((name, k)) = old.rsplit_once('~') {
                    if let (Some(next), Ok(k)) = (next_suffix.get_mut(name), k.parse::<usize>()) {
                        if k >= 2 && k < *next && old.ends_with(&format!("~{k}")) {
                            *next = k;
                        }
                    }
                }
                let mut key = new.clone();
                if map.contains_key(&key) {
                    let n = next_suffix.entry(new.clone()).or_insert(2);
                    loop {
                        key = format!("{new}~{n}");
                        *n += 1;
                        if !map.contains_key(&key) {
                            break;
                        }
                    }
                }
                map.insert(key, child);
            }
        }
    }
}
