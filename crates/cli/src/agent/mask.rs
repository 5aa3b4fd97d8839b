//! Masking the secrets an agent puts on the wire before the CLI shows them: Basic
//! credentials in a URL's userinfo, token-like query and fragment parameters, values under
//! credential-like keys (`password`, `authorization`, `api_key`, `meta_data_token`, …), and any
//! known secret inside free text (answers, refusals, error messages).
//!
//! It owns only the rewriting of text and JSON values. It must not decide whether masking is
//! wanted (`--show-secrets` is the commands'), and it fails towards masking: text that does not
//! parse as a URL is masked by its shape, and known secrets are masked wherever they appear.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What a masked secret is replaced with.
pub const MASK: &str = "****";

/// Whether a JSON key or query parameter name holds a credential (case-insensitive).
pub fn is_secret_name(name: &str) -> bool {
    static NAMES: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)(password|passwd|secret|authorization|api[-_]?key|token|cookie|signature|^sig$|^key$|credential)")
            .unwrap_or_else(|_| unreachable!("a constant pattern"))
    });
    NAMES.is_match(name)
}

/// Userinfo of a URL-shaped run of text: `scheme://user:password@` (the password may hold any
/// character but whitespace and `@`), or `scheme://user@`.
static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s:@/?#]*)(:[^\s@]*)?@")
        .unwrap_or_else(|_| unreachable!("a constant pattern"))
});

/// A secret-named parameter in a query string or fragment: `name=value` (the value ends at
/// whitespace, `&`, `#` or a closing bracket or quote, so that the text after it is kept).
static SECRET_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)([?&#;]([a-z0-9_.-]*(?:token|password|passwd|secret|api[-_]?key|signature|credential)[a-z0-9_.-]*|key|sig)=)[^&#\s)"'<>\]}]*"#)
        .unwrap_or_else(|_| unreachable!("a constant pattern"))
});

/// The value of an HTTP Basic authorization echoed in text (`Basic dXNlcjpwYXNz`).
static BASIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(Basic\s+)[A-Za-z0-9+/=]{4,}")
        .unwrap_or_else(|_| unreachable!("a constant pattern"))
});

/// `text` with URL credentials and secret-named parameters masked, by their shape: the
/// userinfo of anything that looks like `scheme://…@` (even when it does not parse as a URL,
/// e.g. a password with an unescaped `#` or `/`), and the value of every `?token=`,
/// `&api_key=`, `#__token=`, … parameter.
pub fn text(text: &str) -> String {
    let masked = USERINFO.replace_all(text, |caps: &regex::Captures<'_>| {
        if caps.get(3).is_some() {
            // The user name helps to tell credentials apart; the password is the secret.
            format!("{}{}:{MASK}@", &caps[1], &caps[2])
        } else {
            // A user name alone is often an API key.
            format!("{}{MASK}@", &caps[1])
        }
    });
    let masked = SECRET_PARAM.replace_all(&masked, |caps: &regex::Captures<'_>| {
        format!("{}{MASK}", &caps[1])
    });
    BASIC
        .replace_all(&masked, |caps: &regex::Captures<'_>| {
            format!("{}{MASK}", &caps[1])
        })
        .into_owned()
}

/// `text` (a URL) with its credentials and tokens masked: the same as [`text`], which also
/// covers URLs that do not parse.
pub fn url(url: &str) -> String {
    text(url)
}

