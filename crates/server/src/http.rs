//! The HTTP surface: routes, Basic auth, body limits, timeouts, JSON errors and security
//! headers.
//!
//! Owns the mapping from HTTP to [`AgentService`] calls. Every request passes, outermost
//! first: response policy (security headers, `X-Request-Id`, JSON bodies for every error) →
//! request timeout → Basic auth (`require_basic_auth`; only `/health` and `/ready` are
//! exempt) → route. Bodies are read up to the configured limit, and their webhook signature
//! checked (with `SIGNALWIRE_SIGNING_KEY`: required on SWML, checked when present on SWAIG and
//! post-prompt), before any JSON is parsed.
//! It must not interpret SWAIG semantics — that is the agent's job.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{json, Value};
use voxguard_guard::redact::MAX_LOG_PATH;
use voxguard_guard::{BasicCredentials, Reason, Redactor, Refusal};

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::per_ip::BodyPending;
use crate::service::{
    is_console_path, is_records_path, malformed_json, new_request_id, AccessHooks, AccessRecord,
    AdminService, AgentRoutes, AgentService, ConsoleRequest, ConsoleService, OperatorRequest,
    RecordsService, Reply, RequestInfo, SecurityEvents, CONSOLE_BODY_LIMIT, CONSOLE_PREFIX,
    MAX_CONSOLE_FORM_PAIRS, MAX_OPERATOR_QUERY_PAIRS, RECORDS_PREFIX,
};

