//! The contract between the HTTP runtime and an agent.
//!
//! The server owns transport concerns — TLS, authentication, limits, timeouts, JSON syntax —
//! and hands each agent an already-authenticated, size-checked, syntactically valid request
//! through [`AgentService`]. What a request *means* (SWML rendering, token checks, argument
//! validation, running a tool) belongs to the agent (`voxguard`). A [`Reply`] is a status and a
//! JSON body; the server adds headers and never inspects it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use serde_json::Value;
use voxguard_guard::BasicCredentials;
use voxguard_guard::{Reason, Refusal};

/// An agent served on its own route.
#[async_trait::async_trait]
pub trait AgentService: Send + Sync + 'static {
    /// The agent's name (for logs).
    fn name(&self) -> &str;
    /// The agent's route: starts with `/`, no trailing slash except the root `/`.
    fn route(&self) -> &str;
    /// Render SWML. `body` is the parsed POST body (`None` for GET or an empty body).
    async fn swml(&self, request: &RequestInfo, body: Option<Value>) -> Reply;
    /// Handle a SWAIG function call (`POST {route}/swaig`): the raw body (size-checked,
    /// signature-checked, not empty), so that the agent parses it once, straight into its
    /// request type, and answers `malformed_json` itself when it is not JSON.
    async fn swaig(&self, request: &RequestInfo, body: Bytes) -> Reply;
    /// Handle the end-of-call summary (`POST {route}/post_prompt`).
    async fn post_prompt(&self, request: &RequestInfo, body: Value) -> Reply;
    /// Handle the payment connector (`POST {route}/pay`): the platform's card details, as the
    /// raw body, so that the agent can parse them straight into zeroizing types. Agents
    /// without payments answer 404.
    async fn pay(&self, _request: &RequestInfo, _body: Bytes) -> Reply {
        Reply::from(Refusal::new(
            Reason::NotFound,
            "This agent does not take payments.",
        ))
    }
    /// Handle the platform's payment status events (`POST {route}/pay/status`).
    async fn pay_status(&self, _request: &RequestInfo, _body: Value) -> Reply {
        Reply::from(Refusal::new(
            Reason::NotFound,
            "This agent does not take payments.",
        ))
    }
    /// Readiness: `Err` with an operator-facing reason when a dependency is down.
    async fn ready(&self) -> Result<(), String>;
}

/// What the agent may know about the HTTP request.
#[derive(Clone)]
pub struct RequestInfo {
    /// Unique id of this request (also sent back as `X-Request-Id`).
    pub request_id: String,
    /// Peer address of the connection.
    pub client: SocketAddr,
    /// Function token from the query string (`__token`, or `token`).
    pub token: Option<String>,
    /// Public base URL the platform reaches this server at (no credentials).
    pub public_base: url::Url,
    pub(crate) credentials: Arc<BasicCredentials>,
}

impl std::fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestInfo")
            .field("request_id", &self.request_id)
            .field("client", &self.client)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("public_base", &self.public_base.as_str())
            .finish()
    }
}

impl RequestInfo {
    /// A request description for calling an agent outside HTTP (tests, CLI simulation).
    pub fn new(
        client: SocketAddr,
        public_base: url::Url,
        credentials: Arc<BasicCredentials>,
        token: Option<String>,
    ) -> Self {
        Self {
            request_id: new_request_id(),
            client,
            token,
            public_base,
            credentials,
        }
    }

    /// The absolute URL of `path` (relative to the public base, e.g. `/bank/swaig`) with the
    /// Basic credentials embedded and `query` appended — the form the platform calls back.
    pub fn webhook_url(&self, path: &str, query: &[(&str, &str)]) -> String {
        self.webhook_url_at(&self.public_base, path, query)
    }

    /// As [`webhook_url`](Self::webhook_url), on another public `base` (the payment
    /// connector's host when it runs apart from the agent).
    pub fn webhook_url_at(&self, base: &url::Url, path: &str, query: &[(&str, &str)]) -> String {
        with_query(self.webhook_base_at(base, path), query)
    }

