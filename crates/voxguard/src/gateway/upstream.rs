//! The gateway's side toward the upstream agent: one HTTP client, the SWML fetch and the
//! forwarding of a webhook call to the URL the upstream gave for it.
//!
//! Owns the upstream's credentials, the rule that only the upstream's own origin is ever
//! called (webhook URLs elsewhere are refused), answers capped in size, no redirects followed,
//! one timeout per request. It must
//! not decide anything about a call (the pipeline does) and must never log a URL with its
//! query or credentials.

use std::time::Duration;

use serde_json::Value;

use super::config::{GatewayConfig, UpstreamCredentials};

/// The largest SWML document read from the upstream.
const MAX_SWML_BYTES: usize = 4 * 1024 * 1024;

/// The largest answer to a function call (or summary, or payment) read from the upstream.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why the upstream gave no usable answer (logged for operators; the caller sees a generic
/// sentence).
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection, a TLS failure or a timeout.
    #[error("the upstream could not be reached: {0}")]
    Unreachable(String),
    /// It answered with a status other than 2xx.
    #[error("the upstream answered HTTP {0}")]
    Status(u16),
    /// The answer was larger than the gateway reads.
    #[error("the upstream's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// A webhook URL outside the upstream's origin (scheme, host and port of its SWML URL).
    #[error(
        "the webhook URL is not on the upstream's origin; the gateway calls only the upstream"
    )]
    OtherOrigin,
    /// The answer was not JSON (or not the shape expected).
    #[error("the upstream's answer is not {0}")]
    NotJson(&'static str),
}

/// The upstream agent as the gateway reaches it.
pub(crate) struct Upstream {
    client: reqwest::Client,
    swml_url: url::Url,
    credentials: Option<UpstreamCredentials>,
}

impl Upstream {
    /// A client for `config`'s upstream.
    pub(crate) fn new(config: &GatewayConfig) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(config.upstream_timeout)
            .connect_timeout(config.upstream_timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|e| format!("the upstream HTTP client could not be built: {e}"))?;
        Ok(Self {
            client,
            swml_url: config.upstream.clone(),
            credentials: config.upstream_credentials.clone(),
        })
    }

    /// The configured password, if any: it must never reach a rendered document.
    pub(crate) fn password(&self) -> Option<&str> {
        self.credentials
            .as_ref()
            .map(|c| c.password.as_str())
            .filter(|p| !p.is_empty())
    }

    /// Whether the upstream answers at all (`/ready`): any HTTP answer below 500 to a `GET` of
    /// its SWML URL.
    pub(crate) async fn ping(&self) -> Result<(), UpstreamError> {
        let mut request = self.client.get(self.swml_url.clone());
        if let Some(credentials) = &self.credentials {
            request = request.basic_auth(&credentials.user, Some(&credentials.password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(describe(&e)))?;
        match response.status().as_u16() {
            code if code >= 500 => Err(UpstreamError::Status(code)),
            _ => Ok(()),
        }
    }

    /// Fetch SWML the way the platform does: `POST` the platform's body to the SWML URL.
    pub(crate) async fn fetch_swml(&self, body: &Value) -> Result<Value, UpstreamError> {
        let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
        let (_, answer) = self
            .post(self.swml_url.clone(), bytes, MAX_SWML_BYTES)
            .await?;
        match answer {
            Value::Object(_) => Ok(answer),
            _ => Err(UpstreamError::NotJson("an SWML document (a JSON object)")),
        }
    }

    /// `POST body` to `url` (a webhook URL the upstream gave in its SWML) and read the JSON
    /// answer. Non-2xx answers are errors.
    pub(crate) async fn call(&self, url: &str, body: Vec<u8>) -> Result<Value, UpstreamError> {
        let url = url::Url::parse(url).map_err(|_| {
            UpstreamError::Unreachable("the stored webhook URL does not parse".into())
        })?;
        let (status, answer) = self.post(url, body, MAX_ANSWER_BYTES).await?;
        if (200..300).contains(&status) {
            Ok(answer)
        } else {
            Err(UpstreamError::Status(status))
        }
    }

    /// `POST body` to `url` and answer the status and JSON body whatever the status (the
    /// payment connector passes the upstream's non-200 answers on).
    pub(crate) async fn relay(
        &self,
        url: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value), UpstreamError> {
        let url = url::Url::parse(url).map_err(|_| {
            UpstreamError::Unreachable("the stored webhook URL does not parse".into())
        })?;
        self.post_any(url, body, MAX_ANSWER_BYTES).await
    }

    async fn post(
        &self,
        url: url::Url,
        body: Vec<u8>,
        cap: usize,
    ) -> Result<(u16, Value), UpstreamError> {
        let (status, value) = self.post_any(url, body, cap).await?;
        if (200..300).contains(&status) {
            Ok((status, value))
        } else {
            Err(UpstreamError::Status(status))
        }
    }

    /// The one place a request leaves for the upstream. Credentials: the ones embedded in
    /// `url` (the upstream put them there for the platform), else the configured ones — but
    /// those only toward the upstream's own origin.
    async fn post_any(
        &self,
        mut url: url::Url,
        body: Vec<u8>,
        cap: usize,
    ) -> Result<(u16, Value), UpstreamError> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let embedded = (!url.username().is_empty())
            .then(|| (decode(url.username()), url.password().map(decode)));
        // The configured credentials go with every request (all go to the upstream's origin),
        // unless the upstream embedded its own in the URL.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if url.origin() != self.swml_url.origin() {
            // The upstream's SWML names the URLs; a compromised or confused upstream must not
            // make the gateway call anything else on its network.
            return Err(UpstreamError::OtherOrigin);
        }
        let mut request = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if let Some((user, password)) = embedded {
            request = request.basic_auth(user, password);
        } else if let Some(credentials) = &self.credentials {
            request = request.basic_auth(&credentials.user, Some(&credentials.password));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(describe(&e)))?;
        let status = response.status().as_u16();
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(UpstreamError::TooLarge(cap));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| UpstreamError::Unreachable(describe(&e)))?
        {
            if bytes.len() + chunk.len() > cap {
                return Err(UpstreamError::TooLarge(cap));
            }
            bytes.extend_from_slice(&chunk);
        }
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| UpstreamError::NotJson("JSON"))?
        };
        Ok((status, value))
    }
}

/// A reqwest error without its URL (which can carry a token).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        error.without_url_ref_string()
    }
}

/// `without_url` for a borrowed error: the message with any URL removed.
trait WithoutUrl {
    fn without_url_ref_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_string(&self) -> String {
        let text = self.to_string();
        match self.url() {
            Some(url) => text.replace(url.as_str(), "<upstream>"),
            None => text,
        }
    }
}
