//! End-to-end tests of the HTTP surface: Basic auth, JSON errors, body limits, security
//! headers, timeouts, slow clients and the connection cap, TLS, the public URL of rendered
//! webhooks, routing, graceful shutdown, and the reference bank agent as a real process.
//!
//! Every test starts a real server on `127.0.0.1:0` (in-process through [`TestServer`], or the
//! `bank_agent` example binary as a child process) and speaks real HTTP to it, with reqwest or
//! with raw TCP where the wire itself is the point. Durations below are only upper bounds for
//! "eventually" — nothing asserts that anything is fast.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::bank_process::*;
use crate::util::{count, counter, counting_tool, empty_schema, Counter};
use crate::util::{functions, token_for, RecordsKit, TestServer, PASSWORD, USER};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use voxguard::guard::{BasicCredentials, KeyRing, TokenKey};
use voxguard::prelude::*;
use voxguard::server::{ServerConfig, TlsConfig};
use voxguard::AgentError;

// ---------------------------------------------------------------------------------------------
// Agents and request helpers
// ---------------------------------------------------------------------------------------------

/// A tool that sleeps `delay` before answering.
fn sleeping_tool(name: &str, delay: Duration, runs: Arc<AtomicUsize>) -> Tool {
    Tool::untyped(
        name,
        "Takes its time",
        empty_schema(),
        move |_args, _ctx| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                Ok(FunctionResult::new("slept"))
            }
        },
    )
    .secure(false)
}

fn agent(route: &str, tools: Vec<Tool>) -> Agent {
    let mut builder = Agent::builder(format!("agent{}", route.replace('/', "-")))
        .route(route)
        .prompt_text("You are a test agent.");
    for tool in tools {
        builder = builder.tool(tool);
    }
    builder.build().expect("test agent builds")
}

/// The agent at `/` with one counting tool `ping` and a counting summary handler.
fn root_agent(runs: Arc<AtomicUsize>) -> Agent {
    let summaries = runs.clone();
    Agent::builder("root")
        .prompt_text("You are a test agent.")
        .tool(counting_tool("ping", &runs).secure(false))
        .on_summary(move |_summary, _ctx| {
            let summaries = summaries.clone();
            async move {
                summaries.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .build()
        .expect("root agent builds")
}

fn swaig_body(function: &str, call_id: &str) -> Value {
    json!({
        "function": function,
        "call_id": call_id,
        "caller_id_num": "+15550001111",
        "argument": { "parsed": [{}], "raw": "{}" },
    })
}

/// A SWAIG call to `function` serialized to exactly `len` bytes (padded with an unknown key,
/// which SWAIG readers must tolerate).
fn swaig_body_of_len(function: &str, len: usize) -> Vec<u8> {
    let with_pad = |pad: usize| {
        let mut body = swaig_body(function, "call-pad");
        body["pad"] = Value::String("x".repeat(pad));
        serde_json::to_vec(&body).expect("serializes")
    };
    let base = with_pad(0).len();
    assert!(base <= len, "a SWAIG body needs at least {base} bytes");
    let body = with_pad(len - base);
    assert_eq!(body.len(), len);
    body
}

fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
}

async fn json_body(response: reqwest::Response) -> (StatusCode, HeaderMap, Value) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text:?}"));
    (status, headers, body)
}

fn assert_json_content_type(headers: &HeaderMap) {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}"
    );
}

/// Assert a JSON refusal with `status` and `error: reason`; returns the body.
async fn expect_refusal(response: reqwest::Response, status: StatusCode, reason: &str) -> Value {
    let (got, headers, body) = json_body(response).await;
    assert_eq!(got, status, "body: {body}");
    assert_json_content_type(&headers);
    assert_eq!(body["error"], reason, "body: {body}");
    assert!(
        body["response"].as_str().is_some_and(|s| !s.is_empty()),
        "a refusal carries a sentence: {body}"
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = headers
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            challenge.to_ascii_lowercase().starts_with("basic"),
            "401 carries a Basic challenge, got {challenge:?}"
        );
    }
    body
}

/// A good SWAIG call to `ping` on the root agent answers 200 and runs the handler once more.
async fn assert_still_serving(server: &TestServer, runs: &Counter) {
    let before = count(runs);
    let (status, body) = server
        .post_json("/swaig", swaig_body("ping", "call-good"))
        .await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    assert_eq!(body["response"], "ping ran.");
    assert_eq!(count(runs), before + 1);
}

fn assert_security_headers(headers: &HeaderMap, what: &str) {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(get("x-content-type-options"), Some("nosniff"), "{what}");
    assert_eq!(get("cache-control"), Some("no-store"), "{what}");
    assert_eq!(get("x-frame-options"), Some("DENY"), "{what}");
    assert!(
        get("x-request-id").is_some_and(|id| !id.is_empty()),
        "{what}: x-request-id"
    );
}

/// Every `web_hook_url` of a rendered SWML document (defaults first, then functions).
fn webhook_urls(swml: &Value) -> Vec<reqwest::Url> {
    let ai = swml["sections"]["main"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|verb| verb.get("ai"))
        .expect("an ai verb");
    let mut urls = vec![ai["SWAIG"]["defaults"]["web_hook_url"]
        .as_str()
        .expect("defaults.web_hook_url")
        .to_string()];
    urls.extend(
        functions(swml)
            .iter()
            .filter_map(|f| f["web_hook_url"].as_str().map(str::to_string)),
    );
    if let Some(post_prompt_url) = ai["post_prompt_url"].as_str() {
        urls.push(post_prompt_url.to_string());
    }
    urls.iter()
        .map(|u| reqwest::Url::parse(u).unwrap_or_else(|e| panic!("{u}: {e}")))
        .collect()
}

