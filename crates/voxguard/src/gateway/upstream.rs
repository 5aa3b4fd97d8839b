//! The gateway's side toward the upstream agent: one HTTP client, the SWML fetch and the
//! forwarding of a webhook call to the URL the upstream gave for it.
//!
//! Owns the upstream's credentials, the rule that only the upstream's own origin is ever
//! called (webhook URLs elsewhere are refused), answers capped in size (read into one buffer
//! that never grows past the cap), no redirects followed, one timeout over each whole
//! exchange (connect, send, the full answer), certificate checks for an `https` upstream, and
//! the pool of keep-alive connections to it, each driven by the call that uses it.
//! It must not decide anything about a call (the pipeline does) and must never log a URL with
//! its query or credentials.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tower::ServiceExt as _;

use super::config::{GatewayConfig, UpstreamCredentials};

/// The largest SWML document read from the upstream.
const MAX_SWML_BYTES: usize = 4 * 1024 * 1024;

/// The largest answer to a function call (or summary, or payment) read from the upstream.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Idle connections kept open toward the upstream.
const MAX_IDLE: usize = 256;

/// How long an idle connection is kept before it is closed. Nothing reads a kept connection
/// while it is idle, so one the upstream closed (many close theirs after 5 s) is only found
/// when it is next taken — which costs that call one more attempt, never its request — and
/// its socket lingers until then or until the sweep, at most about 1⅓ × this.
const IDLE_FOR: Duration = Duration::from_secs(30);

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
/// The client is hyper's HTTP/1.1 connection with rustls and the webpki roots (the same trust
/// as the rest of voxguard's outgoing TLS), over a pool of keep-alive connections to the one
/// origin it may call. A call takes an idle connection (or opens one) and drives it in its own
/// task until the answer is read — no connection task, no hand-off between tasks — then puts
/// it back. It follows no redirects; every request is bounded by the configured upstream
/// timeout, connect and answer included.
pub(crate) struct Upstream {
    connector: HttpsConnector<HttpConnector>,
    /// Idle connections, the most recently used last.
    idle: Arc<Mutex<VecDeque<Box<Conn>>>>,
    /// Whether the sweep of stale idle connections runs.
    sweeping: std::sync::Once,
    /// How long an idle connection is kept ([`IDLE_FOR`]; shorter in tests).
    idle_for: Duration,
    timeout: Duration,
    swml_url: url::Url,
    /// The upstream's origin (`scheme://host:port/`), where connections are opened.
    origin: hyper::Uri,
    /// The `Host` header every request carries (the origin's host, and port unless default).
    host: HeaderValue,
    credentials: Option<UpstreamCredentials>,
    /// The `Authorization` value for the configured credentials, built once.
    authorization: Option<HeaderValue>,
}

/// The transport of a connection: TCP, or TLS over it.
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// One keep-alive HTTP/1.1 connection to the upstream. Whoever holds it drives it. Always
/// boxed (one allocation per connection): inline, its TLS state and buffers made every
/// call's future several KB larger, copied on every request.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: http1::Connection<Stream, Full<Bytes>>,
    /// The driver finished: the connection is closed or failed, never to be used again.
    ended: bool,
    /// When it was last put back idle.
    since: Instant,
}