/// The security headers every response carries (also the ones hyper answers by itself, see
/// `raw_errors`).
pub(crate) const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// [`SECURITY_HEADERS`] as header names and values, parsed once (inserting by `&str` parses
/// the name again on every response).
static SECURITY_HEADER_PAIRS: std::sync::LazyLock<[(header::HeaderName, HeaderValue); 5]> =
    std::sync::LazyLock::new(|| {
        SECURITY_HEADERS.map(|(name, value)| {
            (
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
    });

/// The Content-Security-Policy of every console response (instead of the JSON one in
/// `SECURITY_HEADERS`): scripts, styles and images from the console itself only (one
/// embedded script, the live page's; never an inline script or style), connections (the live
/// page's event stream) only back to it, forms posting only back to it, never framed.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `Strict-Transport-Security`, sent on every response when TLS is on.
pub(crate) const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Paths that answer without credentials.
pub const PUBLIC_PATHS: [&str; 2] = ["/health", "/ready"];

/// The metrics path: it accepts only the metrics credentials.
pub const METRICS_PATH: &str = "/metrics";

/// Operator paths: they accept only the admin credentials, never the platform's.
pub const ADMIN_PATHS: [&str; 2] = ["/admin/emergency", "/ready/detail"];

/// The address a request came from, inserted by the listener: the connection's peer, or from
/// one of `VOXGUARD_TRUSTED_PROXIES` the address it forwarded
/// ([`client_addr`](crate::public_url::client_addr)).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Id of the current request, inserted by the response-policy layer.
#[derive(Debug, Clone)]
struct RequestId(String);

/// Shared state of the HTTP layer: one pointer, cloned into every layer of every request.
#[derive(Clone)]
pub(crate) struct Shared(Arc<SharedState>);

impl Shared {
    pub(crate) fn new(state: SharedState) -> Self {
        Self(Arc::new(state))
    }
}

impl std::ops::Deref for Shared {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// What [`Shared`] points to.
pub(crate) struct SharedState {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) credentials: Arc<BasicCredentials>,
    pub(crate) agents: Arc<Vec<Arc<dyn AgentService>>>,
    pub(crate) admin: Option<Arc<dyn AdminService>>,
    pub(crate) records: Option<Arc<dyn RecordsService>>,
    pub(crate) console: Option<Arc<dyn ConsoleService>>,
    pub(crate) events: Option<Arc<dyn SecurityEvents>>,
    pub(crate) access: Option<Arc<dyn AccessHooks>>,
    pub(crate) metrics: Metrics,
    /// Every path the router answers, for bounded metric labels.
    pub(crate) known_paths: Arc<std::collections::HashSet<String>>,
    /// Becomes `true` when shutdown starts (streamed answers end then).
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

/// Build the router serving `shared.agents`.
pub(crate) fn router(shared: Shared) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    if shared.config.metrics_credentials.is_some() {
        app = app.route(METRICS_PATH, get(metrics_endpoint));
    }
    if shared.admin.is_some() && shared.config.admin_credentials.is_some() {
        app = app
            .route("/admin/emergency", post(admin_emergency))
            .route("/ready/detail", get(ready_detail));
    }
    let role = shared.config.role;
    if shared.records.is_some() && role.serves_agent() {
        app = app
            .route(RECORDS_PREFIX, any(records_route))
            .route(&format!("{RECORDS_PREFIX}/{{*rest}}"), any(records_route));
    }
    if shared.console.is_some() && role.serves_agent() {
        app = app
            .route(CONSOLE_PREFIX, any(console_route))
            .route(&format!("{CONSOLE_PREFIX}/{{*rest}}"), any(console_route));
    }
    for agent in shared.agents.iter() {
        let [swml, swaig, swaig_slash, post_prompt, pay, pay_status] =
            AgentRoutes::new(agent.route()).all();
        if role.serves_agent() {
            app = app
                .route(&swml, swml_route(agent.clone()))
                .route(&swaig, swaig_route(agent.clone(), Endpoint::Swaig))
                .route(&swaig_slash, swaig_route(agent.clone(), Endpoint::Swaig))
                .route(
                    &post_prompt,
                    swaig_route(agent.clone(), Endpoint::PostPrompt),
                );
        }
        if role.serves_connector() {
            app = app
                .route(&pay, pay_route(agent.clone()))
                .route(&pay_status, swaig_route(agent.clone(), Endpoint::PayStatus));
        }
    }
    // One layer, not three: each `from_fn` layer clones and boxes the rest of the stack for
    // every request. Inside it the order is response policy → timeout → Basic auth → route.
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            response_policy,
        ))
        .with_state(shared)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Swaig,
    PostPrompt,
    PayStatus,
}

/// The payment connector: the body goes to the agent unparsed (card details are parsed
/// straight into zeroizing types there), after the size limit and, when present, the webhook
/// signature.
fn pay_route(agent: Arc<dyn AgentService>) -> MethodRouter<Shared> {
    post(move |State(shared): State<Shared>, req: Request| {
        let agent = agent.clone();
        async move {
            let info = request_info(&shared, &req);
            match read_signed(&shared, req, Signature::IfPresent).await {
                Ok(bytes) => reply(agent.pay(&info, bytes).await),
                Err(refusal) => refusal,
            }
        }
    })
}

fn swml_route(agent: Arc<dyn AgentService>) -> MethodRouter<Shared> {
    let on_get = agent.clone();
    get(move |State(shared): State<Shared>, req: Request| {
        let agent = on_get.clone();
        async move {
            let info = request_info(&shared, &req);
            // A GET carries no body, but it is signed all the same (URL + empty body).
            if let Err(refusal) = read_signed(&shared, req, Signature::Required).await {
                return refusal;
            }
            reply(agent.swml(&info, None).await)
        }
    })
    .post(move |State(shared): State<Shared>, req: Request| {
        let agent = agent.clone();
        async move {
            let info = request_info(&shared, &req);
            match read_json(&shared, req, Signature::Required).await {
                Ok(body) => reply(agent.swml(&info, body).await),
                Err(refusal) => refusal,
            }
        }
    })
}

fn swaig_route(agent: Arc<dyn AgentService>, endpoint: Endpoint) -> MethodRouter<Shared> {
    post(move |State(shared): State<Shared>, req: Request| {
        let agent = agent.clone();
        async move {
            let info = request_info(&shared, &req);
            let bytes = match read_signed(&shared, req, Signature::IfPresent).await {
                Ok(bytes) => bytes,
                Err(refusal) => return refusal,
            };
            let empty = || {
                refuse(Refusal::new(
                    Reason::EmptyBody,
                    "The request body is empty; a JSON object is required.",
                ))
            };
            if endpoint == Endpoint::Swaig {
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return empty();
                }
                // Parsed once, by the agent, straight into its request type.
                return reply(agent.swaig(&info, bytes).await);
            }
            let body = match parse_json(&bytes) {
                Ok(Some(body)) => body,
                Ok(None) => return empty(),
                Err(refusal) => return refuse(refusal),
            };
            if endpoint == Endpoint::PostPrompt {
                reply(agent.post_prompt(&info, body).await)
            } else {
                reply(agent.pay_status(&info, body).await)
            }
        }
    })
}

fn request_info(shared: &Shared, req: &Request) -> RequestInfo {
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(new_request_id);
    RequestInfo {
        request_id,
        client,
        token: query_token(req.uri()),
        public_base: crate::public_url::public_base(&shared.config, req.headers()),
        credentials: shared.credentials.clone(),
    }
}

