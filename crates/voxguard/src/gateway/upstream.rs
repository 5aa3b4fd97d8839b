//! The gateway's side toward the upstream agent: one HTTP client, the SWML fetch and the
//! forwarding of a webhook call to the URL the upstream gave for it.
//!
//! Owns the upstream's credentials, the rule that only the upstream's own origin is ever
//! called (webhook URLs elsewhere are refused), answers capped in size (read into one buffer
//! that never grows past the cap), no redirects followed, one timeout over each whole
//! exchange (connect, send, the full answer), and certificate checks for an `https` upstream.
//! It must not decide anything about a call (the pipeline does) and must never log a URL with
//! its query or credentials.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use super::config::{GatewayConfig, UpstreamCredentials};

/// The largest SWML document read from the upstream.
const MAX_SWML_BYTES: usize = 4 * 1024 * 1024;

/// The largest answer to a function call (or summary, or payment) read from the upstream.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Idle connections kept open toward the upstream.
const MAX_IDLE: usize = 256;

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
///
/// The client is hyper's pooled HTTP/1.1 client with rustls and the webpki roots (the same
/// trust as the rest of voxguard's outgoing TLS). It follows no redirects; every request is
/// bounded by the configured upstream timeout, connect and answer included.
pub(crate) struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    swml_url: url::Url,
    credentials: Option<UpstreamCredentials>,
    /// The `Authorization` value for the configured credentials, built once.
    authorization: Option<HeaderValue>,
}

/// A `Basic` `Authorization` header value (marked sensitive, so hyper never logs it).
fn basic_authorization(user: &str, password: Option<&str>) -> Option<HeaderValue> {
    let value = voxguard_guard::basic_authorization(user, password.unwrap_or_default());
    let mut value = HeaderValue::from_str(&value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl Upstream {
    /// A client for `config`'s upstream.
    pub(crate) fn new(config: &GatewayConfig) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        // As reqwest did: a pooled connection that died silently (a NAT or load balancer
        // dropping it) is found by the kernel instead of hanging the next call to its timeout.
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        http.set_connect_timeout(Some(config.upstream_timeout.min(Duration::from_secs(5))));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .map_err(|e| format!("the upstream TLS client could not be built: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(MAX_IDLE)
            .build(https);
        let authorization = config
            .upstream_credentials
            .as_ref()
            .and_then(|c| basic_authorization(&c.user, Some(&c.password)));
        Ok(Self {
            client,
            timeout: config.upstream_timeout,
            swml_url: config.upstream.clone(),
            credentials: config.upstream_credentials.clone(),
            authorization,
        })
    }

    /// The configured credentials (user, password), if any: neither the password nor the
    /// pair may ever reach a rendered document.
    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|c| (c.user.as_str(), c.password.as_str()))
    }

    /// Whether the upstream answers at all (`/ready`): any HTTP answer below 500 to a `GET` of
    /// its SWML URL.
    pub(crate) async fn ping(&self) -> Result<(), UpstreamError> {
        let (status, _) = self
            .send(
                hyper::Method::GET,
                &self.swml_url,
                self.authorization.clone(),
                Bytes::new(),
                None,
            )
            .await?;
        match status {
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
        let embedded = (!url.username().is_empty() || url.password().is_some())
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
        let authorization = match embedded {
            Some((user, password)) => basic_authorization(&user, password.as_deref()),
            None => self.authorization.clone(),
        };
        let (status, bytes) = self
            .send(
                hyper::Method::POST,
                &url,
                authorization,
                Bytes::from(body),
                Some(cap),
            )
            .await?;
        let value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| UpstreamError::NotJson("JSON"))?
        };
        Ok((status, value))
    }
}