    /// [`webhook_url`](Self::webhook_url) without its query, for many URLs that differ only
    /// there (a render's tools, one token each): give each a clone to [`with_query`]. Joining
    /// the path and embedding the credentials re-serializes the URL each time; this does it
    /// once.
    pub fn webhook_base(&self, path: &str) -> url::Url {
        self.webhook_base_at(&self.public_base, path)
    }

    fn webhook_base_at(&self, base: &url::Url, path: &str) -> url::Url {
        let mut url = base.clone();
        let joined = format!(
            "{}/{}",
            url.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
        // Both setters only fail for URLs that cannot carry credentials (no host), which
        // `public_base` always has.
        let _ = url.set_username(self.credentials.user());
        let _ = url.set_password(Some(self.credentials.expose_password()));
        url
    }
}

/// The refusal of a request body that is not JSON (`malformed_json`): one sentence, whichever
/// layer parses the body.
pub fn malformed_json() -> Refusal {
    Refusal::new(Reason::MalformedJson, "The request body is not valid JSON.")
}

/// `url` with `query` appended (form-encoded, after any query it has), as a string.
pub fn with_query(mut url: url::Url, query: &[(&str, &str)]) -> String {
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query.iter().copied());
    }
    url.into()
}

/// An agent's answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Extra response headers (e.g. `Retry-After`). Names must be valid header names; invalid
    /// ones are dropped.
    pub headers: Vec<(&'static str, String)>,
    /// The call the request belonged to, for the access log (never sent to the client).
    pub call_id: Option<String>,
    /// The body already serialized as JSON, sent instead of `body` (then `Value::Null`): a
    /// rendered SWML document goes from its typed form to bytes without a `Value` between.
    pub serialized: Option<axum::body::Bytes>,
}

impl Reply {
    /// `200 OK` with `body`.
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            headers: Vec::new(),
            call_id: None,
            serialized: None,
        }
    }

    /// `200 OK` with `json`, a body already serialized as JSON (the caller vouches for it).
    pub fn ok_serialized(json: impl Into<axum::body::Bytes>) -> Self {
        Self {
            serialized: Some(json.into()),
            ..Self::ok(Value::Null)
        }
    }

    /// The body as a JSON value: `body`, or the serialized bytes parsed (`Value::Null` if they
    /// are not JSON). For tests and tools; the server sends the bytes as they are.
    pub fn json(&self) -> Value {
        match &self.serialized {
            Some(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
            None => self.body.clone(),
        }
    }

    /// Name the call this request belonged to (access log).
    pub fn with_call_id(mut self, call_id: Option<String>) -> Self {
        self.call_id = call_id;
        self
    }

    /// Add a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl From<Refusal> for Reply {
    /// The refusal's status and body, with `Retry-After` when it carries one.
    fn from(refusal: Refusal) -> Self {
        let mut reply = Self {
            status: refusal.status(),
            body: refusal.body(),
            headers: Vec::new(),
            call_id: None,
            serialized: None,
        };
        if let Some(secs) = refusal.retry_after_secs() {
            reply.headers.push(("retry-after", secs.to_string()));
        }
        reply
    }
}

/// The paths an agent on one route answers: SWML at the route, SWAIG at `{route}/swaig` (and
/// with a trailing slash) and the end-of-call summary at `{route}/post_prompt`. The one
/// definition that the router, the start-up collision check and SWML rendering all use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRoutes {
    swml: String,
    swaig: String,
    post_prompt: String,
    pay: String,
    pay_status: String,
}

impl AgentRoutes {
    /// The paths of an agent on `route` (`/`, `/bank`, `/a/b`).
    pub fn new(route: &str) -> Self {
        let base = route.trim_end_matches('/');
        Self {
            swml: if base.is_empty() {
                "/".into()
            } else {
                base.into()
            },
            swaig: format!("{base}/swaig"),
            post_prompt: format!("{base}/post_prompt"),
            pay: format!("{base}/pay"),
            pay_status: format!("{base}/pay/status"),
        }
    }