/// The function token from `__token` (preferred) or `token` in the query string, read as
/// `application/x-www-form-urlencoded` (so `%5F%5Ftoken` names `__token` too). Pairs without
/// `%` or `+` are taken as they are; only the others go through the form decoder.
fn query_token(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    let mut fallback = None;
    for pair in query.split('&') {
        let decoded;
        let (key, value): (&str, &str) = if pair.contains(['%', '+']) {
            let Some((key, value)) = url::form_urlencoded::parse(pair.as_bytes()).next() else {
                continue;
            };
            decoded = (key, value);
            (decoded.0.as_ref(), decoded.1.as_ref())
        } else if pair.is_empty() {
            continue;
        } else {
            pair.split_once('=').unwrap_or((pair, ""))
        };
        match key {
            "__token" => return Some(value.to_string()),
            "token" if fallback.is_none() => fallback = Some(value.to_string()),
            _ => {}
        }
    }
    fallback
}

/// When a route checks `X-SignalWire-Signature` (only ever with a signing key configured).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signature {
    /// Always: a request without the header is refused (the SWML route).
    Required,
    /// When the header is present (SWAIG, post-prompt): the platform's documentation says
    /// every webhook is signed, the official Python SDK checks only some routes, so an
    /// unsigned call still passes on Basic auth and function tokens alone.
    IfPresent,
    /// Never (operator endpoints: not called by the platform).
    Never,
}

/// Read the body up to the limit, check the webhook signature over it (before anything parses
/// it), and parse it as JSON. `Ok(None)` for an empty body.
async fn read_json(
    shared: &Shared,
    req: Request,
    signature: Signature,
) -> Result<Option<Value>, Response> {
    let bytes = read_signed(shared, req, signature).await?;
    parse_json(&bytes).map_err(refuse)
}

/// A body as JSON: `Ok(None)` when it is empty (or only whitespace).
fn parse_json(bytes: &[u8]) -> Result<Option<Value>, Refusal> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|_| malformed_json())
}

/// Read the body under the size limit, then check its signature as `policy` says.
async fn read_signed(shared: &Shared, req: Request, policy: Signature) -> Result<Bytes, Response> {
    let check = match (&shared.config.signing_key, policy) {
        (None, _) | (_, Signature::Never) => None,
        (Some(_), _) => {
            let header = req
                .headers()
                .get(voxguard_guard::SIGNATURE_HEADER)
                .map(|v| v.to_str().unwrap_or_default().to_string());
            if header.is_none() && policy == Signature::IfPresent {
                None
            } else {
                Some((
                    header.unwrap_or_default(),
                    crate::public_url::request_url(&shared.config, req.headers(), req.uri()),
                    req.method().clone(),
                    req.uri().path().chars().take(128).collect::<String>(),
                    req.extensions().get::<ClientAddr>().map(|c| c.0),
                    req.extensions()
                        .get::<RequestId>()
                        .map(|r| r.0.clone())
                        .unwrap_or_default(),
                ))
            }
        }
    };
    let bytes = read_body(shared, req).await?;
    let (Some(key), Some((signature, url, method, path, client, request_id))) =
        (&shared.config.signing_key, check)
    else {
        return Ok(bytes);
    };
    if key.verify(&signature, &url, &bytes).is_ok() {
        return Ok(bytes);
    }
    let client = client.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    if let Some(events) = &shared.events {
        events
            .signature_failed(client, method.as_str(), &path, &request_id)
            .await;
    }
    tracing::warn!(
        target: "voxguard::security",
        event = "signature_failed",
        reason = Reason::SignatureInvalid.as_str(),
        client = %client,
        method = %method,
        path = ?path,
        "request refused: missing or invalid webhook signature"
    );
    Err(refuse(Refusal::new(
        Reason::SignatureInvalid,
        "The request signature is not valid.",
    )))
}

/// Read the body up to the configured limit.
async fn read_body(shared: &Shared, req: Request) -> Result<Bytes, Response> {
    read_body_up_to(req, shared.config.body_limit).await
}

/// The largest body the records API reads (operator requests carry a name and a role at
/// most): an unauthenticated client cannot make the server buffer a full webhook body.
pub const RECORDS_BODY_LIMIT: usize = 16 * 1024;

/// Read the body up to `limit` bytes.
async fn read_body_up_to(req: Request, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        refuse(Refusal::new(
            Reason::BodyTooLarge,
            "The request body is larger than this server accepts.",
        ))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(refuse(Refusal::new(
            Reason::BodyUnreadable,
            "The request body could not be read.",
        ))),
    }
}

