//! The agent the CLI talks to: its URL, the Basic credentials to present, which certificates
//! to trust, how long to wait, and one request/answer exchange with every failure turned into
//! an error that says what to do next.
//!
//! It owns the HTTP client (reqwest with rustls), reading an answer with a size cap, and the
//! credentials: from the URL's userinfo, else `--user`/`--password` (or
//! `SWML_BASIC_AUTH_USER`/`SWML_BASIC_AUTH_PASSWORD`). It must not interpret SWML or SWAIG
//! ([`super::render`] and [`super::swaig`] do) and must never print a credential: the target
//! is shown as [`Target::shown`], without them.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use zeroize::Zeroizing;

use super::mask;

/// The largest answer body read; the rest is dropped and [`Answer::truncated`] set.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Where the agent is and how to reach it (shared by every command that talks to one).
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The agent's SWML URL, http or https. Credentials may be given in it
    /// (https://user:pass@host/route); they win over --user/--password.
    pub url: String,
    /// Basic auth user for the agent.
    #[arg(long, env = "SWML_BASIC_AUTH_USER")]
    pub user: Option<String>,
    /// Basic auth password for the agent (prefer the environment variable: a command line is
    /// visible to every user of the machine).
    #[arg(long, env = "SWML_BASIC_AUTH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A PEM file of CA certificates to trust besides the system's (e.g. a test CA).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
    /// Send webhook calls to this URL's scheme, host and port instead of the host the SWML
    /// names (for an agent behind a proxy whose public address is not reachable from here).
    #[arg(long)]
    pub same_origin: bool,
}

/// Why talking to the agent failed. Each message ends with what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The URL (or a URL the agent rendered) is not usable.
    #[error("{0}")]
    BadUrl(String),
    /// No connection could be made.
    #[error("cannot reach {url}: {detail}. Is the agent running, and is the URL right (scheme, host, port)?")]
    Unreachable {
        /// The URL, masked.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The TLS handshake failed.
    #[error("TLS with {url} failed: {detail}. For a private or test CA give --ca-cert FILE.")]
    Tls {
        /// The URL, masked.
        url: String,
        /// What failed.
        detail: String,
    },
    /// No answer in time.
    #[error("{url} did not answer within {secs} s. Is the agent overloaded or the URL wrong? Raise --timeout to wait longer.")]
    Timeout {
        /// The URL, masked.
        url: String,
        /// The timeout.
        secs: u64,
    },
    /// 401: no credentials, or not these.
    #[error("{url} answered 401: {hint}")]
    Unauthorized {
        /// The URL, masked.
        url: String,
        /// What to do.
        hint: &'static str,
    },
    /// The answer is not what was expected (not SWML, not JSON, an error status).
    #[error("{0}")]
    Unusable(String),
    /// The function has no webhook to call (a `data_map` function runs on the platform).
    #[error("{0} has no webhook URL in the SWML (a data_map function runs on the platform): there is nothing to call")]
    NoWebhook(String),
}

impl AgentError {
    /// Whether this is the user's mistake in the arguments (exit 2) rather than the agent's
    /// answer (exit 4).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::BadUrl(_) | Self::NoWebhook(_))
    }
}

/// Which credentials a request carries.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The target's credentials (if any).
    Target,
    /// None at all.
    None,
    /// These.
    Basic(String, Zeroizing<String>),
}

/// One answer, its body read up to [`MAX_ANSWER_BYTES`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body (at most [`MAX_ANSWER_BYTES`]).
    pub body: Bytes,
    /// Whether the body was longer and cut.
    pub truncated: bool,
}