    /// Where the SWML document is fetched.
    pub fn swml(&self) -> &str {
        &self.swml
    }

    /// Where SWAIG function calls are posted.
    pub fn swaig(&self) -> &str {
        &self.swaig
    }

    /// Where the end-of-call summary is posted.
    pub fn post_prompt(&self) -> &str {
        &self.post_prompt
    }

    /// Where the platform posts card details for a payment (the payment connector).
    pub fn pay(&self) -> &str {
        &self.pay
    }

    /// Where the platform posts payment status events.
    pub fn pay_status(&self) -> &str {
        &self.pay_status
    }

    /// Every path the router answers for the agent: SWML, SWAIG, SWAIG with a trailing slash,
    /// post-prompt, the payment connector and its status events.
    pub fn all(&self) -> [String; 6] {
        [
            self.swml.clone(),
            self.swaig.clone(),
            format!("{}/", self.swaig),
            self.post_prompt.clone(),
            self.pay.clone(),
            self.pay_status.clone(),
        ]
    }
}

/// Where the HTTP layer reports security events it decides itself (refused authentication).
/// The call returns only once the event is stored, so a refusal is never answered before it is
/// on record.
#[async_trait::async_trait]
pub trait SecurityEvents: Send + Sync + 'static {
    /// A request was refused for missing or invalid credentials.
    async fn auth_failed(
        &self,
        client: SocketAddr,
        method: &str,
        path: &str,
        reason: Reason,
        request_id: &str,
    );

    /// A webhook was refused because its `X-SignalWire-Signature` was missing or wrong. By
    /// default this is recorded as a refused authentication with reason `signature_invalid`.
    async fn signature_failed(
        &self,
        client: SocketAddr,
        method: &str,
        path: &str,
        request_id: &str,
    ) {
        self.auth_failed(client, method, path, Reason::SignatureInvalid, request_id)
            .await;
    }
}

/// One finished request, as the access hooks and the access log see it. The path never
/// includes the query string (which carries function tokens), and is redacted as every log
/// line is (a card number in it masked, also written percent-encoded, in which case the path
/// is given decoded; cut at 256 bytes with a marker).
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// HTTP method.
    pub method: String,
    /// Request path, without the query string.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Time from the request's arrival to its response.
    pub duration: std::time::Duration,
    /// Peer address.
    pub client: SocketAddr,
    /// The request id (also sent as `X-Request-Id`).
    pub request_id: String,
    /// The call the request belonged to, when the agent knew it.
    pub call_id: Option<String>,
}

/// Callbacks around every request (e.g. for custom metrics or logging). Both run on the
/// request path: keep them cheap and non-blocking.
pub trait AccessHooks: Send + Sync + 'static {
    /// A request arrived (before authentication); `path` redacted as [`AccessRecord::path`].
    fn on_request(&self, _method: &str, _path: &str, _client: SocketAddr, _request_id: &str) {}
    /// A response is about to be sent.
    fn on_response(&self, _record: &AccessRecord) {}
}

/// Runtime-wide operator endpoints, served behind their own credentials:
/// `POST /admin/emergency` and `GET /ready/detail`.
#[async_trait::async_trait]
pub trait AdminService: Send + Sync + 'static {
    /// Handle `POST /admin/emergency` (body already parsed).
    async fn emergency(&self, request: &RequestInfo, body: Value) -> Reply;
    /// Extra readiness detail for `GET /ready/detail` (e.g. the emergency state).
    async fn detail(&self) -> Value;
}

/// Where the operator records API is served: `/records` and every path below it.
pub const RECORDS_PREFIX: &str = "/records";