/// [`read_body_up_to`] for a route that authenticates after the body (the records API, the
/// console): the body must arrive within the header-read timeout, as a request head must, and
/// until it has, the connection counts against its address's cap (`BodyPending`). Without
/// this, anyone could hold connection slots for the whole request timeout by dripping a body
/// to `/records` without credentials.
async fn read_unauthenticated_body(
    shared: &Shared,
    mut req: Request,
    limit: usize,
) -> Result<Bytes, Response> {
    let pending = req.extensions_mut().remove::<BodyPending>();
    let read = tokio::time::timeout(
        shared.config.header_read_timeout,
        read_body_up_to(req, limit),
    )
    .await;
    if let Some(pending) = pending {
        pending.body_read();
    }
    match read {
        Ok(read) => read,
        Err(_) => Err(refuse(Refusal::new(
            Reason::RequestTimeout,
            "The request body did not arrive in time.",
        ))),
    }
}

/// The call id a reply belonged to, carried to the access log in the response extensions.
#[derive(Debug, Clone)]
struct CallId(String);

fn reply(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match reply.serialized {
        Some(json) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            json,
        )
            .into_response(),
        None => (status, axum::Json(reply.body)).into_response(),
    };
    if let Some(call_id) = reply.call_id {
        response.extensions_mut().insert(CallId(call_id));
    }
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// A JSON refusal: the reason's status with `{"error": reason, "response": sentence}`.
pub(crate) fn refuse(refusal: Refusal) -> Response {
    reply(Reply::from(refusal))
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn ready(State(shared): State<Shared>) -> Response {
    for agent in shared.agents.iter() {
        if let Err(reason) = agent.ready().await {
            tracing::warn!(agent = agent.name(), %reason, "not ready");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "not_ready" })),
            )
                .into_response();
        }
    }
    axum::Json(json!({ "status": "ready" })).into_response()
}

async fn admin_emergency(State(shared): State<Shared>, req: Request) -> Response {
    let Some(admin) = shared.admin.clone() else {
        return not_found().await;
    };
    let info = request_info(&shared, &req);
    match read_json(&shared, req, Signature::Never).await {
        Ok(Some(body)) => reply(admin.emergency(&info, body).await),
        Ok(None) => refuse(Refusal::new(
            Reason::EmptyBody,
            "The request body is empty; a JSON object is required.",
        )),
        Err(refusal) => refusal,
    }
}

/// `path` as logs, hooks and metrics see it: a data subject's id in a records API path
/// (`/records/subjects/{subject}`) is personal data, so it is replaced by `[subject]`. The
/// records API percent-decodes segments and skips empty ones, so a records path spelled any
/// other way (`%73ubjects`, `subjects%2F…`, `//`) could name a subject too: it is replaced
/// whole by `/records/[masked]`.
pub(crate) fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const SUBJECTS: &str = "/records/subjects/";
    if !is_records_path(path) {
        return std::borrow::Cow::Borrowed(path);
    }
    let rest = path.get(RECORDS_PREFIX.len()..).unwrap_or_default();
    if rest.contains('%') || rest.contains("//") {
        return std::borrow::Cow::Owned(format!("{RECORDS_PREFIX}/[masked]"));
    }
    match path.strip_prefix(SUBJECTS) {
        Some(rest) if !rest.is_empty() => std::borrow::Cow::Owned(format!("{SUBJECTS}[subject]")),
        _ => std::borrow::Cow::Borrowed(path),
    }
}

/// Hand a request under `/records` to the records service, unauthenticated (the service
/// authenticates operators) but size-checked and parsed.
async fn records_route(State(shared): State<Shared>, req: Request) -> Response {
    let Some(records) = shared.records.clone() else {
        return not_found().await;
    };
    let info = request_info(&shared, &req);
    let path = req
        .uri()
        .path()
        .strip_prefix(RECORDS_PREFIX)
        .unwrap_or_default()
        .to_string();
    let mut query = Vec::new();
    for pair in url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        if query.len() == MAX_OPERATOR_QUERY_PAIRS {
            return refuse(Refusal::new(
                Reason::InvalidRequest,
                "The query string has too many parameters.",
            ));
        }
        query.push((pair.0.into_owned(), pair.1.into_owned()));
    }
    let header = req.headers().get(header::AUTHORIZATION);
    let platform_credentials =
        header.is_some_and(|value| shared.credentials.verify_header(value.as_bytes()).is_ok());
    let authorization = header.and_then(|value| value.to_str().ok().map(str::to_string));
    let method = req.method().as_str().to_string();
    let limit = shared.config.body_limit.min(RECORDS_BODY_LIMIT);
    let bytes = match read_unauthenticated_body(&shared, req, limit).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal,
    };
    let body = match parse_json(&bytes) {
        Ok(body) => body,
        Err(refusal) => return refuse(refusal),
    };
    reply(
        records
            .handle(OperatorRequest {
                request_id: info.request_id,
                client: info.client,
                method,
                path,
                query,
                authorization,
                platform_credentials,
                body,
            })
            .await,
    )
}