/// A copy of `value` with every string [`text`]-masked, every string under a credential-like
/// key ([`is_secret_name`]) replaced by [`MASK`], and every known secret of `secrets` masked.
pub fn document(value: &Value, secrets: &Secrets) -> Value {
    match value {
        Value::String(s) => Value::String(secrets.mask(s)),
        Value::Array(items) => Value::Array(items.iter().map(|v| document(v, secrets)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let masked = match item {
                        Value::String(_) if is_secret_name(key) => Value::String(MASK.into()),
                        other => document(other, secrets),
                    };
                    (key.clone(), masked)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Known secrets (passwords, tokens) to be masked wherever they appear in text: a set (adding
/// is constant time), searched with one automaton built when first needed for masking.
#[derive(Default, Clone)]
pub struct Secrets {
    known: std::collections::HashSet<String>,
    /// One automaton over every known secret, built on first use: masking a text costs one
    /// pass over it, whatever the number of secrets (a hostile document can hold thousands).
    finder: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.known.len())
    }
}

impl Secrets {
    /// Remember `secret` and its percent-encoded form (ignored when shorter than 4
    /// characters: masking "a" everywhere would destroy the text and protect nothing).
    pub fn add(&mut self, secret: &str) {
        let encoded =
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for value in [secret.to_string(), encoded] {
            if value.chars().count() >= 4 && self.known.insert(value) {
                self.finder = std::sync::OnceLock::new();
            }
        }
    }

    /// The automaton over the known secrets, leftmost-longest (a secret containing another
    /// is masked whole); `None` when there is none, or when it cannot be built (then only the
    /// shapes are masked, and [`Secrets::mask`] masks the whole text instead).
    fn finder(&self) -> Option<&aho_corasick::AhoCorasick> {
        self.finder
            .get_or_init(|| {
                if self.known.is_empty() {
                    return None;
                }
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(self.known.iter())
                    .ok()
            })
            .as_ref()
    }

    /// Remember every secret of a JSON document: URL passwords, usernames of username-only
    /// userinfo, token-like parameters and values under credential-like keys.
    pub fn add_document(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.add_url(s),
            Value::Array(items) => items.iter().for_each(|item| self.add_document(item)),
            Value::Object(map) => {
                for (key, item) in map {
                    match item {
                        Value::String(s) if is_secret_name(key) => self.add(s),
                        other => self.add_document(other),
                    }
                }
            }
            _ => {}
        }
    }

    /// Remember the secrets of a URL: its userinfo and its secret-named parameters.
    pub fn add_url(&mut self, text: &str) {
        let Ok(parsed) = url::Url::parse(text) else {
            return;
        };
        if let Some(password) = parsed.password() {
            self.add(&percent_decode(password));
        } else if !parsed.username().is_empty() {
            self.add(&percent_decode(parsed.username()));
        }
        for (name, value) in parsed.query_pairs() {
            if is_secret_name(&name) {
                self.add(&value);
            }
        }
    }

    /// `text` with every known secret masked, then masked by shape ([`text`](fn@text)).
    pub fn mask(&self, input: &str) -> String {
        match self.finder() {
            Some(finder) => {
                let mut out = String::with_capacity(input.len());
                finder.replace_all_with(input, &mut out, |_, _, dst| {
                    dst.push_str(MASK);
                    true
                });
                text(&out)
            }
            // Fail towards masking: secrets we cannot search for hide the whole text.
            None if !self.known.is_empty() => MASK.to_string(),
            None => text(input),
        }
    }
}

fn percent_decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_url_loses_its_credentials_and_tokens_only() {
        assert_eq!(
            url("https://user:hunter22@agent.example/swaig?__token=abc.def&x=1"),
            "https://user:****@agent.example/swaig?__token=****&x=1"
        );
        assert_eq!(url("http://h/swaig?token=t1"), "http://h/swaig?token=****");
        assert_eq!(url("http://h/swaig?x=1"), "http://h/swaig?x=1");
        assert_eq!(url("not a url"), "not a url");
        // Shapes that do not parse, fragments, other secret names, case, username only.
        assert_eq!(
            url("http://u:Sup3r#Sec/ret@127.0.0.1:99999/"),
            "http://u:****@127.0.0.1:99999/"
        );
        assert_eq!(url("http://h/x#__Token=FRAG"), "http://h/x#__Token=****");
        assert_eq!(
            url("http://h/x?api_key=K1&access_token=K2&key=K3"),
            "http://h/x?api_key=****&access_token=****&key=****"
        );
        assert_eq!(url("http://tokenonly@h/"), "http://****@h/");
        assert_eq!(
            text("see http://a:b@h/ and http://c:d@i/"),
            "see http://a:****@h/ and http://c:****@i/"
        );
    }

    #[test]
    fn a_document_is_masked_deeply_and_by_key() {
        let doc = json!({"ai": {"SWAIG": {"functions": [{
            "web_hook_url": "http://u:secretpw@h/s?__token=tok",
            "meta_data_token": "mdt",
            "meta_data": {"api_key": "AK"},
            "data_map": {"webhooks": [{"headers": {"Authorization": "Bearer BT"}}]},
            "description": "keeps http://h/ as is",
            "params": {"max_tokens": 100}
        }]}, "connect": {"to": "sip:x@h", "password": "SIPPW"}}});
        let masked = document(&doc, &Secrets::default()).to_string();
        for secret in ["secretpw", "tok\"", "mdt", "AK", "BT", "SIPPW"] {
            assert!(!masked.contains(secret), "{secret} in {masked}");
        }
        assert!(masked.contains("keeps http://h/ as is") && masked.contains("100"));
    }

    #[test]
    fn basic_headers_are_masked_and_params_stop_at_the_value() {
        assert_eq!(
            text("echo: Authorization: Basic dXNlcjpodW50ZXIy, done"),
            "echo: Authorization: Basic ****, done"
        );
        assert_eq!(
            text("error sending request for url (http://h/s?__token=abc): Connection refused"),
            "error sending request for url (http://h/s?__token=****): Connection refused"
        );
        assert_eq!(
            text("http://h/s?__token=abc Connection refused"),
            "http://h/s?__token=**** Connection refused"
        );
    }

    #[test]
    fn many_secrets_are_added_and_masked_quickly() {
        let started = std::time::Instant::now();
        let mut secrets = Secrets::default();
        for i in 0..40_000 {
            secrets.add(&format!("token-{i:08}"));
        }
        assert_eq!(secrets.mask("a token-00000007 b"), "a **** b");
        secrets.add("token-00000007-longer");
        assert_eq!(secrets.mask("token-00000007-longer"), "****");
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    }

    #[test]
    fn known_secrets_are_masked_in_text() {
        let mut secrets = Secrets::default();
        secrets.add("s3cret pass");
        secrets.add("ab"); // too short to mask
        let text = secrets.mask("sent s3cret pass and s3cret%20pass to http://u:other@h/x, ab");
        assert_eq!(text, "sent **** and **** to http://u:****@h/x, ab");
        let mut from_doc = Secrets::default();
        from_doc.add_document(
            &json!({"u": "http://a:PW1234@h/?__token=TOK1234", "password": "PW5678"}),
        );
        assert_eq!(from_doc.mask("PW1234 TOK1234 PW5678"), "**** **** ****");
    }
}
