//! Webhook signatures: is this request really from the platform? ([`SigningKey::verify`]).
//!
//! SignalWire signs each webhook request with the project's signing key and sends the result in
//! `X-SignalWire-Signature` ([`SIGNATURE_HEADER`]). Two forms exist and both are accepted:
//!
//! - **JSON / SWML / RELAY**: lowercase hex of HMAC-SHA1(key, URL + raw body);
//! - **compatibility (cXML/LaML)**: base64 of HMAC-SHA1(key, URL + the form parameters sorted by
//!   name, each written as name then value). A JSON body on that surface signs the URL alone,
//!   which then carries `bodySHA256` = hex SHA-256 of the body, checked here too.
//!
//! The URL is the one the platform called (scheme, host, optional port, path, query, no
//! credentials); an explicit default port (`:443`, `:80`) and its absence are treated alike.
//! Every comparison is constant-time. This module owns the algorithm and the key's secrecy (the
//! key is zeroized on drop and never shown by `Debug`); it must not decide *which* requests need
//! a signature, rebuild URLs from HTTP headers or read the key from the environment — the server
//! does those.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::canonical::to_hex;

/// The request header that carries the signature (lowercase, as HTTP/1 header maps store it).
pub const SIGNATURE_HEADER: &str = "x-signalwire-signature";

/// The query parameter that carries the SHA-256 of a JSON body signed in the compatibility form.
const BODY_SHA256_PARAM: &str = "bodySHA256";

type HmacSha1 = Hmac<Sha1>;

/// The project's signing key (`SIGNALWIRE_SIGNING_KEY`). Zeroized on drop; `Debug` hides it.
#[derive(Clone)]
pub struct SigningKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request carries no signature (or an empty one).
    #[error("the request carries no webhook signature")]
    Missing,
    /// The signature matches neither form for this URL and body.
    #[error("the webhook signature does not match the request")]
    Mismatch,
}

/// A signing key that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the signing key is empty")]
pub struct EmptySigningKey;

impl SigningKey {
    /// The key as the platform's dashboard shows it (the text's UTF-8 bytes are the HMAC key).
    ///
    /// # Errors
    ///
    /// [`EmptySigningKey`] for an empty key.
    pub fn new(key: impl Into<String>) -> Result<Self, EmptySigningKey> {
        let key = Zeroizing::new(key.into().into_bytes());
        if key.is_empty() {
            return Err(EmptySigningKey);
        }
        Ok(Self(key))
    }

    /// HMAC-SHA1 over `parts`. HMAC takes keys of any length, so `None` never happens in
    /// practice; callers fail closed on it all the same.
    fn mac(&self, parts: &[&[u8]]) -> Option<[u8; 20]> {
        let mut mac = HmacSha1::new_from_slice(&self.0).ok()?;
        for part in parts {
            mac.update(part);
        }
        Some(mac.finalize().into_bytes().into())
    }

    /// The JSON form: lowercase hex HMAC-SHA1 of `url` + `body` (empty only if HMAC failed,
    /// which matches no signature).
    pub fn sign_json(&self, url: &str, body: &[u8]) -> String {
        self.mac(&[url.as_bytes(), body])
            .map(|mac| to_hex(&mac))
            .unwrap_or_default()
    }

    /// The compatibility form: base64 HMAC-SHA1 of `url` + the parameters sorted by name (a
    /// stable sort: repeated names keep their order), each written as name then value (empty
    /// only if HMAC failed, which matches no signature).
    pub fn sign_form(&self, url: &str, params: &[(String, String)]) -> String {
        let mut sorted: Vec<&(String, String)> = params.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut parts: Vec<&[u8]> = vec![url.as_bytes()];
        for (name, value) in sorted {
            parts.push(name.as_bytes());
            parts.push(value.as_bytes());
        }
        self.mac(&parts)
            .map(|mac| STANDARD.encode(mac))
            .unwrap_or_default()
    }

    /// Check `signature` (the header's value) for a request the platform sent to `url` with the
    /// raw `body`. Accepts the JSON form, then the compatibility form (form parameters parsed
    /// from the body; a JSON or empty body signs the URL alone, which is accepted only for an
    /// empty body or when the URL's `bodySHA256` matches the body), each with and without the
    /// scheme's default port. Cost: linear in the
    /// body, a fixed number of HMACs.
    ///
    /// # Errors
    ///
    /// [`SignatureError::Missing`] for an empty signature, [`SignatureError::Mismatch`] when no
    /// form matches.
    pub fn verify(&self, signature: &str, url: &str, body: &[u8]) -> Result<(), SignatureError> {
        let signature = signature.trim();
        if signature.is_empty() {
            return Err(SignatureError::Missing);
        }
        let params = form_params(body);
        // Without `bodySHA256`, the URL-only compatibility form signs nothing of the body, so it
        // is accepted only for an empty body: otherwise one signed empty-body request (whose
        // MAC is also the URL-only MAC) would sign any body sent to the same URL.
        let body_hash_ok = || match body_sha256_param(url) {
            None => body.iter().all(u8::is_ascii_whitespace),
            Some(expected) => {
                let actual = to_hex(&Sha256::digest(body));
                bool::from(
                    actual
                        .as_bytes()
                        .ct_eq(expected.to_ascii_lowercase().as_bytes()),
                )
            }
        };
        let mut matched = false;
        for url in url_variants(url) {
            // Evaluate every candidate so the time spent does not say which form was close.
            let hex = self.sign_json(&url, body);
            matched |= bool::from(
                hex.as_bytes()
                    .ct_eq(signature.to_ascii_lowercase().as_bytes()),
            );
            let form = self.sign_form(&url, params.as_deref().unwrap_or(&[]));
            let form_ok = bool::from(form.as_bytes().ct_eq(signature.as_bytes()));
            matched |= form_ok && (params.is_some() || body_hash_ok());
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// The body as form parameters, or `None` when it is empty, JSON or not form-encoded text.
fn form_params(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() || text.starts_with('{') || text.starts_with('[') || !text.contains('=') {
        return None;
    }
    Some(
        url::form_urlencoded::parse(text.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

/// The `bodySHA256` query parameter of `url`, if any.
fn body_sha256_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == BODY_SHA256_PARAM)
        .map(|(_, v)| v.into_owned())
}

/// `url` as given, plus the same URL with the scheme's default port added or removed.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_string()];
    let Ok(parsed) = url::Url::parse(url) else {
        return variants;
    };
    let (Some(host), Some(default)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return variants;
    };
    if parsed.port().is_some() || !parsed.username().is_empty() || parsed.password().is_some() {
        return variants;
    }
    // `Url` drops a default port when parsing, so `parsed` serializes without it.
    let without = parsed.as_str().to_string();
    let rest = &without[parsed.scheme().len() + 3 + host.len()..];
    let with = format!("{}://{host}:{default}{rest}", parsed.scheme());
    for candidate in [without, with] {
        if !variants.contains(&candidate) {
            variants.push(candidate);
        }
    }
    variants
}

#[cfg(test)]
mod tests;