/// Hand a request under `/console` to the console, unauthenticated (the console signs
/// operators in itself) but size-checked, its query and form split into pairs.
async fn console_route(State(shared): State<Shared>, req: Request) -> Response {
    let Some(console) = shared.console.clone() else {
        return not_found().await;
    };
    let info = request_info(&shared, &req);
    let path = req
        .uri()
        .path()
        .strip_prefix(CONSOLE_PREFIX)
        .unwrap_or_default()
        .to_string();
    let too_many = || {
        refuse(Refusal::new(
            Reason::InvalidRequest,
            "The request has too many parameters.",
        ))
    };
    let pairs = |bytes: &[u8]| -> Option<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        for (key, value) in url::form_urlencoded::parse(bytes) {
            if pairs.len() == MAX_CONSOLE_FORM_PAIRS {
                return None;
            }
            pairs.push((key.into_owned(), value.into_owned()));
        }
        Some(pairs)
    };
    let Some(query) = pairs(req.uri().query().unwrap_or_default().as_bytes()) else {
        return too_many();
    };
    let cookie = req
        .headers()
        .get(header::COOKIE)
        .and_then(|value| value.to_str().ok().map(str::to_string));
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.len() <= 64)
        .map(str::to_string);
    let method = req.method().as_str().to_string();
    let limit = shared.config.body_limit.min(CONSOLE_BODY_LIMIT);
    let bytes = match read_unauthenticated_body(&shared, req, limit).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal,
    };
    let Some(form) = pairs(&bytes) else {
        return too_many();
    };
    // Secure cookies whenever the browser reaches us over https: our own TLS, or the public
    // URL (SWML_PROXY_URL_BASE, or a trusted proxy's X-Forwarded-Proto) says https.
    let tls = shared.config.tls.is_some() || info.public_base.scheme() == "https";
    let answer = console
        .handle(ConsoleRequest {
            request_id: info.request_id,
            client: info.client,
            method,
            path,
            query,
            form,
            cookie,
            tls,
            last_event_id,
        })
        .await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match answer.stream {
        None => (status, answer.body).into_response(),
        Some(stream) => {
            use futures_util::StreamExt;
            // The first bytes, then each chunk as it comes; the headers below (and the
            // security headers of `response_policy`) are sent before any of it.
            let first =
                futures_util::stream::iter((!answer.body.is_empty()).then_some(answer.body));
            // A stream ends at shutdown, so that it does not hold the graceful shutdown open.
            let mut stopping = shared.stopping.clone();
            let stopped = async move {
                let _ = stopping.wait_for(|stopping| *stopping).await;
            };
            let chunks = first
                .chain(stream.0)
                .take_until(stopped)
                .map(Ok::<_, std::convert::Infallible>);
            (status, Body::from_stream(chunks)).into_response()
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(answer.content_type),
    );
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

async fn ready_detail(State(shared): State<Shared>) -> Response {
    let mut agents = Vec::new();
    let mut ready = true;
    for agent in shared.agents.iter() {
        let state = match agent.ready().await {
            Ok(()) => json!({ "name": agent.name(), "route": agent.route(), "ready": true }),
            Err(reason) => {
                ready = false;
                json!({ "name": agent.name(), "route": agent.route(), "ready": false, "reason": reason })
            }
        };
        agents.push(state);
    }
    let detail = match &shared.admin {
        Some(admin) => admin.detail().await,
        None => Value::Null,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "agents": agents,
            "runtime": detail,
        })),
    )
        .into_response()
}

async fn metrics_endpoint(State(shared): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    refuse(Refusal::new(
        Reason::NotFound,
        "There is nothing at this address.",
    ))
}

async fn method_not_allowed() -> Response {
    refuse(Refusal::new(
        Reason::MethodNotAllowed,
        "This address does not accept that HTTP method.",
    ))
}