/// Poll `work` to its end while driving `driver` in the same task (the connection reads and
/// writes only while polled). `None`: the connection ended and left `work` unfinished.
async fn driving<W: Future>(
    driver: &mut http1::Connection<Stream, Full<Bytes>>,
    ended: &mut bool,
    work: W,
) -> Option<W::Output> {
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if *ended {
            return Poll::Ready(None);
        }
        match driver.poll_without_shutdown(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => {
                // Its end settles what was waiting on it (an error, or the answer's end).
                *ended = true;
                Poll::Ready(match work.as_mut().poll(cx) {
                    Poll::Ready(output) => Some(output),
                    Poll::Pending => None,
                })
            }
        }
    })
    .await
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
        let swml_url = config.upstream.clone();
        let host = match (swml_url.host_str(), swml_url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err("the upstream URL names no host".into()),
        };
        let host = HeaderValue::from_str(&host)
            .map_err(|_| "the upstream URL's host is not a valid Host header".to_string())?;
        let origin = hyper::Uri::try_from(swml_url.origin().ascii_serialization())
            .map_err(|_| "the upstream URL's origin is not a valid URI".to_string())?;
        let authorization = config
            .upstream_credentials
            .as_ref()
            .and_then(|c| basic_authorization(&c.user, Some(&c.password)));
        Ok(Self {
            connector: https,
            idle: Arc::default(),
            sweeping: std::sync::Once::new(),
            idle_for: IDLE_FOR,
            timeout: config.upstream_timeout,
            swml_url,
            origin,
            host,
            credentials: config.upstream_credentials.clone(),
            authorization,
        })
    }

    /// The upstream's origin (scheme, host and port): every URL the gateway forwards to is on it.
    pub(crate) fn origin(&self) -> url::Origin {
        self.swml_url.origin()
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
                &uri_of(&self.swml_url)?,
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
        let target = self.target(self.swml_url.as_str())?;
        match self.post(&target, bytes, MAX_SWML_BYTES).await? {
            answer @ Value::Object(_) => Ok(answer),
            _ => Err(UpstreamError::NotJson("an SWML document (a JSON object)")),
        }
    }

    /// `url` (a webhook URL the upstream gave in its SWML) checked and split once: refused
    /// unless it is on the upstream's origin; the credentials it embeds taken out for the
    /// `Authorization` header (else the configured ones go).
    pub(crate) fn target(&self, url: &str) -> Result<Target, UpstreamError> {
        let mut url = url::Url::parse(url).map_err(|_| {
            UpstreamError::Unreachable("the stored webhook URL does not parse".into())
        })?;
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
        Ok(Target {
            uri: uri_of(&url)?,
            authorization,
        })
    }

    /// `POST body` to `url` (a webhook URL the upstream gave in its SWML) and read the JSON
    /// answer. Non-2xx answers are errors.
    pub(crate) async fn call(&self, url: &str, body: Vec<u8>) -> Result<Value, UpstreamError> {
        self.call_target(&self.target(url)?, body).await
    }

    /// [`Upstream::call`] to a URL already checked by [`Upstream::target`].
    pub(crate) async fn call_target(
        &self,
        target: &Target,
        body: Vec<u8>,
    ) -> Result<Value, UpstreamError> {
        self.post(target, body, MAX_ANSWER_BYTES).await
    }

    /// [`Upstream::post_any`], with answers other than 2xx as errors.
    async fn post(
        &self,
        target: &Target,
        body: Vec<u8>,
        cap: usize,
    ) -> Result<Value, UpstreamError> {
        match self.post_any(target, body, cap).await? {
            (200..300, answer) => Ok(answer),
            (status, _) => Err(UpstreamError::Status(status)),
        }
    }

    /// `POST body` to `url` and answer the status and JSON body whatever the status (the
    /// payment connector passes the upstream's non-200 answers on).
    pub(crate) async fn relay(
        &self,
        url: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value), UpstreamError> {
        self.post_any(&self.target(url)?, body, MAX_ANSWER_BYTES)
            .await
    }

    /// The one place a request leaves for the upstream (but for `ping`): `POST body` to a
    /// checked target and read its JSON answer, whatever the status.
    async fn post_any(
        &self,
        target: &Target,
        body: Vec<u8>,
        cap: usize,
    ) -> Result<(u16, Value), UpstreamError> {
        let (status, bytes) = self
            .send(
                hyper::Method::POST,
                &target.uri,
                target.authorization.clone(),
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

/// A webhook URL of the upstream's as [`Upstream::target`] checked it: on the upstream's
/// origin, without credentials, and the `Authorization` value that goes with it. It holds no
/// origin: it is sent only by the `Upstream` that checked it. Its `Debug` shows neither the
/// path and query (a token) nor the credentials.
#[derive(Clone)]
pub(crate) struct Target {
    /// The path and query, as the request line carries them (the origin is the upstream's).
    uri: hyper::Uri,
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").finish_non_exhaustive()
    }
}

/// The path and query of `url` (on the upstream's origin) as the request line's `Uri`: the
/// URL's own serialization, so nothing is read differently.
fn uri_of(url: &url::Url) -> Result<hyper::Uri, UpstreamError> {
    hyper::Uri::try_from(&url[url::Position::BeforePath..url::Position::AfterQuery])
        .map_err(|_| UpstreamError::Unreachable("the webhook URL is not a valid URI".into()))
}

impl Upstream {
    /// Send one request to `url` and read its answer — at most `cap` bytes, or only the
    /// status and headers when `cap` is `None` — all within the upstream timeout. The answer
    /// is copied into one buffer that never grows past the cap, however it is chunked. Errors
    /// never carry the URL (it can hold a token).
    async fn send(
        &self,
        method: hyper::Method,
        uri: &hyper::Uri,
        authorization: Option<HeaderValue>,
        body: Bytes,
        cap: Option<usize>,
    ) -> Result<(u16, Vec<u8>), UpstreamError> {
        let post = method == hyper::Method::POST;
        let mut request = hyper::Request::builder().method(method).uri(uri.clone());
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
            let (response, mut conn) = self.request(request).await?;
            let status = response.status().as_u16();
            let Some(cap) = cap else {
                // The answer is not read: its connection is not reused (fine for a probe).
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
            loop {
                let frame = match driving(&mut conn.driver, &mut conn.ended, answer.frame()).await {
                    Some(Some(Ok(frame))) => frame,
                    Some(None) => break,
                    // A body error, or the connection ended under it.
                    _ => return Err(UpstreamError::Unreachable("the answer was cut off".into())),
                };
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > cap {
                        return Err(UpstreamError::TooLarge(cap));
                    }
                    bytes.extend_from_slice(&data);
                }
            }
            self.put_back(conn);
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Unreachable("timed out".into()))?
    }

    /// Send `request` on an idle connection, or a new one, and read the answer's head. A
    /// kept connection the upstream has closed meanwhile is dropped and the request goes on
    /// the next (it was never sent); an error on a new connection is the call's.
    async fn request(
        &self,
        mut request: hyper::Request<Full<Bytes>>,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Box<Conn>), UpstreamError> {
        request.headers_mut().insert(HOST, self.host.clone());
        loop {
            let (mut conn, kept) = match self.take_idle() {
                Some(conn) => (conn, true),
                // Boxed: opening a connection (TLS included) is the rare path.
                None => (Box::pin(self.connect()).await?, false),
            };
            let ready = driving(&mut conn.driver, &mut conn.ended, conn.sender.ready()).await;
            if !matches!(ready, Some(Ok(()))) {
                if kept {
                    continue;
                }
                return Err(UpstreamError::Unreachable(
                    "the connection closed before the request".into(),
                ));
            }
            let mut sent = std::pin::pin!(conn.sender.try_send_request(request));
            let error = match driving(&mut conn.driver, &mut conn.ended, sent.as_mut()).await {
                Some(Ok(response)) => return Ok((response, conn)),
                Some(Err(error)) => error,
                None => {
                    // The connection ended with the request still in it: dropping it gives
                    // the request back if it was never written.
                    drop(conn);
                    match sent.await {
                        Err(error) => error,
                        Ok(_) => {
                            return Err(UpstreamError::Unreachable(
                                "the connection closed before the answer".into(),
                            ))
                        }
                    }
                }
            };
            request = retry(error, kept)?;
        }
    }

    /// A new connection to the upstream's origin (TLS when it is `https`).
    async fn connect(&self) -> Result<Box<Conn>, UpstreamError> {
        let stream = self
            .connector
            .clone()
            .oneshot(self.origin.clone())
            .await
            .map_err(|_| UpstreamError::Unreachable("connection failed".into()))?;
        let (sender, driver) = http1::handshake(stream)
            .await
            .map_err(|_| UpstreamError::Unreachable("connection failed".into()))?;
        Ok(Box::new(Conn {
            sender,
            driver,
            ended: false,
            since: Instant::now(),
        }))
    }

    /// The most recently used idle connection younger than [`IDLE_FOR`].
    fn take_idle(&self) -> Option<Box<Conn>> {
        let stale = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let conn = idle.pop_back()?;
            if conn.since.elapsed() < self.idle_for {
                return Some(conn);
            }
            // Everything before it is older still; closed once the lock is released.
            (conn, std::mem::take(&mut *idle))
        };
        drop(stale);
        None
    }

    /// Keep `conn` for the next call if it is ready for one: not ended, and done with the
    /// last request (an upstream may answer before it has read the whole request, which
    /// hyper is then still writing); past [`MAX_IDLE`] the oldest goes.
    fn put_back(&self, mut conn: Box<Conn>) {
        if conn.ended || !conn.sender.is_ready() {
            return;
        }
        let dropped = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            // Under the lock, so the queue stays ordered by it (the sweep relies on that).
            conn.since = Instant::now();
            idle.push_back(conn);
            (idle.len() > MAX_IDLE).then(|| idle.pop_front())
        };
        drop(dropped);
        self.sweeping
            .call_once(|| sweep(Arc::downgrade(&self.idle), self.idle_for));
    }
}