impl Upstream {
    /// Send one request to `url` and read its answer — at most `cap` bytes, or only the
    /// status and headers when `cap` is `None` — all within the upstream timeout. The answer
    /// is copied into one buffer that never grows past the cap, however it is chunked. Errors
    /// never carry the URL (it can hold a token).
    async fn send(
        &self,
        method: hyper::Method,
        url: &url::Url,
        authorization: Option<HeaderValue>,
        body: Bytes,
        cap: Option<usize>,
    ) -> Result<(u16, Vec<u8>), UpstreamError> {
        let uri = hyper::Uri::try_from(url.as_str())
            .map_err(|_| UpstreamError::Unreachable("the webhook URL is not a valid URI".into()))?;
        let post = method == hyper::Method::POST;
        let mut request = hyper::Request::builder().method(method).uri(uri);
        if post {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header(ACCEPT, HeaderValue::from_static("application/json"));
        }
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|_| UpstreamError::Unreachable("the request could not be built".into()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| UpstreamError::Unreachable(describe(&e)))?;
            let status = response.status().as_u16();
            let Some(cap) = cap else {
                // Dropping the unread answer closes that connection; fine for a probe.
                return Ok((status, Vec::new()));
            };
            let declared = response
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > cap as u64) {
                return Err(UpstreamError::TooLarge(cap));
            }
            let capacity = declared.map_or(8 * 1024, |n| usize::try_from(n).unwrap_or(cap));
            let mut bytes = Vec::with_capacity(capacity.min(cap));
            let mut answer = response.into_body();
            while let Some(frame) = answer.frame().await {
                let frame = frame
                    .map_err(|_| UpstreamError::Unreachable("the answer was cut off".into()))?;
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > cap {
                        return Err(UpstreamError::TooLarge(cap));
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Unreachable("timed out".into()))?
    }
}