/// Basic auth for everything but [`PUBLIC_PATHS`]. Constant-time comparison lives in
/// [`BasicCredentials::verify_header`].
pub(crate) async fn require_basic_auth(shared: &Shared, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if PUBLIC_PATHS.contains(&path) {
        return next.run(req).await;
    }
    // The records API authenticates operators itself, with their own credentials.
    if shared.records.is_some() && is_records_path(path) {
        return next.run(req).await;
    }
    // So does the console, with its sign-in page and session cookie.
    if shared.console.is_some() && is_console_path(path) {
        return next.run(req).await;
    }
    // Operator paths take only the admin credentials (when configured); the platform's
    // credentials — embedded in every webhook URL — must never switch tools off.
    let expected = match (
        &shared.config.admin_credentials,
        ADMIN_PATHS.contains(&path),
    ) {
        (Some(admin), true) => admin,
        _ => match (&shared.config.metrics_credentials, path == METRICS_PATH) {
            (Some(metrics), true) => metrics,
            _ => shared.credentials.as_ref(),
        },
    };
    let outcome = match req.headers().get(header::AUTHORIZATION) {
        None => Err(Reason::AuthRequired),
        Some(value) => expected
            .verify_header(value.as_bytes())
            .map_err(Reason::from),
    };
    match outcome {
        Ok(()) => next.run(req).await,
        Err(reason) => {
            let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
            // Capped before redaction: an unauthenticated path costs O(cap) to log.
            let path = log_path(req.uri().path());
            if let Some(events) = &shared.events {
                let request_id = req
                    .extensions()
                    .get::<RequestId>()
                    .map(|r| r.0.clone())
                    .unwrap_or_default();
                events
                    .auth_failed(
                        client.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
                        req.method().as_str(),
                        &path,
                        reason,
                        &request_id,
                    )
                    .await;
            }
            tracing::warn!(
                target: "voxguard::security",
                event = "auth_failed",
                reason = reason.as_str(),
                client = ?client,
                method = %req.method(),
                path = ?path,
                "request refused: missing or invalid credentials"
            );
            let mut response = refuse(Refusal::new(
                reason,
                "Authentication is required to use this service.",
            ));
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"voxguard\", charset=\"UTF-8\""),
            );
            response
        }
    }
}

/// The request timeout around Basic auth and the route.
async fn request_timeout(shared: &Shared, req: Request, next: Next) -> Response {
    match tokio::time::timeout(
        shared.config.request_timeout,
        require_basic_auth(shared, req, next),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?shared.config.request_timeout, "request timed out");
            refuse(Refusal::new(
                Reason::RequestTimeout,
                "Sorry, that took too long. Please try again.",
            ))
        }
    }
}

