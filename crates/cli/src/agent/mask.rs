//! Masking the secrets an agent puts on the wire before the CLI shows them: the Basic
//! password in a URL's userinfo, function tokens in `__token`/`token` query parameters,
//! `meta_data_token` values, and any known secret inside free text (evidence excerpts).
//!
//! It owns only the rewriting of text and JSON values. It must not decide whether masking is
//! wanted (`--show-secrets` is the commands'), and it must fail towards masking: text that
//! does not parse as a URL is still searched for the known secrets.

use serde_json::Value;

/// What a masked secret is replaced with.
pub const MASK: &str = "****";

/// Query parameters that carry a function token.
const TOKEN_PARAMS: [&str; 2] = ["__token", "token"];

/// `text` with the password of a URL's userinfo and every token query parameter replaced by
/// [`MASK`]. Text that is not an absolute URL is returned unchanged.
pub fn url(text: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(text) else {
        return text.to_string();
    };
    if !parsed.has_host() {
        return text.to_string();
    }
    let mut changed = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some(MASK));
        changed = true;
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                if TOKEN_PARAMS.contains(&k.as_ref()) {
                    (k.into_owned(), MASK.to_string())
                } else {
                    (k.into_owned(), v.into_owned())
                }
            })
            .collect();
        if pairs
            .iter()
            .any(|(k, _)| TOKEN_PARAMS.contains(&k.as_str()))
        {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
            changed = true;
        }
    }
    if changed {
        // `****` is percent-encoded by the URL serializer; show it as typed.
        parsed.to_string().replace("%2A%2A%2A%2A", MASK)
    } else {
        text.to_string()
    }
}

/// A copy of `value` with every URL string [`url`]-masked and every `meta_data_token` value
/// replaced by [`MASK`].
pub fn document(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(url(text)),
        Value::Array(items) => Value::Array(items.iter().map(document).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let masked = if key == "meta_data_token" && item.is_string() {
                        Value::String(MASK.to_string())
                    } else {
                        document(item)
                    };
                    (key.clone(), masked)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Known secrets (passwords, tokens) to be masked wherever they appear in text.
#[derive(Default, Clone)]
pub struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.0.len())
    }
}

impl Secrets {
    /// Remember `secret` (ignored when shorter than 4 characters: masking "a" everywhere
    /// would destroy the text and protect nothing).
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() >= 4 && !self.0.iter().any(|known| known == secret) {
            self.0.push(secret.to_string());
            // Longest first, so that a secret containing another is masked whole.
            self.0.sort_by_key(|known| std::cmp::Reverse(known.len()));
        }
    }

    /// `text` with every known secret, and every URL's password and token, masked.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out.split(' ').map(url).collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_url_loses_its_password_and_tokens_only() {
        assert_eq!(
            url("https://user:hunter22@agent.example/swaig?__token=abc.def&x=1"),
            "https://user:****@agent.example/swaig?__token=****&x=1"
        );
        assert_eq!(url("http://h/swaig?token=t1"), "http://h/swaig?token=****");
        assert_eq!(url("http://h/swaig?x=1"), "http://h/swaig?x=1");
        assert_eq!(url("not a url"), "not a url");
    }

    #[test]
    fn a_document_is_masked_deeply() {
        let doc = json!({"ai": {"SWAIG": {"functions": [{
            "web_hook_url": "http://u:secretpw@h/s?__token=tok",
            "meta_data_token": "mdt",
            "description": "keeps http://h/ as is"
        }]}}});
        let masked = document(&doc).to_string();
        assert!(
            !masked.contains("secretpw") && !masked.contains("tok\"") && !masked.contains("mdt")
        );
        assert!(masked.contains("keeps http://h/ as is"));
    }

    #[test]
    fn known_secrets_are_masked_in_text() {
        let mut secrets = Secrets::default();
        secrets.add("s3cret-password");
        secrets.add("ab"); // too short to mask
        let text = secrets.mask("sent s3cret-password to http://u:other@h/x, ab");
        assert_eq!(text, "sent **** to http://u:****@h/x, ab");
    }
}