/// A client error, described without a URL (hyper's errors carry none; the cause chain is
/// kept for operators).
fn describe(error: &hyper_util::client::legacy::Error) -> String {
    if error.is_connect() {
        "connection failed".into()
    } else {
        use std::error::Error as _;
        match error.source() {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The client's contract against a real HTTP server on port 0: answers capped, no
    //! redirects followed, only the upstream's origin called, the right credentials sent, one
    //! timeout for the whole exchange, and no URL (with its token) in any error.

    use std::net::SocketAddr;

    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::Router;
    use base64::Engine as _;
    use futures_util::StreamExt as _;

    use super::*;

    /// What the test upstream answers on each path.
    fn app() -> Router {
        Router::new()
            .route(
                "/echo-auth",
                post(|headers: HeaderMap| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    axum::Json(serde_json::json!({ "authorization": auth }))
                }),
            )
            .route(
                "/big-declared",
                post(|| async { "x".repeat(MAX_ANSWER_BYTES + 1) }),
            )
            .route(
                "/big-streamed",
                post(|| async {
                    let chunks = (0..17).map(|_| {
                        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(vec![b' '; 64 * 1024]))
                    });
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
                }),
            )
            .route(
                "/redirect",
                post(|| async { (StatusCode::FOUND, [("location", "/echo-auth")], "") }),
            )
            .route(
                "/declared-then-stall",
                post(|| async {
                    // Declares more than the cap, then never finishes: only the declared
                    // length can refuse it before the timeout.
                    let stall = futures_util::stream::once(async {
                        Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b" "))
                    })
                    .chain(futures_util::stream::pending());
                    (
                        [("content-length", (MAX_ANSWER_BYTES + 1).to_string())],
                        axum::body::Body::from_stream(stall),
                    )
                }),
            )
            .route(
                "/drip",
                post(|| async {
                    // Headers at once, then a byte every 100 ms for ever.
                    let drip = futures_util::stream::unfold((), |()| async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((
                            Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(b" ")),
                            (),
                        ))
                    });
                    axum::body::Body::from_stream(drip)
                }),
            )
            .route(
                "/swml",
                axum::routing::get(|| async { " ".repeat(2 * MAX_ANSWER_BYTES) }),
            )
            .route(
                "/down/swml",
                axum::routing::get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "{}"
                }),
            )
    }

    async fn serve() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app()).await });
        addr
    }

    fn upstream(addr: SocketAddr, timeout: Duration) -> Upstream {
        upstream_at(addr, "/swml", timeout)
    }

    fn upstream_at(addr: SocketAddr, path: &str, timeout: Duration) -> Upstream {
        let mut config = GatewayConfig::new(format!("http://{addr}{path}").parse().unwrap());
        config.upstream_credentials = Some(UpstreamCredentials {
            user: "configured".into(),
            password: "configured-secret".into(),
        });
        config.upstream_timeout = timeout;
        Upstream::new(&config).unwrap()
    }

    impl Upstream {
        /// `call` with an empty JSON object, as every test here sends.
        async fn empty_call(&self, url: &str) -> Result<Value, UpstreamError> {
            self.call(url, b"{}".to_vec()).await
        }
    }

    fn basic(user: &str, password: &str) -> String {
        let pair = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    #[tokio::test]
    async fn configured_credentials_go_unless_the_url_embeds_its_own() {
        let addr = serve().await;
        let up = upstream(addr, Duration::from_secs(5));
        let answer = up
            .empty_call(&format!("http://{addr}/echo-auth"))
            .await
            .unwrap();
        assert_eq!(
            answer["authorization"],
            basic("configured", "configured-secret")
        );
        let answer = up
            .empty_call(&format!(
                "http://own%20user:p%40ss@{addr}/echo-auth?token=t"
            ))
            .await
            .unwrap();
        assert_eq!(answer["authorization"], basic("own user", "p@ss"));
        // A password alone (a token in the password slot) is the upstream's own too.
        let answer = up
            .empty_call(&format!("http://:tok@{addr}/echo-auth"))
            .await
            .unwrap();
        assert_eq!(answer["authorization"], basic("", "tok"));
    }

    #[tokio::test]
    async fn an_https_upstream_is_verified_and_never_called_in_plain_text() {
        // A TLS server with a self-signed certificate: the handshake must fail on the
        // gateway's side (unknown issuer), and no request may be sent.
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = certified.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(certified.key_pair.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (handshakes, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let outcome = acceptor.accept(stream).await.map(|_| ());
                let _ = handshakes.send(outcome.is_ok());
            }
        });
        let mut config = GatewayConfig::new(
            format!("https://localhost:{}/swml", addr.port())
                .parse()
                .unwrap(),
        );
        config.upstream_timeout = Duration::from_secs(5);
        let up = Upstream::new(&config).unwrap();
        let outcome = up
            .empty_call(&format!("https://localhost:{}/x", addr.port()))
            .await;
        assert!(
            matches!(&outcome, Err(UpstreamError::Unreachable(why)) if why == "connection failed"),
            "{outcome:?}"
        );
        assert_eq!(
            outcomes.recv().await,
            Some(false),
            "the client spoke TLS and gave up in the handshake"
        );

        // An https upstream on a port that speaks plain HTTP: no fallback to plain text.
        let plain = serve().await;
        let mut config = GatewayConfig::new(
            format!("https://localhost:{}/swml", plain.port())
                .parse()
                .unwrap(),
        );
        config.upstream_timeout = Duration::from_secs(5);
        let outcome = Upstream::new(&config)
            .unwrap()
            .empty_call(&format!("https://localhost:{}/echo-auth", plain.port()))
            .await;
        assert!(
            matches!(outcome, Err(UpstreamError::Unreachable(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn ready_reads_the_status_only() {
        let addr = serve().await;
        // The SWML answer is twice the call cap: a probe must not read (or refuse) it.
        upstream(addr, Duration::from_secs(5)).ping().await.unwrap();
        let outcome = upstream_at(addr, "/down/swml", Duration::from_secs(5))
            .ping()
            .await;
        assert!(
            matches!(outcome, Err(UpstreamError::Status(503))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_before_the_body() {
        let addr = serve().await;
        let up = upstream(addr, Duration::from_secs(30));
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            up.empty_call(&format!("http://{addr}/declared-then-stall")),
        )
        .await
        .expect("refused on its declared length, not left to stall");
        assert!(
            matches!(outcome, Err(UpstreamError::TooLarge(MAX_ANSWER_BYTES))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn the_timeout_covers_a_dripping_answer() {
        let addr = serve().await;
        let up = upstream(addr, Duration::from_millis(500));
        let started = std::time::Instant::now();
        let outcome = up.empty_call(&format!("http://{addr}/drip")).await;
        assert!(
            matches!(&outcome, Err(UpstreamError::Unreachable(why)) if why == "timed out"),
            "{outcome:?}"
        );
        // Generous: the bound is the configured timeout, not the answer's pace.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[tokio::test]
    async fn answers_over_the_cap_are_refused_declared_or_streamed() {
        let addr = serve().await;
        let up = upstream(addr, Duration::from_secs(5));
        for path in ["/big-declared", "/big-streamed"] {
            let outcome = up.empty_call(&format!("http://{addr}{path}")).await;
            assert!(
                matches!(outcome, Err(UpstreamError::TooLarge(MAX_ANSWER_BYTES))),
                "{path}: {outcome:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let addr = serve().await;
        let up = upstream(addr, Duration::from_secs(5));
        let outcome = up.empty_call(&format!("http://{addr}/redirect")).await;
        assert!(
            matches!(outcome, Err(UpstreamError::Status(302))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn only_the_upstreams_origin_is_called() {
        let addr = serve().await;
        let other = serve().await;
        let up = upstream(addr, Duration::from_secs(5));
        let (port, other_port) = (addr.port(), other.port());
        // Spellings that name another origin, whatever they look like at a glance.
        for url in [
            format!("http://{other}/echo-auth"),
            format!("http://{addr}@{other}/echo-auth"),
            format!("http://user:{addr}@{other}/echo-auth"),
            format!("http://127.0.0.1:{other_port}/echo-auth#@{addr}"),
            format!("https://{addr}/echo-auth"),
            format!("http://localhost:{port}/echo-auth"),
            format!("http://127.0.0.2:{port}/echo-auth"),
            format!("http://[::1]:{port}/echo-auth"),
            "http://127.0.0.1/echo-auth".to_string(),
        ] {
            let outcome = up.empty_call(&url).await;
            assert!(
                matches!(outcome, Err(UpstreamError::OtherOrigin)),
                "{url}: {outcome:?}"
            );
        }
        // The same origin however it is spelled: scheme and host case, an explicit path.
        for url in [
            format!("HTTP://{addr}/echo-auth"),
            format!("http://127.0.0.1:{port}/./echo-auth"),
        ] {
            let outcome = up.empty_call(&url).await;
            assert!(outcome.is_ok(), "{url}: {outcome:?}");
        }
    }

    #[tokio::test]
    async fn the_timeout_bounds_the_exchange_and_errors_hold_no_url() {
        let addr = serve().await;
        let up = upstream(addr, Duration::from_millis(300));
        let outcome = up
            .empty_call(&format!("http://{addr}/slow?token=SECRET-TOKEN"))
            .await;
        let Err(error) = outcome else {
            panic!("a 5 s answer passed a 300 ms timeout");
        };
        assert!(error.to_string().contains("timed out"), "{error}");
        assert!(!error.to_string().contains("SECRET-TOKEN"));

        // A closed port: connection refused, described without the URL.
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let down = upstream(closed, Duration::from_secs(5));
        let error = down
            .empty_call(&format!("http://{closed}/x?token=SECRET-TOKEN"))
            .await
            .unwrap_err();
        assert!(matches!(error, UpstreamError::Unreachable(_)), "{error}");
        let text = format!("{error} {error:?}");
        assert!(
            !text.contains("SECRET-TOKEN") && !text.contains(&closed.to_string()),
            "{text}"
        );
    }
}