fn function_names(swml: &Value) -> Vec<String> {
    let mut names: Vec<String> = functions(swml)
        .iter()
        .filter_map(|f| f["function"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Wait until `condition` holds, polling; panics after [`EVENTUALLY`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + EVENTUALLY;
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP
// ---------------------------------------------------------------------------------------------

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "raw body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A complete response (head + Content-Length body) at the start of `buf`, if there is one.
fn parse_response(buf: &[u8]) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())?;
    let start = end + 4;
    (buf.len() >= start + len).then(|| RawResponse {
        status,
        headers,
        body: buf[start..start + len].to_vec(),
    })
}

/// Read one complete response from `stream`.
async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(EVENTUALLY, async {
        loop {
            if let Some(response) = parse_response(&buf) {
                return response;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => panic!(
                    "connection ended before a complete response: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("a response eventually")
}

/// Connect, send `request` in one write, read one response.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send request");
    read_response(&mut stream).await
}

/// An authenticated chunked POST of `body` to `path`, cut into `chunk`-byte chunks.
fn chunked_post(addr: SocketAddr, path: &str, body: &[u8], chunk: usize) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        basic_header(USER, PASSWORD)
    )
    .into_bytes();
    for piece in body.chunks(chunk) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

/// Read until the peer closes (EOF or error); panics if it stays open past [`EVENTUALLY`].
/// Returns whatever the peer sent before closing.
async fn closed_by_peer(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(EVENTUALLY, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server never closed {what}"));
    received
}

// ---------------------------------------------------------------------------------------------
// 1. Basic auth
// ---------------------------------------------------------------------------------------------

/// Protected (method, path) pairs on a server whose root agent has tools and a summary handler.
/// Each would reach the `ping` handler or the summary handler if auth let it through.
const PROTECTED: [(&str, &str); 9] = [
    ("GET", "/"),
    ("POST", "/"),
    ("POST", "/swaig"),
    ("POST", "/swaig/"),
    ("POST", "/post_prompt"),
    ("GET", "/no/such/path"),
    ("GET", "/health/"),
    ("GET", "/%68ealth"),
    ("GET", "/HEALTH"),
];

fn protected_request(server: &TestServer, method: &str, path: &str) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    server
        .client
        .request(method, server.url(path))
        .json(&swaig_body("ping", "call-auth"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_get_401_with_challenge_everywhere_but_health() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    for (method, path) in PROTECTED {
        let response = protected_request(&server, method, path)
            .send()
            .await
            .expect("request");
        let body = expect_refusal(response, StatusCode::UNAUTHORIZED, "auth_required").await;
        assert!(
            !body.to_string().contains("ping ran"),
            "{method} {path}: {body}"
        );
    }
    // Paths a URL library would normalize, sent verbatim on the wire.
    for path in ["/health/../swaig", "//health", "/health/..", "/./health/"] {
        let response = raw_exchange(
            server.addr,
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
                server.addr
            )
            .as_bytes(),
        )
        .await;
        assert_eq!(response.status, 401, "{path}");
        assert_eq!(response.json()["error"], "auth_required", "{path}");
    }
    assert_eq!(count(&runs), 0, "no handler may run without credentials");
    assert_still_serving(&server, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_headers_get_auth_malformed() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    let malformed = [
        "Basic !!!not-base64!!!".to_string(),
        format!("Basic {}", BASE64.encode(format!("{USER}{PASSWORD}"))),
        format!("Bearer {}", BASE64.encode(format!("{USER}:{PASSWORD}"))),
        format!("Digest {}", BASE64.encode(format!("{USER}:{PASSWORD}"))),
        "Basic".to_string(),
        "Basic    ".to_string(),
        BASE64.encode(format!("{USER}:{PASSWORD}")),
    ];
    for header in &malformed {
        for (method, path) in PROTECTED {
            let response = protected_request(&server, method, path)
                .header(reqwest::header::AUTHORIZATION, header.as_str())
                .send()
                .await
                .expect("request");
            expect_refusal(response, StatusCode::UNAUTHORIZED, "auth_malformed").await;
        }
    }
    assert_eq!(
        count(&runs),
        0,
        "no handler may run with a malformed header"
    );
    assert_still_serving(&server, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_user_or_password_gets_auth_invalid() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    let wrong = [
        ("intruder", PASSWORD),
        (USER, "correct-horse-battery-staple-124"),
        (USER, ""),
        ("", PASSWORD),
        ("TESTER", PASSWORD),
        (USER, &PASSWORD[..PASSWORD.len() - 1]),
    ];
    for (user, password) in wrong {
        for (method, path) in PROTECTED {
            let response = protected_request(&server, method, path)
                .header(reqwest::header::AUTHORIZATION, basic_header(user, password))
                .send()
                .await
                .expect("request");
            expect_refusal(response, StatusCode::UNAUTHORIZED, "auth_invalid").await;
        }
    }
    assert_eq!(count(&runs), 0, "no handler may run with wrong credentials");
    // The right credentials, spelled with a lower-case scheme, are accepted.
    let response = server
        .client
        .post(server.url("/swaig"))
        .header(
            reqwest::header::AUTHORIZATION,
            format!("basic {}", BASE64.encode(format!("{USER}:{PASSWORD}"))),
        )
        .json(&swaig_body("ping", "call-auth"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(&runs), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_answer_without_credentials() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    for (path, status) in [("/health", "ok"), ("/ready", "ready")] {
        let response = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("request");
        let (code, headers, body) = json_body(response).await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert_json_content_type(&headers);
        assert_eq!(body["status"], status, "{path}");
        assert_security_headers(&headers, path);
        // The query string does not change what the path is.
        let response = server
            .client
            .get(server.url(&format!("{path}?probe=1")))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}?probe=1");
    }
    assert_eq!(count(&runs), 0);
}

// ---------------------------------------------------------------------------------------------
// 2. JSON errors: 404, 405, 400, 413
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_and_unknown_function_get_404_json() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    for path in ["/no/such/path", "/swaig/extra", "/health/x"] {
        let response = server
            .client
            .get(server.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("request");
        expect_refusal(response, StatusCode::NOT_FOUND, "not_found").await;
        assert_still_serving(&server, &runs).await;
    }
    let before = count(&runs);
    let (status, body) = server
        .post_json("/swaig", swaig_body("pong", "call-404"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "body: {body}");
    assert_eq!(body["error"], "unknown_function");
    assert!(
        !body.to_string().contains("pong"),
        "the unknown name is not echoed back: {body}"
    );
    assert_eq!(count(&runs), before, "no handler ran");
    assert_still_serving(&server, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_methods_get_405_json() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    for (method, path) in [
        (reqwest::Method::GET, "/swaig"),
        (reqwest::Method::PUT, "/swaig"),
        (reqwest::Method::GET, "/post_prompt"),
        (reqwest::Method::DELETE, "/"),
        (reqwest::Method::PATCH, "/"),
        (reqwest::Method::POST, "/health"),
        (reqwest::Method::DELETE, "/ready"),
    ] {
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .json(&swaig_body("ping", "call-405"))
            .send()
            .await
            .expect("request");
        expect_refusal(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
        assert_eq!(count(&runs), 0, "{method} {path} ran a handler");
    }
    assert_still_serving(&server, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_json_gets_400_malformed_json() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    for path in ["/swaig", "/", "/post_prompt"] {
        for body in [
            "{not json",
            "{\"function\": \"ping\",",
            "{\"function\": \"ping\"} trailing",
            "\u{feff}nope",
        ] {
            let response = server
                .client
                .post(server.url(path))
                .basic_auth(USER, Some(PASSWORD))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .expect("request");
            let refusal = expect_refusal(response, StatusCode::BAD_REQUEST, "malformed_json").await;
            assert!(
                !refusal.to_string().contains("line"),
                "no parser internals in the answer: {refusal}"
            );
        }
        assert_eq!(count(&runs), 0, "{path}");
    }
    assert_still_serving(&server, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_is_not_a_swaig_call_gets_400_invalid_request() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    for body in [
        json!([1, 2, 3]),
        json!("ping"),
        json!(42),
        json!(null),
        json!({}),
        json!({ "function": "" }),
        json!({ "function": 7 }),
        json!({ "call_id": "call-1", "argument": { "parsed": [{}] } }),
    ] {
        let (status, reply) = server.post_json("/swaig", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {reply}");
        assert_eq!(reply["error"], "invalid_request", "{body} → {reply}");
    }
    // The SWML route wants an object too.
    let (status, reply) = server.post_json("/", json!([1])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["error"], "invalid_request");
    // An empty SWAIG body is refused as well.
    let response = server
        .client
        .post(server.url("/swaig"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("request");
    expect_refusal(response, StatusCode::BAD_REQUEST, "empty_body").await;
    assert_eq!(count(&runs), 0);
    assert_still_serving(&server, &runs).await;
}

const SMALL_LIMIT: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_with_content_length_gets_413() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |config| {
        config.body_limit = SMALL_LIMIT;
    })
    .await;
    for (path, len) in [
        ("/swaig", SMALL_LIMIT + 1),
        ("/swaig", 4 * SMALL_LIMIT),
        ("/", 2 * SMALL_LIMIT),
        ("/post_prompt", 2 * SMALL_LIMIT),
    ] {
        let response = server
            .client
            .post(server.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(swaig_body_of_len("ping", len))
            .send()
            .await
            .expect("request");
        expect_refusal(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
        assert_eq!(count(&runs), 0, "{path} {len}");
        assert_still_serving(&server, &runs).await;
        runs.store(0, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_body_gets_413() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |config| {
        config.body_limit = SMALL_LIMIT;
    })
    .await;
    for (len, chunk) in [
        (SMALL_LIMIT + 1, 256),
        (3 * SMALL_LIMIT, 100),
        (SMALL_LIMIT + 1, SMALL_LIMIT + 1),
    ] {
        let body = swaig_body_of_len("ping", len);
        let response = raw_exchange(
            server.addr,
            &chunked_post(server.addr, "/swaig", &body, chunk),
        )
        .await;
        assert_eq!(response.status, 413, "{len} bytes in {chunk}-byte chunks");
        assert_eq!(response.json()["error"], "body_too_large");
        assert!(response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")));
        assert_eq!(count(&runs), 0, "no handler ran");
        assert_still_serving(&server, &runs).await;
        runs.store(0, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_at_the_limit_is_accepted() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |config| {
        config.body_limit = SMALL_LIMIT;
    })
    .await;
    for len in [SMALL_LIMIT - 1, SMALL_LIMIT] {
        // With Content-Length.
        let response = server
            .client
            .post(server.url("/swaig"))
            .basic_auth(USER, Some(PASSWORD))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(swaig_body_of_len("ping", len))
            .send()
            .await
            .expect("request");
        let (status, _, body) = json_body(response).await;
        assert_eq!(status, StatusCode::OK, "{len} bytes: {body}");
        assert_eq!(body["response"], "ping ran.");
        // Chunked.
        let body = swaig_body_of_len("ping", len);
        let response = raw_exchange(
            server.addr,
            &chunked_post(server.addr, "/swaig", &body, 200),
        )
        .await;
        assert_eq!(response.status, 200, "{len} bytes chunked");
        assert_eq!(response.json()["response"], "ping ran.");
    }
    assert_eq!(count(&runs), 4);
}

// ---------------------------------------------------------------------------------------------
// 3. Security headers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_response() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |config| {
        config.body_limit = SMALL_LIMIT;
    })
    .await;
    let client = &server.client;
    let authed = |builder: reqwest::RequestBuilder| builder.basic_auth(USER, Some(PASSWORD));
    let cases: Vec<(&str, StatusCode, reqwest::RequestBuilder)> = vec![
        (
            "SWML",
            StatusCode::OK,
            authed(client.post(server.url("/"))).json(&json!({ "call_id": "c1" })),
        ),
        (
            "SWAIG",
            StatusCode::OK,
            authed(client.post(server.url("/swaig"))).json(&swaig_body("ping", "c1")),
        ),
        ("health", StatusCode::OK, client.get(server.url("/health"))),
        (
            "no credentials",
            StatusCode::UNAUTHORIZED,
            client.get(server.url("/")),
        ),
        (
            "unknown path",
            StatusCode::NOT_FOUND,
            authed(client.get(server.url("/nope"))),
        ),
        (
            "unknown function",
            StatusCode::NOT_FOUND,
            authed(client.post(server.url("/swaig"))).json(&swaig_body("nope", "c1")),
        ),
        (
            "wrong method",
            StatusCode::METHOD_NOT_ALLOWED,
            authed(client.get(server.url("/swaig"))),
        ),
        (
            "malformed JSON",
            StatusCode::BAD_REQUEST,
            authed(client.post(server.url("/swaig"))).body("{"),
        ),
        (
            "too large",
            StatusCode::PAYLOAD_TOO_LARGE,
            authed(client.post(server.url("/swaig"))).body(vec![b' '; 2 * SMALL_LIMIT]),
        ),
    ];
    let mut request_ids = std::collections::HashSet::new();
    for (what, status, request) in cases {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), status, "{what}");
        let headers = response.headers().clone();
        assert_security_headers(&headers, what);
        assert!(
            headers.get("strict-transport-security").is_none(),
            "{what}: no HSTS over plain HTTP"
        );
        let id = headers["x-request-id"]
            .to_str()
            .expect("ascii id")
            .to_string();
        assert!(
            request_ids.insert(id.clone()),
            "{what}: request id {id} reused"
        );
    }
    // A raw chunked 413 carries them too.
    let body = swaig_body_of_len("ping", 2 * SMALL_LIMIT);
    let response = raw_exchange(
        server.addr,
        &chunked_post(server.addr, "/swaig", &body, 512),
    )
    .await;
    assert_eq!(response.status, 413);
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    assert!(response.header("x-request-id").is_some());
    assert!(response.header("strict-transport-security").is_none());
}

// ---------------------------------------------------------------------------------------------
// 4. Request timeout
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handler_gets_503_request_timeout_and_server_keeps_serving() {
    let runs = counter();
    let slow_runs = counter();
    let agent = Agent::builder("timeouts")
        .prompt_text("You are a test agent.")
        .tool(counting_tool("ping", &runs).secure(false))
        .tool(sleeping_tool(
            "slow",
            Duration::from_secs(5),
            slow_runs.clone(),
        ))
        .build()
        .expect("agent builds");
    let server = TestServer::start(vec![agent], |config| {
        config.request_timeout = Duration::from_millis(300);
    })
    .await;
    let response = server
        .client
        .post(server.url("/swaig"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&swaig_body("slow", "call-slow"))
        .send()
        .await
        .expect("request");
    let headers = response.headers().clone();
    let body = expect_refusal(response, StatusCode::SERVICE_UNAVAILABLE, "request_timeout").await;
    assert_security_headers(&headers, "503");
    assert_ne!(body["response"], "slept");
    assert_eq!(count(&slow_runs), 1, "the slow handler did start");
    assert_still_serving(&server, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_handler_is_cancelled_and_never_finishes_its_work() {
    let started = counter();
    let finished = counter();
    let tool = {
        let (started, finished) = (started.clone(), finished.clone());
        Tool::untyped(
            "transfer",
            "Moves money slowly",
            empty_schema(),
            move |_args, _ctx| {
                let (started, finished) = (started.clone(), finished.clone());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    // The side effect a retry would duplicate if the work went on after the 503.
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(FunctionResult::new("moved"))
                }
            },
        )
        .secure(false)
    };
    let server = TestServer::start(vec![agent("/", vec![tool])], |config| {
        config.request_timeout = Duration::from_millis(200);
    })
    .await;
    let response = server
        .client
        .post(server.url("/swaig"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&swaig_body("transfer", "call-cancel"))
        .send()
        .await
        .expect("request");
    expect_refusal(response, StatusCode::SERVICE_UNAVAILABLE, "request_timeout").await;
    assert_eq!(count(&started), 1, "the handler started");
    // Well past the handler's own sleep: had it kept running, it would have finished by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&finished),
        0,
        "the handler finished after the caller was told it timed out"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Slow clients and the connection cap
// ---------------------------------------------------------------------------------------------

/// A server with a short header-read timeout, whose client opens a fresh connection per
/// request: the server closes idle keep-alive connections after the header-read timeout too,
/// and a pooled connection closing just as it is reused would fail a request for a reason that
/// is not under test.
async fn start_short_idle(agents: Vec<Agent>, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    TestServer::start_with(
        agents,
        tweak,
        |runtime| runtime,
        reqwest::Client::builder().pool_max_idle_per_host(0),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_finish_their_headers_are_disconnected() {
    let runs = counter();
    let server = start_short_idle(vec![root_agent(runs.clone())], |config| {
        config.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    // One client trickles half a request, one sends nothing at all.
    let mut partial = TcpStream::connect(server.addr).await.expect("connect");
    partial
        .write_all(
            format!(
                "POST /swaig HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Ty",
                server.addr,
                basic_header(USER, PASSWORD)
            )
            .as_bytes(),
        )
        .await
        .expect("send partial request");
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    // Meanwhile everyone else is served.
    assert_still_serving(&server, &runs).await;
    for (stream, what) in [
        (&mut partial, "a partial request"),
        (&mut silent, "a silent connection"),
    ] {
        let received = closed_by_peer(stream, what).await;
        assert!(
            !received.starts_with(b"HTTP/1.1 2"),
            "{what} got a success: {:?}",
            String::from_utf8_lossy(&received)
        );
    }
    assert_eq!(count(&runs), 1, "only the complete request ran a handler");
    assert_still_serving(&server, &runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_holds_extra_clients_until_a_slot_frees() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |config| {
        config.max_connections = 2;
        // Long enough that only the client closing frees a slot in this test.
        config.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let idle_one = TcpStream::connect(server.addr).await.expect("connect");
    let mut idle_two = TcpStream::connect(server.addr).await.expect("connect");
    // Prove both idle connections are being served (accepted and counted): a complete request
    // on the second answers.
    idle_two
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut idle_two).await.status, 200);

    let body = serde_json::to_vec(&swaig_body("ping", "call-cap")).expect("json");
    let mut request = format!(
        "POST /swaig HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        basic_header(USER, PASSWORD),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let mut third = TcpStream::connect(server.addr)
        .await
        .expect("connect (kernel backlog)");
    third.write_all(&request).await.expect("send");
    // While both slots are taken the third client is not served. (This bounds nothing from
    // above: a slower machine only makes it more true.)
    let mut probe = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut probe)).await;
    assert!(
        early.is_err(),
        "a third connection was served past the cap of 2"
    );
    assert_eq!(count(&runs), 0);
    // A slot frees when a client leaves; the waiting client is then served.
    drop(idle_one);
    let response = read_response(&mut third).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["response"], "ping ran.");
    assert_eq!(count(&runs), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_slots_are_freed_by_the_header_timeout() {
    let runs = counter();
    let server = start_short_idle(vec![root_agent(runs.clone())], |config| {
        config.max_connections = 2;
        config.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let mut slow_one = TcpStream::connect(server.addr).await.expect("connect");
    slow_one
        .write_all(b"POST /swaig HTTP/1.1\r\nHo")
        .await
        .expect("send");
    let mut slow_two = TcpStream::connect(server.addr).await.expect("connect");
    // A normal client eventually gets through although both slots were taken by slow peers.
    let (status, body) = tokio::time::timeout(
        EVENTUALLY,
        server.post_json("/swaig", swaig_body("ping", "call-cap")),
    )
    .await
    .expect("the normal request is eventually served");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], "ping ran.");
    closed_by_peer(&mut slow_one, "the first slow connection").await;
    closed_by_peer(&mut slow_two, "the second slow connection").await;
    assert_eq!(count(&runs), 1);
}

// ---------------------------------------------------------------------------------------------
// 6. TLS
// ---------------------------------------------------------------------------------------------

struct TestCert {
    _dir: tempfile::TempDir,
    cert_path: PathBuf,
    key_path: PathBuf,
    cert_pem: String,
}

fn self_signed_localhost() -> TestCert {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("self-signed cert");
    let cert_pem = certified.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).expect("write cert");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key");
    TestCert {
        _dir: dir,
        cert_path,
        key_path,
        cert_pem,
    }
}

impl TestCert {
    fn config(&self) -> TlsConfig {
        TlsConfig {
            cert_path: self.cert_path.clone(),
            key_path: self.key_path.clone(),
        }
    }

    /// A client that trusts this certificate and resolves `localhost` to `addr`.
    fn client(&self, addr: SocketAddr, builder: reqwest::ClientBuilder) -> reqwest::Client {
        builder
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).expect("pem"),
            )
            .resolve("localhost", addr)
            .build()
            .expect("client builds")
    }
}

async fn tls_server(cert: &TestCert, runs: Arc<AtomicUsize>) -> TestServer {
    let tls = cert.config();
    let server = TestServer::start(vec![root_agent(runs)], move |config| {
        config.tls = Some(tls);
    })
    .await;
    assert_eq!(server.scheme, "https");
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_swml_with_https_webhooks_and_hsts() {
    let cert = self_signed_localhost();
    let runs = counter();
    let server = tls_server(&cert, runs.clone()).await;
    let client = cert.client(server.addr, reqwest::Client::builder());
    let url = server.url("/");
    assert!(url.starts_with("https://localhost:"), "{url}");

    let response = client
        .post(&url)
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({ "call_id": "call-tls" }))
        .send()
        .await
        .expect("HTTPS SWML fetch");
    let headers = response.headers().clone();
    let (status, _, swml) = json_body(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers, "TLS 200");
    let hsts = headers
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(hsts.contains("max-age="), "HSTS over TLS, got {hsts:?}");
    let urls = webhook_urls(&swml);
    assert!(urls.len() >= 2, "defaults + post_prompt_url at least");
    for webhook in &urls {
        assert_eq!(webhook.scheme(), "https", "{webhook}");
        assert_eq!(webhook.host_str(), Some("localhost"), "{webhook}");
        assert_eq!(webhook.port(), Some(server.addr.port()), "{webhook}");
    }

    // A SWAIG call over TLS.
    let response = client
        .post(server.url("/swaig"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&swaig_body("ping", "call-tls"))
        .send()
        .await
        .expect("HTTPS SWAIG call");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(&runs), 1);

    // No credentials over TLS: still 401, with HSTS.
    let response = client.get(&url).send().await.expect("request");
    let headers = response.headers().clone();
    expect_refusal(response, StatusCode::UNAUTHORIZED, "auth_required").await;
    assert!(headers.get("strict-transport-security").is_some());
    assert_eq!(count(&runs), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_port_does_not_answer_plain_http() {
    let cert = self_signed_localhost();
    let runs = counter();
    let server = tls_server(&cert, runs.clone()).await;
    let plain = format!("http://127.0.0.1:{}/health", server.addr.port());
    let result = reqwest::Client::new().get(&plain).send().await;
    assert!(
        result.is_err(),
        "plain HTTP on the TLS port got an answer: {:?}",
        result.map(|r| r.status())
    );
    // On the wire: no HTTP response comes back, and the connection is closed.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            )
            .as_bytes(),
        )
        .await
        .expect("send");
    let received = closed_by_peer(&mut stream, "a plain-HTTP connection to the TLS port").await;
    assert!(
        !received.starts_with(b"HTTP/"),
        "got an HTTP answer: {:?}",
        String::from_utf8_lossy(&received)
    );
    // The TLS side is unaffected.
    let client = cert.client(server.addr, reqwest::Client::builder());
    let response = client
        .get(server.url("/health"))
        .send()
        .await
        .expect("HTTPS health");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshakes_that_never_complete_are_disconnected() {
    let cert = self_signed_localhost();
    let tls = cert.config();
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], move |config| {
        config.tls = Some(tls);
        config.header_read_timeout = Duration::from_millis(500);
        config.max_connections = 2;
    })
    .await;
    // One peer sends a fragment of a ClientHello record header, one sends nothing. Together
    // they hold every slot.
    let mut fragment = TcpStream::connect(server.addr).await.expect("connect");
    fragment
        .write_all(&[0x16, 0x03, 0x01, 0x02])
        .await
        .expect("send");
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    // A real client still gets through once the handshake timeout frees the slots.
    let client = cert.client(server.addr, reqwest::Client::builder());
    let response = tokio::time::timeout(
        EVENTUALLY,
        client
            .post(server.url("/swaig"))
            .basic_auth(USER, Some(PASSWORD))
            .json(&swaig_body("ping", "call-tls-slow"))
            .send(),
    )
    .await
    .expect("the HTTPS request is eventually served")
    .expect("HTTPS request");
    assert_eq!(response.status(), StatusCode::OK);
    closed_by_peer(&mut fragment, "a stalled TLS handshake").await;
    closed_by_peer(&mut silent, "a silent TLS connection").await;
    assert_eq!(count(&runs), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_only_and_tls13_only_clients_are_served() {
    let cert = self_signed_localhost();
    let runs = counter();
    let server = tls_server(&cert, runs.clone()).await;
    let clients = [
        (
            "TLS 1.2",
            cert.client(
                server.addr,
                reqwest::Client::builder().max_tls_version(reqwest::tls::Version::TLS_1_2),
            ),
        ),
        (
            "TLS 1.3",
            cert.client(
                server.addr,
                reqwest::Client::builder().min_tls_version(reqwest::tls::Version::TLS_1_3),
            ),
        ),
    ];
    for (what, client) in clients {
        let response = client
            .post(server.url("/swaig"))
            .basic_auth(USER, Some(PASSWORD))
            .json(&swaig_body("ping", "call-tls12"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what} client: {e}"));
        let (status, _, body) = json_body(response).await;
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_eq!(body["response"], "ping ran.", "{what}");
    }
    assert_eq!(count(&runs), 2);
    // A client that does not trust the certificate is refused at the handshake.
    let untrusting = reqwest::Client::builder()
        .resolve("localhost", server.addr)
        .build()
        .expect("client");
    assert!(untrusting.get(server.url("/health")).send().await.is_err());
}

async fn bind_error(tls: TlsConfig) -> String {
    let mut config = ServerConfig::new(BasicCredentials::new(USER, PASSWORD));
    config.tls = Some(tls);
    let runtime =
        Runtime::new(config, KeyRing::new(TokenKey::generate())).agent(root_agent(counter()));
    match runtime.bind().await {
        Ok(_) => panic!("bind succeeded with unusable TLS files"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_fail_bind_naming_the_path() {
    let cert = self_signed_localhost();
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing-cert.pem");
    let error = bind_error(TlsConfig {
        cert_path: missing.clone(),
        key_path: cert.key_path.clone(),
    })
    .await;
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert!(error.contains("certificate"), "{error}");

    let missing_key = dir.path().join("missing-key.pem");
    let error = bind_error(TlsConfig {
        cert_path: cert.cert_path.clone(),
        key_path: missing_key.clone(),
    })
    .await;
    assert!(
        error.contains(&missing_key.display().to_string()),
        "{error}"
    );
    assert!(error.contains("key"), "{error}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM").expect("write");
    let error = bind_error(TlsConfig {
        cert_path: garbage.clone(),
        key_path: cert.key_path.clone(),
    })
    .await;
    assert!(error.contains(&garbage.display().to_string()), "{error}");

    // Key material never appears in the error.
    let swapped = bind_error(TlsConfig {
        cert_path: cert.key_path.clone(),
        key_path: cert.cert_path.clone(),
    })
    .await;
    assert!(!swapped.contains("PRIVATE KEY-----"), "{swapped}");
    assert!(!swapped.contains(&cert.cert_pem), "{swapped}");
}

// ---------------------------------------------------------------------------------------------
// 7. Public URL of rendered webhooks
// ---------------------------------------------------------------------------------------------

async fn swml_with_headers(server: &TestServer, headers: &[(&str, &str)]) -> Value {
    let mut request = server
        .client
        .post(server.url("/"))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({ "call_id": "call-url" }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (status, _, body) = json_body(request.send().await.expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

const FORWARDED: [(&str, &str); 2] = [
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"),
];

fn agent_with_secure_tool() -> Agent {
    let runs = counter();
    Agent::builder("urls")
        .prompt_text("You are a test agent.")
        .tool(counting_tool("lookup", &runs))
        .tool(counting_tool("ping", &runs).secure(false))
        .build()
        .expect("agent builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_ignored_without_trust_proxy() {
    let server = TestServer::start(vec![agent_with_secure_tool()], |_| {}).await;
    let swml = swml_with_headers(&server, &FORWARDED).await;
    let urls = webhook_urls(&swml);
    assert_eq!(urls.len(), 2, "defaults + the secure tool");
    for webhook in urls {
        assert_eq!(webhook.scheme(), "http", "{webhook}");
        assert_eq!(webhook.host_str(), Some("127.0.0.1"), "{webhook}");
        assert_eq!(webhook.port(), Some(server.addr.port()), "{webhook}");
        assert!(!webhook.as_str().contains("evil"), "{webhook}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_honoured_with_trust_proxy() {
    let server = TestServer::start(vec![agent_with_secure_tool()], |config| {
        config.trust_proxy = true;
    })
    .await;
    let swml = swml_with_headers(&server, &FORWARDED).await;
    for webhook in webhook_urls(&swml) {
        assert_eq!(webhook.scheme(), "https", "{webhook}");
        assert_eq!(webhook.host_str(), Some("evil.example"), "{webhook}");
        assert_eq!(webhook.port(), None, "{webhook}");
        assert_eq!(webhook.path(), "/swaig", "{webhook}");
    }
    // Without the headers the request's own host is used.
    let swml = swml_with_headers(&server, &[]).await;
    for webhook in webhook_urls(&swml) {
        assert_eq!(webhook.scheme(), "http", "{webhook}");
        assert_eq!(webhook.host_str(), Some("127.0.0.1"), "{webhook}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_url_base_is_used_with_credentials_embedded() {
    let base = reqwest::Url::parse("https://agents.example.com/voice/").expect("url");
    let base_for_config = base.clone();
    let runs = counter();
    let routed = Agent::builder("routed")
        .route("/bank")
        .prompt_text("You are a test agent.")
        .tool(counting_tool("lookup", &runs))
        .build()
        .expect("agent builds");
    let server = TestServer::start(vec![agent_with_secure_tool(), routed], move |config| {
        config.proxy_url_base = Some(base_for_config);
        config.trust_proxy = true;
    })
    .await;
    // The configured base wins over forwarded headers, even when they are trusted.
    for (route, path) in [("/", "/voice/swaig"), ("/bank", "/voice/bank/swaig")] {
        let response = server
            .client
            .post(server.url(route))
            .basic_auth(USER, Some(PASSWORD))
            .header("x-forwarded-host", "evil.example")
            .json(&json!({ "call_id": "call-proxy" }))
            .send()
            .await
            .expect("request");
        let (status, _, swml) = json_body(response).await;
        assert_eq!(status, StatusCode::OK);
        let urls = webhook_urls(&swml);
        assert!(!urls.is_empty());
        for webhook in urls {
            assert_eq!(webhook.scheme(), "https", "{webhook}");
            assert_eq!(webhook.host_str(), Some("agents.example.com"), "{webhook}");
            assert_eq!(webhook.path(), path, "{webhook}");
            assert_eq!(webhook.username(), USER, "{webhook}");
            assert_eq!(webhook.password(), Some(PASSWORD), "{webhook}");
            assert!(
                webhook.as_str().starts_with(&format!(
                    "https://{USER}:{PASSWORD}@agents.example.com/voice/"
                )),
                "{webhook}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Routing
// ---------------------------------------------------------------------------------------------

struct TwoAgents {
    server: TestServer,
    a_runs: Arc<AtomicUsize>,
    b_runs: Arc<AtomicUsize>,
}

async fn two_agents() -> TwoAgents {
    let a_runs = counter();
    let b_runs = counter();
    let a = agent(
        "/a",
        vec![
            counting_tool("tool_a", &a_runs),
            counting_tool("open_a", &a_runs).secure(false),
        ],
    );
    let b = agent("/b", vec![counting_tool("tool_b", &b_runs)]);
    let server = TestServer::start(vec![a, b], |_| {}).await;
    TwoAgents {
        server,
        a_runs,
        b_runs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_on_one_server_keep_their_tools_apart() {
    let TwoAgents {
        server,
        a_runs,
        b_runs,
    } = two_agents().await;
    let swml_a = server.swml("/a", "call-ab").await;
    let swml_b = server.swml("/b", "call-ab").await;
    assert_eq!(function_names(&swml_a), ["open_a", "tool_a"]);
    assert_eq!(function_names(&swml_b), ["tool_b"]);
    for webhook in webhook_urls(&swml_a) {
        assert_eq!(webhook.path(), "/a/swaig", "{webhook}");
    }
    for webhook in webhook_urls(&swml_b) {
        assert_eq!(webhook.path(), "/b/swaig", "{webhook}");
    }

    // b's tool through a's endpoint, even with a valid b token for this call: unknown there.
    let token_b = token_for(&swml_b, "tool_b").expect("tool_b token");
    let (status, body) = server
        .swaig(
            "/a",
            "tool_b",
            "call-ab",
            "+15550001111",
            json!({}),
            Some(&token_b),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_function");
    assert_eq!(count(&b_runs), 0);

    // Each tool works on its own route.
    let token_a = token_for(&swml_a, "tool_a").expect("tool_a token");
    let (status, body) = server
        .swaig(
            "/a",
            "tool_a",
            "call-ab",
            "+15550001111",
            json!({}),
            Some(&token_a),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], "tool_a ran.");
    let (status, body) = server
        .swaig(
            "/b",
            "tool_b",
            "call-ab",
            "+15550001111",
            json!({}),
            Some(&token_b),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], "tool_b ran.");
    assert_eq!((count(&a_runs), count(&b_runs)), (1, 1));

    // a's token does not open b's tool (the function binding holds across routes too).
    let (status, body) = server
        .swaig(
            "/b",
            "tool_b",
            "call-ab",
            "+15550001111",
            json!({}),
            Some(&token_a),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(count(&b_runs), 1);

    // Nothing is served at the root when no agent is there.
    let response = server
        .client
        .get(server.url("/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("request");
    expect_refusal(response, StatusCode::NOT_FOUND, "not_found").await;
    let (status, _) = server.post_json("/swaig", swaig_body("open_a", "c")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(count(&a_runs), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaig_trailing_slash_and_get_swml_work() {
    let TwoAgents { server, a_runs, .. } = two_agents().await;
    let (status, body) = server
        .post_json("/a/swaig/", swaig_body("open_a", "call-slash"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], "open_a ran.");
    assert_eq!(count(&a_runs), 1);

    let response = server
        .client
        .get(server.url("/a"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("GET SWML");
    let (status, _, swml) = json_body(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(swml["version"], "1.0.0");
    assert_eq!(function_names(&swml), ["open_a", "tool_a"]);
    // A GET carries no call id: the token is bound to a fresh id that matches no real call.
    let token = token_for(&swml, "tool_a").expect("token");
    let (status, _) = server
        .swaig(
            "/a",
            "tool_a",
            "call-slash",
            "+1555",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(count(&a_runs), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swml_post_with_nested_call_id_binds_tokens_to_it() {
    let TwoAgents { server, a_runs, .. } = two_agents().await;
    let call_id = "nested-call-7f3a";
    let (status, swml) = server
        .post_json(
            "/a",
            json!({ "call": { "call_id": call_id, "from": "+15551234567", "to": "+15550000000" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{swml}");
    let token = token_for(&swml, "tool_a").expect("tool_a token");
    let keys = server.keys.for_agent("/a");
    keys.verify(&token, call_id, "tool_a")
        .expect("token bound to call.call_id and tool_a");
    assert!(keys.verify(&token, "other-call", "tool_a").is_err());
    assert!(keys.verify(&token, call_id, "open_a").is_err());
    // And the server agrees.
    let (status, body) = server
        .swaig(
            "/a",
            "tool_a",
            call_id,
            "+15551234567",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count(&a_runs), 1);

    // A top-level call_id wins over the nested one.
    let (status, swml) = server
        .post_json(
            "/a",
            json!({ "call_id": "top-level", "call": { "call_id": call_id } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = token_for(&swml, "tool_a").expect("tool_a token");
    assert!(keys.verify(&token, "top-level", "tool_a").is_ok());
    assert!(keys.verify(&token, call_id, "tool_a").is_err());
}

/// A token rendered for one agent is refused by another on the same server, even for a
/// function of the same name in the same call: each agent mints with its own derived ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_rendered_for_one_agent_is_refused_by_another() {
    let a_runs = counter();
    let b_runs = counter();
    let server = TestServer::start(
        vec![
            agent("/a", vec![counting_tool("lookup", &a_runs)]),
            agent("/b", vec![counting_tool("lookup", &b_runs)]),
        ],
        |_| {},
    )
    .await;
    let call_id = "call-cross-agent";
    let token = token_for(&server.swml("/a", call_id).await, "lookup").expect("a's token");
    let call = |route: &'static str| {
        server.swaig(
            route,
            "lookup",
            call_id,
            "+15551234567",
            json!({}),
            Some(&token),
        )
    };
    let (status, body) = call("/b").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "token_invalid", "{body}");
    assert_eq!(count(&b_runs), 0);
    // Control: the same token on its own agent runs the tool.
    let (status, body) = call("/a").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count(&a_runs), 1);
}

/// An agent called `name` at `route`, without tools.
fn named_agent(name: &str, route: &str) -> Agent {
    Agent::builder(name)
        .route(route)
        .prompt_text("You are a test agent.")
        .build()
        .expect("test agent builds")
}

async fn bind_agents(agents: Vec<Agent>) -> Result<(), String> {
    let mut runtime = Runtime::new(
        ServerConfig::new(BasicCredentials::new(USER, PASSWORD)),
        KeyRing::new(TokenKey::generate()),
    );
    for agent in agents {
        runtime = runtime.agent(agent);
    }
    runtime.bind().await.map(drop).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_agent_routes_are_refused_at_build_or_bind() {
    for route in [
        "no-slash",
        "/trailing/",
        "",
        "//double",
        "/sp ace",
        "/{param}",
        "/*rest",
    ] {
        let result = Agent::builder("bad").route(route).prompt_text("hi").build();
        assert!(
            matches!(result, Err(AgentError::InvalidRoute(ref r)) if r == route),
            "route {route:?}: {result:?}"
        );
    }

    // Two agents (with distinct names) on one route.
    let error = bind_agents(vec![
        named_agent("first", "/same"),
        named_agent("second", "/same"),
    ])
    .await
    .expect_err("two agents on one route");
    assert!(error.contains("/same"), "{error}");
    // Two agents with one name, even on distinct routes: names scope sessions and logs.
    let error = bind_agents(vec![named_agent("twin", "/a"), named_agent("twin", "/b")])
        .await
        .expect_err("two agents with one name");
    assert!(
        error.contains("two agents are named") && error.contains("\"twin\""),
        "{error}"
    );
    for reserved in ["/health", "/ready"] {
        let error = bind_agents(vec![agent(reserved, vec![])])
            .await
            .expect_err("a reserved route");
        assert!(error.contains(reserved), "{error}");
    }
    let error = bind_agents(vec![]).await.expect_err("no agents");
    assert!(error.contains("no agent"), "{error}");
    // A valid set still binds.
    bind_agents(vec![agent("/", vec![]), agent("/x", vec![])])
        .await
        .expect("distinct routes bind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn agent_route_colliding_with_another_agents_endpoint_is_refused_at_bind() {
    for (first, second) in [
        ("/a", "/a/swaig"),
        ("/a", "/a/post_prompt"),
        ("/", "/swaig"),
        ("/", "/post_prompt"),
    ] {
        let outcome = tokio::spawn(bind_agents(vec![
            agent(first, vec![]),
            agent(second, vec![]),
        ]))
        .await;
        let result = outcome.unwrap_or_else(|panic| {
            panic!("binding {first} and {second} panicked instead of returning an error: {panic}")
        });
        let error = result.expect_err("colliding routes must not bind");
        assert!(error.contains(second), "{error}");
    }
}

// ---------------------------------------------------------------------------------------------
// 9. Graceful shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_then_refuses_connections() {
    let started = counter();
    let gate = Arc::new(tokio::sync::Notify::new());
    let tool = {
        let started = started.clone();
        let gate = gate.clone();
        Tool::untyped(
            "wait_for_gate",
            "Waits",
            empty_schema(),
            move |_args, _ctx| {
                let started = started.clone();
                let gate = gate.clone();
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    // Bounded, so a broken test cannot hang; the test opens the gate long before.
                    let _ = tokio::time::timeout(EVENTUALLY, gate.notified()).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(FunctionResult::new("finished after shutdown began"))
                }
            },
        )
        .secure(false)
    };
    let agent = Agent::builder("shutdown")
        .prompt_text("You are a test agent.")
        .tool(tool)
        .build()
        .expect("agent builds");
    let server = TestServer::start(vec![agent], |_| {}).await;
    let addr = server.addr;

    // An idle keep-alive connection that has completed a request.
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut idle).await.status, 200);

    let in_flight = {
        let request = server
            .client
            .post(server.url("/swaig"))
            .basic_auth(USER, Some(PASSWORD))
            .json(&swaig_body("wait_for_gate", "call-shutdown"));
        tokio::spawn(async move {
            let response = request.send().await.expect("in-flight request answered");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        })
    };
    eventually("the handler started", || count(&started) == 1).await;

    let mut stopping = tokio::spawn(server.stop());
    // The listener closes at once: new connections are refused while the request is in flight.
    let deadline = Instant::now() + EVENTUALLY;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Shutdown waits for the in-flight request: it cannot complete while the handler is held
    // at the gate. (A bounded look, not a speed claim: a slower machine only makes the wait
    // shorter relative to the work, never turns a correct server into a failure.)
    let early = tokio::time::timeout(Duration::from_millis(500), &mut stopping).await;
    assert!(
        early.is_err(),
        "stop() returned while a request was still in flight"
    );

    gate.notify_one();
    let (status, body) = tokio::time::timeout(EVENTUALLY, in_flight)
        .await
        .expect("the in-flight request finished")
        .expect("request task");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], "finished after shutdown began");
    tokio::time::timeout(EVENTUALLY, stopping)
        .await
        .expect("shutdown completed")
        .expect("stop task");

    closed_by_peer(&mut idle, "an idle keep-alive connection at shutdown").await;
    let refused = TcpStream::connect(addr).await;
    assert!(refused.is_err(), "a connection was accepted after shutdown");
    assert_eq!(count(&started), 1);
}

// ---------------------------------------------------------------------------------------------
// 10. The reference bank agent as a child process
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_agent_binary_serves_a_call_and_exits_cleanly_on_sigterm() {
    let bank = start_bank_agent(&[
        ("SWML_BASIC_AUTH_USER", BANK_USER),
        ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
    ])
    .await;
    let url = |path: &str| bank.url(path);
    let client = reqwest::Client::new();

    // Credentials are enforced by the real binary too.
    let response = client.get(url("/")).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let call_id = "bank-e2e-call-1";
    let caller = "+15551234567";
    let response = client
        .post(url("/"))
        .basic_auth(BANK_USER, Some(BANK_PASSWORD))
        .json(&json!({ "call_id": call_id, "call": { "from": caller } }))
        .send()
        .await
        .expect("SWML fetch");
    let (status, _, swml) = json_body(response).await;
    assert_eq!(status, StatusCode::OK);
    let names = function_names(&swml);
    for expected in [
        "get_balance",
        "transfer_funds",
        "transfer_to_department",
        "verify_pin",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let swaig = |function: &str, args: Value| {
        let token = token_for(&swml, function).expect("token in SWML");
        client
            .post(url(&format!("/swaig?__token={token}")))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .json(&json!({
                "function": function,
                "call_id": call_id,
                "caller_id_num": caller,
                "argument": { "parsed": [args], "raw": args.to_string() },
            }))
            .send()
    };

    // Before verification no balance is given.
    let (status, _, body) = json_body(swaig("get_balance", json!({})).await.expect("call")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.to_string().contains("$150.00"), "{body}");

    let (status, _, body) = json_body(
        swaig("verify_pin", json!({ "pin": "4321" }))
            .await
            .expect("call"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["response"].as_str().unwrap_or("").contains("verified"),
        "{body}"
    );
    assert!(
        !body.to_string().contains("4321"),
        "the PIN is not echoed: {body}"
    );

    let (status, _, body) = json_body(swaig("get_balance", json!({})).await.expect("call")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["response"].as_str().unwrap_or("").contains("$150.00"),
        "{body}"
    );

    // SIGTERM: a clean, successful exit.
    let (status, stderr) = bank.terminate().await;
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains(BANK_PASSWORD),
        "the password never reaches the logs"
    );
}

/// Run the bank agent in production mode with `vars`; it must exit non-zero. Returns stderr.
async fn bank_agent_production_failure(vars: &[(&str, &str)]) -> String {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut all = vec![("VOXGUARD_ENV", "production")];
    all.extend_from_slice(vars);
    let mut child = ChildGuard(
        bank_agent_command(data_dir.path(), &all)
            .spawn()
            .expect("spawn bank_agent"),
    );
    let stderr = drain(child.0.stderr.take().expect("stderr"));
    let stdout = drain(child.0.stdout.take().expect("stdout"));
    let status = wait_for_exit(&mut child.0)
        .await
        .expect("the bank agent refuses to start and exits");
    drop(child);
    let stderr = stderr.join().unwrap_or_default();
    let stdout = stdout.join().unwrap_or_default();
    assert!(
        !status.success(),
        "production start succeeded; stdout: {stdout}"
    );
    assert!(!stdout.contains("listening"), "it must not serve: {stdout}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_agent_binary_refuses_production_without_credentials() {
    let stderr = bank_agent_production_failure(&[]).await;
    assert!(
        stderr.contains("SWML_BASIC_AUTH_PASSWORD"),
        "stderr: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_agent_binary_refuses_production_with_a_weak_password() {
    let weak = "0123456789";
    let stderr = bank_agent_production_failure(&[
        ("SWML_BASIC_AUTH_USER", BANK_USER),
        ("SWML_BASIC_AUTH_PASSWORD", weak),
    ])
    .await;
    assert!(stderr.contains("32"), "stderr: {stderr}");
    assert!(
        stderr.contains("SWML_BASIC_AUTH_PASSWORD"),
        "stderr: {stderr}"
    );
    assert!(
        !stderr.contains(weak),
        "the password is not printed: {stderr}"
    );
}

/// The public https base production webhooks use (a TLS-terminating proxy in front).
const PUBLIC_BASE: &str = "https://agents.example.com/bank";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_agent_binary_in_production_needs_a_token_key() {
    // Everything production needs but the key: strong credentials and https webhooks.
    let strong = [
        ("SWML_BASIC_AUTH_USER", BANK_USER),
        ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
        ("SWML_PROXY_URL_BASE", PUBLIC_BASE),
    ];
    let stderr = bank_agent_production_failure(&strong).await;
    assert!(stderr.contains("VOXGUARD_TOKEN_KEY"), "stderr: {stderr}");

    // With the token key but no audit key, production still refuses: an unsigned audit
    // trail could be truncated unnoticed.
    let key = BASE64.encode([0x5a_u8; 32]);
    let mut vars = strong.to_vec();
    vars.push(("VOXGUARD_TOKEN_KEY", key.as_str()));
    let stderr = bank_agent_production_failure(&vars).await;
    assert!(stderr.contains("VOXGUARD_AUDIT_KEY"), "stderr: {stderr}");

    // With the audit key but no records key, production refuses too: its conversation
    // records would have no key to be encrypted under.
    let audit_key = BASE64.encode([0x3c_u8; 32]);
    vars.push(("VOXGUARD_AUDIT_KEY", audit_key.as_str()));
    let stderr = bank_agent_production_failure(&vars).await;
    assert!(stderr.contains("VOXGUARD_RECORDS_KEY"), "stderr: {stderr}");

    // Strong credentials and every key: it starts, serves, and stops cleanly.
    let records_key = BASE64.encode([0x6b_u8; 32]);
    vars.extend([
        ("VOXGUARD_ENV", "production"),
        ("VOXGUARD_RECORDS_KEY", records_key.as_str()),
    ]);
    let bank = start_bank_agent(&vars).await;
    let client = reqwest::Client::new();
    let response = client
        .get(bank.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .post(bank.url("/"))
        .basic_auth(BANK_USER, Some(BANK_PASSWORD))
        .json(&json!({ "call_id": "prod-call" }))
        .send()
        .await
        .expect("SWML fetch");
    assert_eq!(response.status(), StatusCode::OK);
    // Tokens are signed with the configured key, so a replica holding it accepts them.
    let (_, _, swml) = json_body(response).await;
    // Webhooks point at the public https base, never at the plain-HTTP listener.
    let urls = webhook_urls(&swml);
    assert!(!urls.is_empty(), "{swml}");
    for url in &urls {
        assert_eq!(url.scheme(), "https", "{url}");
        assert_eq!(url.host_str(), Some("agents.example.com"), "{url}");
        assert!(url.path().starts_with("/bank/"), "{url}");
    }
    let token = token_for(&swml, "get_balance").expect("token");
    // The bank agent's ring (its route is `/`; `/bank` is the public base's path), derived
    // from the key as every replica derives it.
    let replica = KeyRing::new(TokenKey::from_base64(&key).expect("key")).for_agent("/");
    replica
        .verify(&token, "prod-call", "get_balance")
        .expect("a replica with the same key accepts the token");
    let (status, stderr) = bank.terminate().await;
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_agent_binary_refuses_plain_http_webhooks_in_production() {
    // Strong credentials and a key, but webhook URLs (which carry the credentials and the
    // function tokens) would be plain HTTP: no TLS, no https public base.
    let key = BASE64.encode([0x5a_u8; 32]);
    let secured = [
        ("SWML_BASIC_AUTH_USER", BANK_USER),
        ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
        ("VOXGUARD_TOKEN_KEY", key.as_str()),
    ];
    let stderr = bank_agent_production_failure(&secured).await;
    assert!(stderr.contains("https"), "stderr: {stderr}");
    assert!(stderr.contains("SWML_PROXY_URL_BASE"), "stderr: {stderr}");

    // An explicit http:// public base is refused the same way, and is not echoed.
    let mut vars = secured.to_vec();
    vars.push(("SWML_PROXY_URL_BASE", "http://plain.example.com/bank"));
    let stderr = bank_agent_production_failure(&vars).await;
    assert!(stderr.contains("https"), "stderr: {stderr}");
    assert!(!stderr.contains("plain.example.com"), "stderr: {stderr}");
    assert!(!stderr.contains(BANK_PASSWORD), "stderr: {stderr}");
}

// ---------------------------------------------------------------------------------------------
// Hardening (issue 9): signed webhooks
// ---------------------------------------------------------------------------------------------

const SIGNING_KEY: &str = "PSKtest1234567890abcdef";

/// A server with `SIGNING_KEY` configured and an SQLite audit trail (returned for inspection).
async fn signed_server(
    runs: &Counter,
) -> (
    TestServer,
    Arc<voxguard::store::SqliteAuditLog>,
    tempfile::TempDir,
) {
    use voxguard::store::{AuditSink, Durability, SqliteAuditLog};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(
        SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, None, 5)
            .await
            .expect("audit log"),
    );
    let sink: Arc<dyn AuditSink> = log.clone();
    let server = TestServer::start_with(
        vec![root_agent(runs.clone())],
        |config| {
            config.signing_key = Some(voxguard::guard::SigningKey::new(SIGNING_KEY).expect("key"));
        },
        move |runtime| runtime.audit(sink),
        reqwest::Client::builder(),
    )
    .await;
    (server, log, dir)
}

/// POST `body` to `path` (with `query`) with valid credentials and, when given, `signature`.
async fn post_signed(
    server: &TestServer,
    path_and_query: &str,
    body: &[u8],
    signature: Option<&str>,
) -> reqwest::Response {
    let mut request = server
        .client
        .post(server.url(path_and_query))
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("x-signalwire-signature", signature);
    }
    request.send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_are_required_on_swml_and_checked_when_present_elsewhere() {
    let runs = counter();
    let (server, log, _dir) = signed_server(&runs).await;
    let key = voxguard::guard::SigningKey::new(SIGNING_KEY).expect("key");
    // The URL as the platform called it: the Host reqwest sends, the path, the query.
    let url = |path_and_query: &str| server.url(path_and_query);

    // SWML: unsigned and wrongly signed fetches are refused, GET and POST alike.
    let response = server
        .client
        .get(server.url("/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("request");
    assert_security_headers(response.headers(), "signature refusal");
    expect_refusal(response, StatusCode::FORBIDDEN, "signature_invalid").await;
    let body = serde_json::to_vec(&json!({"call_id": "call-signed"})).expect("json");
    let wrong = key.sign_json(&url("/"), b"{\"call_id\":\"call-other\"}");
    for signature in [None, Some(wrong.as_str()), Some("")] {
        let response = post_signed(&server, "/", &body, signature).await;
        expect_refusal(response, StatusCode::FORBIDDEN, "signature_invalid").await;
    }
    // Correctly signed: served (GET signs the URL and an empty body).
    let response = server
        .client
        .get(server.url("/?x=1"))
        .basic_auth(USER, Some(PASSWORD))
        .header("x-signalwire-signature", key.sign_json(&url("/?x=1"), b""))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let signature = key.sign_json(&url("/"), &body);
    let response = post_signed(&server, "/", &body, Some(&signature)).await;
    let (status, _, swml) = json_body(response).await;
    assert_eq!(status, StatusCode::OK, "{swml}");
    assert!(!webhook_urls(&swml).is_empty());

    // SWAIG and post-prompt: an unsigned call passes on Basic auth, a wrong signature never
    // reaches the handler, a right one (over the URL with its query) does.
    let call = serde_json::to_vec(&swaig_body("ping", "call-signed")).expect("json");
    let response = post_signed(&server, "/swaig", &call, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(&runs), 1);
    let for_other_path = key.sign_json(&url("/post_prompt"), &call);
    for path in ["/swaig", "/swaig?__token=abc", "/post_prompt"] {
        let response = post_signed(&server, path, &call, Some(&for_other_path)).await;
        // The signature is right for /post_prompt: the request gets past it to the next
        // check (the summary's function token, which this call does not carry).
        let reason = if path == "/post_prompt" {
            "token_missing"
        } else {
            "signature_invalid"
        };
        expect_refusal(response, StatusCode::FORBIDDEN, reason).await;
    }
    assert_eq!(count(&runs), 1, "no refused call ran a handler");
    let signed = key.sign_json(&url("/swaig?__token=abc"), &call);
    let response = post_signed(&server, "/swaig?__token=abc", &call, Some(&signed)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(&runs), 2);

    // Refusals are on record as refused authentications with reason signature_invalid.
    let records = log.records(1).await.expect("records");
    let refused = records
        .iter()
        .filter(|r| r.event.reason.as_deref() == Some("signature_invalid"))
        .collect::<Vec<_>>();
    assert!(!refused.is_empty(), "signature refusals are audited");
    assert!(refused
        .iter()
        .all(|r| r.event.kind.as_str() == "auth_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_signing_key_signatures_are_not_checked() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    let call = serde_json::to_vec(&swaig_body("ping", "call-unsigned")).expect("json");
    let response = post_signed(&server, "/swaig", &call, Some("bogus")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count(&runs), 1);
}

// ---------------------------------------------------------------------------------------------
// Hardening (issue 9): aggregated authentication failures
// ---------------------------------------------------------------------------------------------

/// The `auth_failed` records of `log` with their `arguments.count`.
async fn auth_failure_counts(log: &voxguard::store::SqliteAuditLog) -> Vec<u64> {
    log.records(1)
        .await
        .expect("records")
        .iter()
        .filter(|r| r.event.kind.as_str() == "auth_failed")
        .map(|r| {
            r.event
                .arguments
                .as_ref()
                .and_then(|a| a["count"].as_u64())
                .expect("an auth_failed record carries its count")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_anonymous_401s_make_a_bounded_number_of_records_that_add_up() {
    use voxguard::guard::ManualClock;
    use voxguard::store::{AuditSink, Durability, SqliteAuditLog};
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(
        SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, None, 5)
            .await
            .expect("audit log"),
    );
    let sink: Arc<dyn AuditSink> = log.clone();
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let runtime_clock = clock.clone();
    let runs = counter();
    let server = TestServer::start_with(
        vec![root_agent(runs.clone())],
        |_| {},
        move |runtime| runtime.audit(sink).clock(runtime_clock),
        reqwest::Client::builder(),
    )
    .await;
    let send = |n: usize| {
        let futures = (0..n).map(|_| {
            server
                .client
                .post(server.url("/swaig"))
                .json(&swaig_body("ping", "call-anon"))
                .send()
        });
        futures_util::future::join_all(futures)
    };
    let mut sent = 0u64;
    for _ in 0..20 {
        for response in send(50).await {
            assert_eq!(
                response.expect("request").status(),
                StatusCode::UNAUTHORIZED
            );
            sent += 1;
        }
    }
    assert_eq!(sent, 1000);
    assert_eq!(
        auth_failure_counts(&log).await,
        vec![1],
        "the first failure is on record at once, the rest are counted"
    );
    // The next failure after the window writes the count, then opens a new window.
    clock.advance(Duration::from_secs(61));
    let response = send(1).await.pop().expect("one").expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    sent += 1;
    let counts = auth_failure_counts(&log).await;
    assert!(counts.len() <= 3, "bounded: {counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), sent, "{counts:?}");
    // Counted failures still pending at shutdown are written then.
    for response in send(5).await {
        assert_eq!(
            response.expect("request").status(),
            StatusCode::UNAUTHORIZED
        );
        sent += 1;
    }
    server.stop().await;
    let counts = auth_failure_counts(&log).await;
    assert!(counts.len() <= 4, "bounded: {counts:?}");
    assert_eq!(counts.iter().sum::<u64>(), sent, "{counts:?}");
    assert_eq!(count(&runs), 0);
}

// ---------------------------------------------------------------------------------------------
// Hardening (issue 9): the per-address cap counts waiting connections, not work in progress
// ---------------------------------------------------------------------------------------------

/// A tool that waits until `expected` calls are in progress at once (bounded by
/// [`EVENTUALLY`]), and counts the calls that saw all of them.
fn rendezvous_tool(expected: usize, arrived: Counter, saw_all: Counter) -> Tool {
    Tool::untyped(
        "gather",
        "Waits for the others",
        empty_schema(),
        move |_args, _ctx| {
            let arrived = arrived.clone();
            let saw_all = saw_all.clone();
            async move {
                arrived.fetch_add(1, Ordering::SeqCst);
                let deadline = Instant::now() + EVENTUALLY;
                while arrived.load(Ordering::SeqCst) < expected && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if arrived.load(Ordering::SeqCst) >= expected {
                    saw_all.fetch_add(1, Ordering::SeqCst);
                }
                Ok(FunctionResult::new("gathered"))
            }
        },
    )
    .secure(false)
}

/// POST `n` calls of the rendezvous tool (`gather`) to `path` at once, and check that every
/// one was answered 200.
async fn gather_at_once(server: &TestServer, path: &str, n: usize) {
    let requests = (0..n).map(|i| {
        server
            .client
            .post(server.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .json(&swaig_body("gather", &format!("call-{i}")))
            .send()
    });
    let responses = tokio::time::timeout(EVENTUALLY * 3, futures_util::future::join_all(requests))
        .await
        .expect("every request is answered");
    assert_eq!(responses.len(), n);
    for response in responses {
        let response = response.expect("a request from the busy address was dropped");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_from_one_address_are_served_at_defaults() {
    const N: usize = 1000;
    let (arrived, saw_all) = (counter(), counter());
    let server = TestServer::start(
        vec![agent(
            "/",
            vec![rendezvous_tool(N, arrived.clone(), saw_all.clone())],
        )],
        |config| {
            // The defaults are what is under test.
            assert_eq!(config.max_connections_per_ip, 128);
            assert!(config.max_connections > N);
        },
    )
    .await;
    gather_at_once(&server, "/swaig", N).await;
    assert_eq!(count(&arrived), N);
    assert_eq!(count(&saw_all), N, "all {N} were in progress at once");
}

/// A new connection (from `from`, another loopback address, when given) that has sent
/// `GET /health`, for the caller to read the answer from.
async fn health_request(server: &TestServer, from: Option<&str>) -> TcpStream {
    let mut stream = match from {
        None => TcpStream::connect(server.addr).await.expect("connect"),
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(format!("{ip}:0").parse().expect("addr"))
                .expect("bind a loopback address");
            socket.connect(server.addr).await.expect("connect")
        }
    };
    stream
        .write_all(format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr).as_bytes())
        .await
        .expect("send");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_are_still_capped() {
    let runs = counter();
    // The header timeout bounds both how long the silent connections are kept and how long a
    // connection over the cap waits for a slot. It is raised from the default 5 s so that a
    // loaded machine (other tests building and running beside this one) cannot let the
    // silent connections time out before the fourth is probed.
    let server = TestServer::start(vec![root_agent(runs.clone())], |config| {
        config.max_connections_per_ip = 3;
        config.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    // Three silent connections fill the address's waiting slots.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    // A fourth sends a complete request but is not served while they wait. (This bounds
    // nothing from above: a slower machine only makes it more true.)
    let mut fourth = health_request(&server, None).await;
    let mut probe = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), fourth.read(&mut probe)).await;
    assert!(
        early.is_err(),
        "the fourth connection was answered or closed while the cap of 3 was full; it must wait for a slot"
    );
    // When a silent connection leaves, its slot goes to the waiting one, which is served.
    drop(silent.remove(0));
    assert_eq!(read_response(&mut fourth).await.status, 200);
    drop(silent);
}

/// A records-API server (the records API and the console read a body before they know who is
/// calling) with `tweak` applied.
async fn records_server(kit: &RecordsKit, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let sink = kit.sink();
    let records = kit.config();
    TestServer::start_with(
        vec![root_agent(counter())],
        tweak,
        move |runtime| runtime.audit(sink).records(records),
        reqwest::Client::builder(),
    )
    .await
}

/// The head of a records request whose 16,000-byte body the client then drips.
fn dripping_records_request(server: &TestServer) -> String {
    format!(
        "POST /records/subjects HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 16000\r\n\r\n{{",
        server.addr
    )
}

/// Review finding: a body dripped to the records API without credentials held a connection
/// slot for the whole request timeout and did not count against its address's cap, so one
/// address could hold every slot. Until its body is read, such a request counts as waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_read_before_authentication_count_against_their_address() {
    let kit = RecordsKit::new().await;
    let server = records_server(&kit, |config| {
        config.max_connections_per_ip = 3;
        config.header_read_timeout = Duration::from_secs(30);
        config.request_timeout = Duration::from_secs(120);
    })
    .await;
    let mut dripping = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(dripping_records_request(&server).as_bytes())
            .await
            .expect("send");
        dripping.push(stream);
    }
    let mut fourth = health_request(&server, None).await;
    let mut probe = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), fourth.read(&mut probe)).await;
    assert!(
        early.is_err(),
        "the fourth connection was served while three unauthenticated bodies held the cap of 3"
    );
    // Another address is served meanwhile; when one dripping connection goes, the fourth is.
    let mut other = health_request(&server, Some("127.0.0.2")).await;
    assert_eq!(read_response(&mut other).await.status, 200);
    drop(dripping.remove(0));
    assert_eq!(read_response(&mut fourth).await.status, 200);
}

/// Review finding: with the records API (and console) off, an agent may take `/records` as its
/// route; its requests are the agent's, marked busy at their head like any other, so one
/// address can have more of them in progress than its cap of waiting connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_a_records_path_is_not_held_to_the_waiting_cap() {
    const N: usize = 8;
    let (arrived, saw_all) = (counter(), counter());
    let server = TestServer::start(
        vec![agent(
            "/records",
            vec![rendezvous_tool(N, arrived.clone(), saw_all.clone())],
        )],
        |config| config.max_connections_per_ip = 2,
    )
    .await;
    gather_at_once(&server, "/records/swaig", N).await;
    assert_eq!(count(&saw_all), N, "all {N} were in progress at once");
}

/// The same body must arrive within the header-read timeout, as a request head must: it is
/// refused `request_timeout` then, long before the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_read_before_authentication_must_arrive_in_time() {
    let kit = RecordsKit::new().await;
    let server = records_server(&kit, |config| {
        config.header_read_timeout = Duration::from_millis(500);
        config.request_timeout = Duration::from_secs(600);
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(dripping_records_request(&server).as_bytes())
        .await
        .expect("send");
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.json()["error"], "request_timeout");
}

/// Review finding: connections queued over their address's cap must not hold the global
/// connection slots, or one address could keep every other client out until they time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_connections_of_one_address_do_not_hold_the_global_slots() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |config| {
        config.max_connections = 40;
        config.max_connections_per_ip = 4;
        // Long enough that a starved client would wait far past the bound below.
        config.header_read_timeout = Duration::from_secs(120);
    })
    .await;
    // 60 silent connections from 127.0.0.1: 4 counted, the rest queued over the cap.
    let mut silent = Vec::new();
    for _ in 0..60 {
        silent.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another address on the loopback network is served while they sit there.
    let mut other = health_request(&server, Some("127.0.0.2")).await;
    let answered = tokio::time::timeout(EVENTUALLY, read_response(&mut other)).await;
    assert_eq!(
        answered
            .expect("served long before the silent connections time out")
            .status,
        200
    );
    drop(silent);
}

// ---------------------------------------------------------------------------------------------
// Hardening (issue 9): the errors hyper answers by itself are JSON with the security headers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_too_long_and_too_large_requests_get_json_and_security_headers() {
    let runs = counter();
    let server = TestServer::start(vec![root_agent(runs.clone())], |_| {}).await;
    let host = server.addr;
    let long_target = format!("/{}", "a".repeat(70_000));
    let many_headers: String = (0..150).map(|i| format!("X-Filler-{i}: x\r\n")).collect();
    for (request, status, reason) in [
        (
            "GET / HTTP/1.1 extra\r\n\r\n".to_string(),
            400,
            "bad_request",
        ),
        (
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\nBad Header\r\n\r\n"),
            400,
            "bad_request",
        ),
        (
            format!("GET {long_target} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
    ] {
        let response = raw_exchange(server.addr, request.as_bytes()).await;
        assert_eq!(response.status, status, "{reason}");
        assert!(
            response
                .header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{reason}: {:?}",
            response.headers
        );
        let body = response.json();
        assert_eq!(body["error"], reason);
        assert!(body["response"].as_str().is_some_and(|s| !s.is_empty()));
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(response.header(name), Some(value), "{reason}: {name}");
        }
        assert!(response.header("x-request-id").is_some(), "{reason}");
    }
    assert_eq!(count(&runs), 0);
    assert_still_serving(&server, &runs).await;
}