/// The request back from a send that failed before writing it on a kept connection (the
/// upstream closed it while it was idle: the request goes on another); else the call's error.
fn retry(
    mut error: hyper::client::conn::TrySendError<hyper::Request<Full<Bytes>>>,
    kept: bool,
) -> Result<hyper::Request<Full<Bytes>>, UpstreamError> {
    match error.take_message() {
        Some(unsent) if kept => Ok(unsent),
        _ => Err(UpstreamError::Unreachable(describe(&error.into_error()))),
    }
}

/// Close the idle connections older than [`IDLE_FOR`] now and then, for as long as the pool
/// lives (a pool no call uses would otherwise hold them open).
fn sweep(idle: Weak<Mutex<VecDeque<Box<Conn>>>>, idle_for: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(idle_for / 3);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(idle) = idle.upgrade() else {
                return;
            };
            let stale: Vec<Box<Conn>> = {
                let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
                let fresh = idle
                    .iter()
                    .position(|conn| conn.since.elapsed() < idle_for)
                    .unwrap_or(idle.len());
                idle.drain(..fresh).collect()
            };
            drop(stale);
        }
    });
}

/// A client error, described without a URL (hyper's errors carry none; the cause chain is
/// kept for operators).
fn describe(error: &hyper::Error) -> String {
    use std::error::Error as _;
    match error.source() {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
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

    /// Requests `/hang` received (in any test: only one uses it).
    static HANGING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// What the test upstream answers on each path.
    fn app() -> Router {
        Router::new()
            .route(
                "/hang",
                post(|| async {
                    HANGING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    std::future::pending::<()>().await;
                }),
            )
            .route(
                "/echo-target",
                post(|uri: axum::http::Uri, headers: HeaderMap| async move {
                    let host = headers
                        .get("host")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    axum::Json(serde_json::json!({ "target": uri.to_string(), "host": host }))
                }),
            )
            .route(
                "/close",
                post(|| async { ([("connection", "close")], "{}") }),
            )
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

    /// How the test server ends its connections when told to ([`serve_counting`]).
    #[derive(Clone, Copy, PartialEq)]
    enum Close {
        /// Not told yet.
        No,
        /// Once the request in it (if any) is answered: an upstream dropping idle keep-alive
        /// connections.
        Graceful,
        /// At once, whatever it is doing: an upstream that dies mid-request.
        Abrupt,
    }

    /// A test upstream ([`serve_counting`]): where it listens, the connections it accepted
    /// and ended, and the channel that tells it to close them.
    struct TestServer {
        addr: SocketAddr,
        accepted: Arc<std::sync::atomic::AtomicUsize>,
        ended: Arc<std::sync::atomic::AtomicUsize>,
        close: tokio::sync::watch::Sender<Close>,
    }

    impl TestServer {
        fn accepted(&self) -> usize {
            self.accepted.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn ended(&self) -> usize {
            self.ended.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// [`app`] on port 0, counting the connections it accepts and ends; sending a [`Close`] on
    /// the channel ends every connection open at that moment that way.
    async fn serve_counting() -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let ended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ended_counter = ended.clone();
        let (close, told) = tokio::sync::watch::channel(Close::No);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let service = hyper_util::service::TowerToHyperService::new(app());
                let serving = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let mut told = told.clone();
                // Only what is sent from now on concerns this connection.
                told.mark_unchanged();
                let ended = ended_counter.clone();
                tokio::spawn(async move {
                    let mut serving = std::pin::pin!(serving);
                    tokio::select! {
                        _ = serving.as_mut() => {}
                        _ = told.changed() => {
                            if *told.borrow() == Close::Graceful {
                                serving.as_mut().graceful_shutdown();
                                let _ = serving.await;
                            }
                        }
                    }
                    ended.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        TestServer {
            addr,
            accepted,
            ended,
            close,
        }
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
    async fn calls_reuse_one_kept_connection_and_concurrent_calls_open_more() {
        let server = serve_counting().await;
        let addr = server.addr;
        let up = upstream(addr, Duration::from_secs(5));
        let url = format!("http://{addr}/echo-auth");
        for _ in 0..5 {
            let answer = up.empty_call(&url).await.unwrap();
            assert_eq!(
                answer["authorization"],
                basic("configured", "configured-secret")
            );
        }
        assert_eq!(server.accepted(), 1);
        // Eight at once: each needs a connection of its own, all are answered, and the
        // connections are kept (the next eight open none).
        for round in 0..2 {
            let calls = (0..8).map(|_| up.empty_call(&url));
            for outcome in futures_util::future::join_all(calls).await {
                assert!(outcome.is_ok(), "round {round}: {outcome:?}");
            }
        }
        let opened = server.accepted();
        assert!((2..=9).contains(&opened), "{opened} connections");
        let calls = (0..8).map(|_| up.empty_call(&url));
        futures_util::future::join_all(calls).await;
        assert_eq!(server.accepted(), opened);
    }

    #[tokio::test]
    async fn a_kept_connection_the_upstream_closed_is_replaced_without_failing_the_call() {
        let (server, up) = one_kept().await;
        let addr = server.addr;
        let url = format!("http://{addr}/echo-auth");
        // The upstream closes its idle connections, the kept one among them.
        server.close.send(Close::Graceful).unwrap();
        for _ in 0..1_000 {
            if server.ended() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(server.ended(), 1, "the upstream closed the kept connection");
        let answer = up.empty_call(&url).await.unwrap();
        assert_eq!(
            answer["authorization"],
            basic("configured", "configured-secret")
        );
        assert_eq!(server.accepted(), 2);
    }

    /// A counting server ([`serve_counting`]) and a client that has made one call and kept
    /// its connection.
    async fn one_kept() -> (TestServer, Upstream) {
        let server = serve_counting().await;
        let up = upstream(server.addr, Duration::from_secs(5));
        up.empty_call(&format!("http://{}/echo-auth", server.addr))
            .await
            .unwrap();
        assert_eq!(
            up.idle.lock().unwrap().len(),
            1,
            "kept after the first call"
        );
        (server, up)
    }

    #[tokio::test]
    async fn a_request_the_upstream_received_is_never_sent_again() {
        let (server, up) = one_kept().await;
        let addr = server.addr;
        // On the kept connection: the upstream takes the request, then dies before answering.
        let hang = format!("http://{addr}/hang");
        let call = up.empty_call(&hang);
        let die = async {
            while HANGING.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            server.close.send(Close::Abrupt).unwrap();
        };
        let (outcome, ()) = tokio::join!(call, die);
        assert!(
            matches!(outcome, Err(UpstreamError::Unreachable(_))),
            "{outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(HANGING.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(server.accepted(), 1);
    }

    #[tokio::test]
    async fn a_call_that_timed_out_leaves_no_connection_behind() {
        let (server, mut up) = one_kept().await;
        let addr = server.addr;
        up.timeout = Duration::from_millis(300);
        let outcome = up.empty_call(&format!("http://{addr}/slow")).await;
        assert!(
            matches!(&outcome, Err(UpstreamError::Unreachable(why)) if why == "timed out"),
            "{outcome:?}"
        );
        assert!(up.idle.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_request_line_and_host_are_the_origins() {
        let server = serve_counting().await;
        let addr = server.addr;
        let up = upstream(addr, Duration::from_secs(5));
        let answer = up
            .empty_call(&format!("http://{addr}/echo-target?token=t&b=2#fragment"))
            .await
            .unwrap();
        assert_eq!(answer["target"], "/echo-target?token=t&b=2");
        assert_eq!(answer["host"], addr.to_string());
        // An answer that closes its connection leaves none kept.
        let answer = up
            .empty_call(&format!("http://{addr}/close"))
            .await
            .unwrap();
        assert_eq!(answer, serde_json::json!({}));
        assert!(up.idle.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_their_time() {
        let server = serve_counting().await;
        let addr = server.addr;
        let mut up = upstream(addr, Duration::from_secs(5));
        up.idle_for = Duration::from_millis(300);
        let url = format!("http://{addr}/echo-auth");
        up.empty_call(&url).await.unwrap();
        assert_eq!(up.idle.lock().unwrap().len(), 1);
        // The sweep (every 100 ms here) closes it once it is 300 ms old, with no call.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert!(up.idle.lock().unwrap().is_empty(), "swept");
        up.empty_call(&url).await.unwrap();
        assert_eq!(server.accepted(), 2);
    }

    #[tokio::test]
    async fn a_connection_whose_answer_was_not_read_whole_is_not_kept() {
        let server = serve_counting().await;
        let addr = server.addr;
        let up = upstream(addr, Duration::from_secs(5));
        let outcome = up.empty_call(&format!("http://{addr}/big-streamed")).await;
        assert!(
            matches!(outcome, Err(UpstreamError::TooLarge(_))),
            "{outcome:?}"
        );
        assert!(up.idle.lock().unwrap().is_empty());
        up.empty_call(&format!("http://{addr}/echo-auth"))
            .await
            .unwrap();
        assert_eq!(server.accepted(), 2);
        assert_eq!(up.idle.lock().unwrap().len(), 1);
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