/// A request path as every log line and audit event shows it: cut at [`MAX_LOG_PATH`] bytes
/// before redaction (with a marker; a secret the cut goes through is cut whole), redacted, and,
/// when it holds `%`, decoded and redacted again — taken only when that masks something (so a
/// secret written percent-encoded, `/%34111…`, is masked and nothing masked before comes back),
/// characters a log viewer would take as a line break or as bidi steering (control characters,
/// U+2028/U+2029, bidi overrides, zero-width characters) replaced with U+FFFD.
fn log_path(path: &str) -> String {
    let redactor = Redactor::new();
    let mut logged = redactor.redact_bounded(path, MAX_LOG_PATH).into_owned();
    if logged.contains('%') {
        let decoded = percent_encoding::percent_decode_str(&logged).decode_utf8_lossy();
        if let std::borrow::Cow::Owned(masked) = redactor.redact_text(&decoded) {
            logged = masked;
        }
    }
    // Decoded, or sent raw (a request target may carry bytes over 0x7F as they are).
    if logged.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        logged = logged
            .chars()
            .map(|c| {
                if voxguard_guard::sanitize::is_unsafe_in_line(c) {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect();
    }
    logged
}

/// Security headers and a request id on every response; any error response that is not
/// already JSON (e.g. a rejection produced inside axum) gets a JSON body.
async fn response_policy(State(shared): State<Shared>, mut req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let request_id = new_request_id();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    // The URI shares its bytes (a clone counts references), so the path outlives the request.
    let uri = req.uri().clone();
    let loggable = loggable_path(uri.path());
    // The first 256 characters, to tell routes apart (a slice, not a copy).
    let path = &loggable[..loggable
        .char_indices()
        .nth(256)
        .map_or(loggable.len(), |(at, _)| at)];
    let log_path = log_path(&loggable);
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    // The hooks are user code that may log what they get: the redacted path, as the log's.
    if let Some(hooks) = &shared.access {
        hooks.on_request(method.as_str(), &log_path, client, &request_id);
    }
    let mut response = request_timeout(&shared, req, next).await;
    let record = AccessRecord {
        method: method.to_string(),
        path: log_path,
        status: response.status().as_u16(),
        duration: started.elapsed(),
        client,
        request_id: request_id.clone(),
        call_id: response.extensions().get::<CallId>().map(|c| c.0.clone()),
    };
    let micros = (record.duration.as_nanos() + 500) / 1000;
    // The default access log: one structured line per request (JSON with
    // VOXGUARD_LOG_FORMAT=json), through the redacting log writer like every line. Its field
    // names are `voxguard::logging::ACCESS_FIELDS` (the text format's short
    // path takes only that set): change both together.
    tracing::info!(
        target: "voxguard::access",
        method = %record.method,
        path = ?record.path,
        status = record.status,
        // Milliseconds with three decimals, rounded to the microsecond (integer formatting).
        duration_ms = %format_args!("{}.{:03}", micros / 1000, micros % 1000),
        client = %record.client,
        request_id = %record.request_id,
        call_id = ?record.call_id,
        "request"
    );
    // Routes are told apart by the path as it came (cut, the records API's masked).
    let console = shared.console.is_some() && is_console_path(path);
    let route = if shared.known_paths.contains(path) {
        path
    } else if shared.records.is_some() && is_records_path(path) {
        RECORDS_PREFIX
    } else if console {
        CONSOLE_PREFIX
    } else {
        "other"
    };
    shared
        .metrics
        .request(route, record.status, record.duration);
    if let Some(hooks) = &shared.access {
        hooks.on_response(&record);
    }
    // The console answers its errors with HTML pages of its own; everything else gets JSON.
    let console_page = console
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/"));
    if (response.status().is_client_error() || response.status().is_server_error()) && !console_page
    {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if !is_json {
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            response = generic_error(status);
            merge_missing(response.headers_mut(), headers);
        }
    }
    if method == Method::HEAD {
        *response.body_mut() = Body::empty();
    }
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADER_PAIRS.iter() {
        headers.insert(name.clone(), value.clone());
    }
    if console {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        );
    }
    if shared.config.tls.is_some() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    response
}

/// The JSON body for an error response produced without one (e.g. inside axum), keeping its
/// status.
fn generic_error(status: StatusCode) -> Response {
    let (reason, sentence) = match status {
        StatusCode::BAD_REQUEST => (Reason::BadRequest, "The request could not be understood."),
        StatusCode::NOT_FOUND => (Reason::NotFound, "There is nothing at this address."),
        StatusCode::METHOD_NOT_ALLOWED => (
            Reason::MethodNotAllowed,
            "This address does not accept that HTTP method.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            Reason::BodyTooLarge,
            "The request body is larger than this server accepts.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (Reason::UnsupportedMediaType, "Send a JSON body."),
        s if s.is_server_error() => (Reason::InternalError, "Something went wrong on our side."),
        _ => (Reason::RequestRefused, "The request was refused."),
    };
    let mut response = refuse(Refusal::new(reason, sentence));
    *response.status_mut() = status;
    response
}

fn merge_missing(target: &mut HeaderMap, source: HeaderMap) {
    let mut last = None;
    for (name, value) in source {
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            if name != header::CONTENT_TYPE
                && name != header::CONTENT_LENGTH
                && !target.contains_key(name)
            {
                target.append(name.clone(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{log_path, loggable_path, query_token};

    #[test]
    fn the_query_token_is_read_as_the_form_decoder_reads_it() {
        // Every query is read the same as `url::form_urlencoded` reads it, whatever the path
        // taken (raw pairs, or the decoder for pairs with `%` or `+`).
        let reference = |query: &str| {
            let mut fallback = None;
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                match key.as_ref() {
                    "__token" => return Some(value.into_owned()),
                    "token" if fallback.is_none() => fallback = Some(value.into_owned()),
                    _ => {}
                }
            }
            fallback
        };
        for query in [
            "__token=abc.def-_",
            "token=t1&__token=t2",
            "__token=t2&token=t1",
            "token=a&token=b",
            "token",
            "__token=",
            "&&__token=x&",
            "=x&token=y",
            "%5F%5Ftoken=enc",
            "__token=a%2Bb+c",
            "tok%65n=e&x=1",
            "__token=%ZZ",
            "__token=a=b",
            "__token+=x&token=y",
            "a=1&b=2",
            "",
        ] {
            let uri: axum::http::Uri = format!("/swaig?{query}").parse().unwrap();
            assert_eq!(query_token(&uri), reference(query), "{query}");
        }
        let uri: axum::http::Uri = "/swaig".parse().unwrap();
        assert_eq!(query_token(&uri), None);
        // And on many queries made of the pieces that matter (seeded: the same every run).
        use rand::{Rng, SeedableRng};
        const PIECES: &[&str] = &[
            "__token",
            "token",
            "tok",
            "%5F%5Ftoken",
            "%74oken",
            "=",
            "=",
            "&",
            "&",
            "+",
            "%2B",
            "%",
            "%Z",
            "a",
            "_",
            "%5F",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let mut found = 0;
        for _ in 0..20_000 {
            let query: String = (0..rng.gen_range(0..10))
                .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
                .collect();
            let Ok(uri) = format!("/swaig?{query}").parse::<axum::http::Uri>() else {
                continue;
            };
            let token = query_token(&uri);
            found += usize::from(token.is_some());
            assert_eq!(token, reference(&query), "{query}");
        }
        // The pieces make a token often enough for the comparison to mean something.
        assert!(found > 2_000, "{found}");
    }
    use crate::service::is_records_path;

    #[test]
    fn records_paths_are_the_prefix_and_below_only() {
        for yes in ["/records", "/records/", "/records/rec_a/export"] {
            assert!(is_records_path(yes), "{yes}");
        }
        for no in ["/recordsx", "/record", "/", "/bank/records"] {
            assert!(!is_records_path(no), "{no}");
        }
    }

    #[test]
    fn a_subject_id_never_reaches_the_log_whatever_the_spelling_of_its_path() {
        // Every one of these reaches `GET|DELETE /records/subjects/{subject}` (the records API
        // percent-decodes segments and skips empty ones), so none may log the subject.
        for path in [
            "/records/subjects/pat_001",
            "/records/subjects/pat_001/",
            "/records//subjects/pat_001",
            "/records/subjects//pat_001",
            "/records/%73ubjects/pat_001",
            "/records/subjects/%70at_001",
            "/records/subjects%2Fpat_001",
        ] {
            let logged = loggable_path(path);
            assert!(!logged.contains("pat_001"), "{path} logged as {logged}");
            assert!(!logged.contains("at_001"), "{path} logged as {logged}");
        }
        // Canonical paths without a subject are logged as they are.
        for path in [
            "/records",
            "/records/audit",
            "/records/rec_abcdefghijklmnopqrstuvwxyz/export",
            "/records/operators/ana@example.org",
            "/swaig",
        ] {
            assert_eq!(loggable_path(path), path);
        }
    }

    #[test]
    fn a_decoded_log_path_holds_no_line_break_or_bidi_steering() {
        // A card number written percent-encoded makes the path be logged decoded (masked);
        // what else was encoded beside it must not break or reorder the line it lands in.
        for (encoded, unsafe_char) in [
            ("%0A", '\n'),
            ("%C2%85", '\u{85}'),
            ("%E2%80%A8", '\u{2028}'),
            ("%E2%80%A9", '\u{2029}'),
            ("%E2%80%AE", '\u{202E}'),
            ("%E2%81%A6", '\u{2066}'),
            ("%E2%80%8B", '\u{200B}'),
        ] {
            let path = format!("/swaig/%34111111111111111{encoded}admin");
            let logged = log_path(&path);
            assert!(!logged.contains("4111111111111111"), "{path} → {logged}");
            assert!(!logged.contains(unsafe_char), "{path} → {logged:?}");
            assert!(logged.contains("\u{FFFD}admin"), "{path} → {logged:?}");
        }
        // Ordinary text beside it stays as it was.
        let logged = log_path("/swaig/%34111111111111111/caf%C3%A9");
        assert!(logged.ends_with("/café"), "{logged}");
        // The same characters sent raw, not percent-encoded (nothing to mask, no `%`).
        for raw in ["/x\u{202E}txt.exe", "/x\u{2028}forged", "/x\u{85}y"] {
            let logged = log_path(raw);
            assert_eq!(
                logged,
                "/x\u{FFFD}".to_string() + &raw[raw.char_indices().nth(3).unwrap().0..],
                "{raw:?}"
            );
        }
        assert_eq!(log_path("/café"), "/café");
    }
}
