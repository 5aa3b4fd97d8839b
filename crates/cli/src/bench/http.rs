//! The target and the wire: where the requests go, how they are authenticated, one worker's
//! keep-alive HTTP/1.1 connection, and what counts as a refusal.
//!
//! This module owns URL parsing (loopback unless `--allow-remote`, credentials from the URL or
//! the arguments), the raw POST with its timeout, and the `"<status> <reason>"` key of a
//! refused answer. It must not measure or decide what to call: timing is [`mod@super::load`]'s,
//! the plan is [`super::plan`]'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::args::{BenchArgs, Usage};

/// Where the requests go and how they are authenticated.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// Where to connect.
    pub(super) addr: SocketAddr,
    /// The `Host` header.
    host: HeaderValue,
    /// The `Authorization` header, when credentials were given.
    authorization: Option<HeaderValue>,
    /// The SWML route: path and query.
    pub(super) swml_path: String,
    /// The URL as shown in the report (no credentials).
    pub(super) shown: String,
}

impl Target {
    /// The target of `args.url`, resolved and checked (loopback unless `--allow-remote`).
    pub(super) async fn from_args(args: &BenchArgs) -> Result<Self, Usage> {
        let url = url::Url::parse(&args.url).map_err(|e| Usage(format!("bad URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(Usage(format!(
                "only http:// targets can be benchmarked (got {}://); benchmark the agent behind its TLS terminator on loopback",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Usage("the URL has no host".into()))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| Usage(format!("cannot resolve {host}: {e}")))?
            .collect();
        let addr = *addrs
            .first()
            .ok_or_else(|| Usage(format!("{host} resolves to no address")))?;
        if !args.allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(Usage(format!(
                "{host} is not a loopback address; a load test against a remote agent needs --allow-remote"
            )));
        }
        let user = match url.username() {
            "" => args.user.clone(),
            user => Some(decode(user)),
        };
        let password = match url.password() {
            Some(password) => Some(decode(password)),
            None => args.password.clone(),
        };
        let authorization =
            match (user, password) {
                (Some(user), Some(password)) => Some(HeaderValue::try_from(
                    voxguard_guard::basic_authorization(&user, &password).as_str(),
                )?),
                (None, None) => None,
                _ => return Err(Usage(
                    "give both a user and a password (URL, --user/--password or SWML_BASIC_AUTH_*)"
                        .into(),
                )),
            };
        let mut swml_path = url.path().to_string();
        if let Some(query) = url.query() {
            swml_path = format!("{swml_path}?{query}");
        }
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        Ok(Self {
            addr,
            host: HeaderValue::try_from(format!("{host}:{port}"))?,
            authorization,
            swml_path,
            shown: shown.to_string(),
        })
    }

    /// The same target served at `addr` (the baseline).
    pub(super) fn at(&self, addr: SocketAddr, shown: String) -> Result<Self, Usage> {
        Ok(Self {
            addr,
            host: HeaderValue::try_from(addr.to_string())?,
            authorization: self.authorization.clone(),
            swml_path: self.swml_path.clone(),
            shown,
        })
    }
}

/// A percent-encoded URL user or password, decoded.
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// What went wrong with one request.
pub(super) enum Failure {
    /// No HTTP answer: connect error, reset, timeout.
    Transport(String),
    /// An answer that is a refusal: `"<status> <reason>"`.
    Refused(String),
}

/// One worker's connection.
pub(super) struct Connection {
    target: Arc<Target>,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Connection {
    /// A connection to `target`, opened at the first request; each request waits at most
    /// `timeout`.
    pub(super) fn new(target: Arc<Target>, timeout: Duration) -> Self {
        Self {
            target,
            sender: None,
            timeout,
        }
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        let stream = tokio::net::TcpStream::connect(self.target.addr)
            .await
            .map_err(|e| Failure::Transport(format!("connect: {}", e.kind())))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Transport(format!("handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// POST `body` to `path`; the status and the whole body.
    pub(super) async fn post(
        &mut self,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Failure> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(Failure::Transport("no connection".into()));
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, self.target.host.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(authorization) = &self.target.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| Failure::Transport(format!("request: {e}")))?;
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                let kind = if e.is_incomplete_message() || e.is_closed() {
                    "connection closed"
                } else if e.is_parse() {
                    "bad response"
                } else {
                    "http error"
                };
                Err(Failure::Transport(kind.into()))
            }
            Err(_) => {
                self.sender = None;
                Err(Failure::Transport("timeout".into()))
            }
        }
    }
}

/// The `error` reason of a reply, if it has one.
#[derive(Deserialize)]
struct Reason {
    #[serde(default)]
    error: Option<String>,
}

/// The `"<status> <reason>"` key of a refused answer: a non-2xx status, or a 2xx carrying an
/// `error` reason; `None` for an answer that is not a refusal.
pub(super) fn refusal(status: StatusCode, body: &[u8]) -> Option<String> {
    let reason = serde_json::from_slice::<Reason>(body)
        .ok()
        .and_then(|r| r.error);
    match (status.is_success(), reason) {
        (true, None) => None,
        (_, reason) => Some(format!(
            "{} {}",
            status.as_u16(),
            reason.as_deref().unwrap_or("-")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_keyed_by_status_and_reason() {
        assert_eq!(refusal(StatusCode::OK, br#"{"response":"fine"}"#), None);
        assert_eq!(
            refusal(
                StatusCode::OK,
                br#"{"response":"no","error":"verification_required"}"#
            ),
            Some("200 verification_required".into())
        );
        assert_eq!(
            refusal(
                StatusCode::TOO_MANY_REQUESTS,
                br#"{"error":"rate_limited"}"#
            ),
            Some("429 rate_limited".into())
        );
        assert_eq!(
            refusal(StatusCode::BAD_GATEWAY, b"<html>"),
            Some("502 -".into())
        );
    }

    #[test]
    fn url_credentials_are_percent_decoded() {
        assert_eq!(decode("p%40ss%3Aword"), "p@ss:word");
        assert_eq!(decode("plain"), "plain");
        assert_eq!(decode("a+b"), "a+b");
    }
}