/// Whether `path` belongs to the operator records API ([`RECORDS_PREFIX`] or below it).
pub fn is_records_path(path: &str) -> bool {
    path.strip_prefix(RECORDS_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// One request to the operator records API, as the server hands it over: size-checked,
/// with its query split and its JSON body parsed, but **not authenticated** — operators are
/// authenticated by the service itself, with their own credentials. The server only tells
/// whether the `Authorization` header carries the platform's Basic credentials, which the
/// service must refuse (they travel in every webhook URL).
pub struct OperatorRequest {
    /// Unique id of this request (also sent back as `X-Request-Id`).
    pub request_id: String,
    /// Peer address of the connection.
    pub client: SocketAddr,
    /// HTTP method, upper case.
    pub method: String,
    /// The path below [`RECORDS_PREFIX`]: empty for `/records` itself, else starting with `/`.
    /// Still percent-encoded.
    pub path: String,
    /// Decoded query pairs, in order (at most [`MAX_OPERATOR_QUERY_PAIRS`]).
    pub query: Vec<(String, String)>,
    /// The `Authorization` header, if any and if it is visible ASCII.
    pub authorization: Option<String>,
    /// Whether `authorization` holds the platform's Basic credentials (checked in constant
    /// time by the server).
    pub platform_credentials: bool,
    /// The parsed JSON body (`None` when empty).
    pub body: Option<Value>,
}

/// The most query pairs an operator request may carry; more is refused before the service
/// sees it.
pub const MAX_OPERATOR_QUERY_PAIRS: usize = 32;

impl std::fmt::Debug for OperatorRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorRequest")
            .field("request_id", &self.request_id)
            .field("client", &self.client)
            .field("method", &self.method)
            .field("path", &self.path)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl OperatorRequest {
    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The operator records API on [`RECORDS_PREFIX`]: it authenticates operators itself and
/// never accepts the platform's credentials.
#[async_trait::async_trait]
pub trait RecordsService: Send + Sync + 'static {
    /// Handle one operator request.
    async fn handle(&self, request: OperatorRequest) -> Reply;
}

/// Where the security console is served: `/console` and every path below it.
pub const CONSOLE_PREFIX: &str = "/console";

/// Whether `path` belongs to the security console ([`CONSOLE_PREFIX`] or below it).
pub fn is_console_path(path: &str) -> bool {
    path.strip_prefix(CONSOLE_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The most form fields a console request may carry; more is refused before the service sees
/// it.
pub const MAX_CONSOLE_FORM_PAIRS: usize = 32;

/// The largest console request body (a form): 16 KiB, or the server's body limit if smaller.
pub const CONSOLE_BODY_LIMIT: usize = 16 * 1024;

/// One request to the security console, as the server hands it over: size-checked, with its
/// query and its `application/x-www-form-urlencoded` body split into pairs, but **not
/// authenticated** — the console authenticates operators itself (sign-in and its own session
/// cookie). The platform's credentials mean nothing here.
pub struct ConsoleRequest {
    /// Unique id of this request (also sent back as `X-Request-Id`).
    pub request_id: String,
    /// Peer address of the connection.
    pub client: SocketAddr,
    /// HTTP method, upper case.
    pub method: String,
    /// The path below [`CONSOLE_PREFIX`]: empty for `/console` itself, else starting with `/`.
    pub path: String,
    /// Decoded query pairs, in order (at most [`MAX_CONSOLE_FORM_PAIRS`]).
    pub query: Vec<(String, String)>,
    /// Decoded form fields of the body, in order (at most [`MAX_CONSOLE_FORM_PAIRS`]).
    pub form: Vec<(String, String)>,
    /// The `Cookie` header, if any and if it is visible ASCII.
    pub cookie: Option<String>,
    /// Whether the server runs TLS (the session cookie is then `Secure`).
    pub tls: bool,
    /// The `Last-Event-ID` header an `EventSource` sends when it reconnects, if it is at most
    /// 64 visible ASCII characters.
    pub last_event_id: Option<String>,
}

impl std::fmt::Debug for ConsoleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the form (it carries passwords) or the cookie (it carries the session id).
        f.debug_struct("ConsoleRequest")
            .field("request_id", &self.request_id)
            .field("client", &self.client)
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ConsoleRequest {
    /// The first value of form field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of form field `name`, in order.
    pub fn fields<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.form
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of cookie `name`, if the request carries it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookie.as_deref()?.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
    }
}

/// A console answer: status, content type, body and extra headers. The server adds the
/// console's Content-Security-Policy and the usual security headers.
#[derive(Debug)]
pub struct ConsoleReply {
    /// HTTP status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body (with a [`stream`](Self::stream): its first bytes).
    pub body: Bytes,
    /// Extra headers (`Set-Cookie`, `Location`, …). Invalid ones are dropped.
    pub headers: Vec<(&'static str, String)>,
    /// A body sent as it is produced (server-sent events): after `body`, each chunk as the
    /// stream yields it; the response ends when the stream does, or when the client goes away
    /// (the stream is then dropped). `None` for an ordinary answer.
    pub stream: Option<ConsoleStream>,
}

/// The streamed part of a [`ConsoleReply`]: chunks of the body as they are produced.
pub struct ConsoleStream(pub std::pin::Pin<Box<dyn futures_util::Stream<Item = Bytes> + Send>>);

impl std::fmt::Debug for ConsoleStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleStream")
    }
}

/// The security console on [`CONSOLE_PREFIX`]: it authenticates operators itself.
#[async_trait::async_trait]
pub trait ConsoleService: Send + Sync + 'static {
    /// Handle one console request.
    async fn handle(&self, request: ConsoleRequest) -> ConsoleReply;
}

/// A random request id of 16 lowercase letters (~73 bits). Letters only: a hex id can
/// contain a long run of digits that the log redactor would take for a card number.
pub(crate) fn new_request_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::AgentRoutes;

    #[test]
    fn a_webhook_base_with_its_query_is_the_webhook_url() {
        use super::{with_query, RequestInfo};
        use std::sync::Arc;
        use voxguard_guard::BasicCredentials;
        let credentials = Arc::new(BasicCredentials::new("agent", "p@ss:w/rd"));
        for base in [
            "https://agent.example.com/",
            "https://agent.example.com/voice/",
            "https://agent.example.com:8443/voice?tenant=a b",
        ] {
            let info = RequestInfo::new(
                "127.0.0.1:9".parse().unwrap(),
                url::Url::parse(base).unwrap(),
                credentials.clone(),
                None,
            );
            for query in [&[][..], &[("__token", "ab-_c.d=")][..]] {
                assert_eq!(
                    with_query(info.webhook_base("/bank/swaig"), query),
                    info.webhook_url("/bank/swaig", query),
                    "{base} {query:?}"
                );
            }
            let url = info.webhook_url("/bank/swaig", &[("__token", "t&x=1")]);
            assert!(url.contains("agent:p%40ss%3Aw%2Frd@"), "{url}");
            assert!(url.ends_with("__token=t%26x%3D1"), "{url}");
        }
    }

    #[test]
    fn routes_have_one_definition() {
        let root = AgentRoutes::new("/");
        assert_eq!(
            root.all(),
            [
                "/",
                "/swaig",
                "/swaig/",
                "/post_prompt",
                "/pay",
                "/pay/status"
            ]
        );
        let bank = AgentRoutes::new("/bank");
        assert_eq!(
            (bank.swml(), bank.swaig(), bank.post_prompt()),
            ("/bank", "/bank/swaig", "/bank/post_prompt")
        );
        assert_eq!(bank.all()[2], "/bank/swaig/");
    }

    #[test]
    fn request_ids_are_letters_and_distinct() {
        let a = super::new_request_id();
        let b = super::new_request_id();
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|c| c.is_ascii_lowercase()), "{a}");
        assert_ne!(a, b);
    }
}