impl Answer {
    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A running agent and how to talk to it.
pub struct Target {
    /// The SWML URL, without credentials.
    pub url: Url,
    user: Option<String>,
    password: Option<Zeroizing<String>>,
    client: reqwest::Client,
    timeout: Duration,
    same_origin: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The target of `args`.
    ///
    /// # Errors
    ///
    /// [`AgentError::BadUrl`] for a URL that is not http(s) with a host, or an unreadable
    /// `--ca-cert`.
    pub fn new(args: &TargetArgs) -> Result<Self, AgentError> {
        let (url, from_url) = split_credentials(&args.url)?;
        let (user, password) = match from_url {
            Some((user, password)) => (Some(user), Some(password)),
            None => (args.user.clone(), args.password.clone().map(Zeroizing::new)),
        };
        let timeout = Duration::from_secs(args.timeout.max(1));
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("voxguard-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path).map_err(|err| {
                AgentError::BadUrl(format!("cannot read --ca-cert {}: {err}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
                AgentError::BadUrl(format!("--ca-cert {} is not PEM: {err}", path.display()))
            })?;
            if certs.is_empty() {
                return Err(AgentError::BadUrl(format!(
                    "--ca-cert {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|err| AgentError::BadUrl(format!("cannot set up the HTTP client: {err}")))?;
        Ok(Self {
            url,
            user,
            password,
            client,
            timeout,
            same_origin: args.same_origin,
        })
    }

    /// The SWML URL as shown to the user: no credentials.
    pub fn shown(&self) -> String {
        mask::url(self.url.as_str())
    }

    /// The target's Basic credentials, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => Some((user.as_str(), password.as_str())),
            _ => None,
        }
    }

    /// Where a webhook URL the agent rendered is called, and with which credentials: those in
    /// its userinfo; else the target's, but only when the webhook is on the target's own
    /// origin (scheme, host and port) — a document must not be able to send the credentials
    /// the user gave for one host to another. With `--same-origin` the scheme, host and port
    /// are the target's.
    ///
    /// # Errors
    ///
    /// [`AgentError::BadUrl`] when the rendered URL is not an absolute http(s) URL.
    pub fn webhook(&self, rendered: &str) -> Result<(Url, Auth), AgentError> {
        let (mut url, credentials) = split_credentials(rendered).map_err(|_| {
            AgentError::Unusable(format!(
                "the agent rendered a webhook URL that is not an absolute http(s) URL: {}",
                mask::url(rendered)
            ))
        })?;
        if self.same_origin {
            // Scheme, host and port of the target; these setters only fail on cannot-be-a-base
            // URLs, which split_credentials has refused.
            let _ = url.set_scheme(self.url.scheme());
            let _ = url.set_host(self.url.host_str());
            let _ = url.set_port(self.url.port());
        }
        let auth = match credentials {
            Some((user, password)) => Auth::Basic(user, password),
            None if url.origin() == self.url.origin() => Auth::Target,
            None => Auth::None,
        };
        Ok((url, auth))
    }

    /// Send one request and read the answer (capped at [`MAX_ANSWER_BYTES`]).
    ///
    /// # Errors
    ///
    /// [`AgentError::Unreachable`], [`AgentError::Tls`] or [`AgentError::Timeout`]; an HTTP
    /// error status is an [`Answer`], not an error.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        auth: &Auth,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, AgentError> {
        let mut request = self.client.request(method, url.clone());
        match auth {
            Auth::Target => {
                if let Some((user, password)) = self.credentials() {
                    request = request.basic_auth(user, Some(password));
                }
            }
            Auth::Basic(user, password) => {
                request = request.basic_auth(user, Some(password.as_str()));
            }
            Auth::None => {}
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let shown = mask::url(url.as_str());
        let mut response = request
            .send()
            .await
            .map_err(|err| self.classify(&shown, &err))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => return Err(self.classify(&shown, &err)),
            }
        }
        Ok(Answer {
            status,
            headers,
            body: Bytes::from(body),
            truncated,
        })
    }

    /// POST a JSON body with `auth`.
    ///
    /// # Errors
    ///
    /// As [`Target::send`].
    pub async fn post_json(
        &self,
        url: &Url,
        auth: &Auth,
        body: &serde_json::Value,
    ) -> Result<Answer, AgentError> {
        self.send(
            Method::POST,
            url,
            auth,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// The error of a failed exchange with `shown`.
    fn classify(&self, shown: &str, err: &reqwest::Error) -> AgentError {
        let chain = error_chain(err);
        let lower = chain.to_ascii_lowercase();
        if err.is_timeout() {
            AgentError::Timeout {
                url: shown.to_string(),
                secs: self.timeout.as_secs(),
            }
        } else if shown.starts_with("https:")
            && ["certificate", "tls", "handshake", "unknownissuer", "ssl"]
                .iter()
                .any(|word| lower.contains(word))
        {
            AgentError::Tls {
                url: shown.to_string(),
                detail: chain,
            }
        } else if err.is_connect() {
            AgentError::Unreachable {
                url: shown.to_string(),
                detail: chain,
            }
        } else {
            AgentError::Unusable(format!(
                "{shown} was reached, but the exchange broke: {chain}. The agent (or a proxy \
                 in front of it) sent something that is not valid HTTP, or closed the connection."
            ))
        }
    }

    /// The secrets the user gave for this target (its password), to be masked wherever an
    /// agent might echo them.
    pub fn secrets(&self) -> mask::Secrets {
        let mut secrets = mask::Secrets::default();
        if let Some((_, password)) = self.credentials() {
            secrets.add(password);
        }
        secrets
    }
}

/// The hint of a 401 answer, given whether credentials were sent.
pub fn unauthorized_hint(sent_credentials: bool) -> &'static str {
    if sent_credentials {
        "the agent refused these credentials. Check the user and password (in the URL, \
         --user/--password, or SWML_BASIC_AUTH_USER/SWML_BASIC_AUTH_PASSWORD)."
    } else {
        "the agent wants credentials. Give them in the URL (https://user:pass@host/route), \
         with --user/--password, or in SWML_BASIC_AUTH_USER/SWML_BASIC_AUTH_PASSWORD."
    }
}

/// A user and its password.
type UserPassword = (String, Zeroizing<String>);

/// `text` as an absolute http(s) URL without userinfo, plus the userinfo's credentials
/// (percent-decoded).
fn split_credentials(text: &str) -> Result<(Url, Option<UserPassword>), AgentError> {
    let mut url = Url::parse(text).map_err(|err| {
        AgentError::BadUrl(format!(
            "{} is not a URL ({err}); give the agent's SWML URL, e.g. http://127.0.0.1:3000/",
            mask::url(text)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(AgentError::BadUrl(format!(
            "{} is not an http:// or https:// URL with a host",
            mask::url(text)
        )));
    }
    let credentials = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = decode(url.username());
        let password = Zeroizing::new(decode(url.password().unwrap_or("")));
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some((user, password))
    };
    Ok((url, credentials))
}

/// The innermost cause of an error (e.g. "Connection refused (os error 111)" rather than
/// reqwest's "error sending request for url …" wrapper).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        innermost = next.to_string();
        source = next.source();
    }
    innermost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> TargetArgs {
        TargetArgs {
            url: url.into(),
            user: Some("flag-user".into()),
            password: Some("flag-password".into()),
            ca_cert: None,
            timeout: 5,
            same_origin: false,
        }
    }

    #[test]
    fn url_credentials_win_and_are_not_shown() {
        let target = Target::new(&args("http://u%40x:p%3Aw@127.0.0.1:9/agent")).unwrap();
        assert_eq!(target.credentials(), Some(("u@x", "p:w")));
        assert_eq!(target.shown(), "http://127.0.0.1:9/agent");
        assert!(!format!("{target:?}").contains("p:w"));
        let target = Target::new(&args("http://127.0.0.1:9/")).unwrap();
        assert_eq!(target.credentials(), Some(("flag-user", "flag-password")));
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for url in [
            "127.0.0.1:3000",
            "ftp://h/",
            "nonsense",
            "file:///etc/passwd",
        ] {
            let err = Target::new(&args(url)).unwrap_err();
            assert!(err.is_usage(), "{url}: {err}");
        }
    }

    #[test]
    fn same_origin_moves_webhooks_to_the_target() {
        let mut same = args("http://127.0.0.1:9/");
        same.same_origin = true;
        let target = Target::new(&same).unwrap();
        let (url, auth) = target
            .webhook("https://a:b@agent.example.com/swaig?__token=t")
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/swaig?__token=t");
        assert!(matches!(auth, Auth::Basic(user, _) if user == "a"));
    }

    #[test]
    fn the_targets_credentials_never_go_to_another_origin() {
        let target = Target::new(&args("http://127.0.0.1:9/agent")).unwrap();
        let (_, same) = target.webhook("http://127.0.0.1:9/swaig").unwrap();
        assert!(matches!(same, Auth::Target));
        for elsewhere in [
            "http://attacker.example/swaig",
            "http://127.0.0.1:10/swaig",
            "https://127.0.0.1:9/swaig",
        ] {
            let (_, auth) = target.webhook(elsewhere).unwrap();
            assert!(matches!(auth, Auth::None), "{elsewhere}");
        }
    }
}
