//! Deliberately weak SWML/SWAIG agents for the `probe` tests, served by axum on port 0 inside
//! the test process. Each weakness is a switch ([`Weak`]): no token check, no argument
//! validation, no body limit, no security headers, errors that leak a traceback, token
//! refusals answered 200, no authentication on the webhook. The agent counts the requests
//! that would be a real run (a valid token with arguments its schema accepts), so the tests
//! can prove the probe sends none without `--allow-calls` — but only by the agent's own schema,
//! the probe's filter; the lax agent ([`start_lax`]) counts every side effect instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};

/// The weak agent's Basic user.
pub const WEAK_USER: &str = "weak-user";
/// The weak agent's Basic password.
pub const WEAK_PASSWORD: &str = "weak-password-0123456789";
/// The secret its tokens are made of.
const TOKEN_SECRET: &str = "weak-token-secret";

/// Which defences the agent has (`true` = present).
#[derive(Debug, Clone, Copy)]
pub struct Weak {
    /// Checks the function token.
    pub token_check: bool,
    /// Validates the arguments against the declared schema.
    pub validation: bool,
    /// Refuses bodies over 1 MiB with 413.
    pub body_limit: bool,
    /// Sends Cache-Control: no-store and X-Content-Type-Options: nosniff.
    pub headers: bool,
    /// Answers malformed JSON with a generic 400 (else a 500 with a Python traceback).
    pub generic_errors: bool,
    /// Answers token refusals with 403 (else 200 with an error).
    pub refusal_403: bool,
    /// Requires Basic credentials on the webhook.
    pub webhook_auth: bool,
    /// Renders its webhooks on this `host:port` instead of its own (e.g. an unreachable one).
    pub webhook_host: Option<&'static str>,
    /// Puts the function token in the webhook path (`/swaig/<token>`) instead of `__token`.
    pub path_token: bool,
}

impl Weak {
    /// Every defence on.
    pub fn strong() -> Self {
        Self {
            token_check: true,
            validation: true,
            body_limit: true,
            headers: true,
            generic_errors: true,
            refusal_403: true,
            webhook_auth: true,
            webhook_host: None,
            path_token: false,
        }
    }
}

/// A running weak agent.
pub struct WeakAgent {
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    /// Requests that carried a valid token and valid arguments (a real run on a real agent).
    pub real_runs: Arc<AtomicUsize>,
    /// Times a handler ran.
    pub runs: Arc<AtomicUsize>,
    /// Requests to a token-bearing path (`/swaig/<token>`) that were not a function call with
    /// credentials: a wrong method, malformed JSON, no credentials (the path token leaked).
    pub path_leaks: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WeakAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WeakAgent {
    /// The credentials as the environment of a CLI run.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("SWML_BASIC_AUTH_USER", WEAK_USER),
            ("SWML_BASIC_AUTH_PASSWORD", WEAK_PASSWORD),
        ]
    }
}

struct Shared {
    weak: Weak,
    /// The compiled schema of each function (compiled once: a debug build compiles slowly).
    validators: HashMap<&'static str, jsonschema::Validator>,
    real_runs: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
    path_leaks: Arc<AtomicUsize>,
}

/// The declared parameters of each function.
fn schema(function: &str) -> Option<Value> {
    match function {
        "transfer_funds" => Some(json!({
            "type": "object",
            "properties": {
                "amount": {"type": "number", "minimum": 1, "maximum": 1000},
                "to_account": {"type": "string", "pattern": "^[0-9]{10}$"},
            },
            "required": ["amount", "to_account"],
        })),
        "set_department" => Some(json!({
            "type": "object",
            "properties": {"department": {"type": "string", "enum": ["support", "sales"]}},
            "required": ["department"],
        })),
        _ => None,
    }
}

fn token(call_id: &str, function: &str) -> String {
    format!("{TOKEN_SECRET}-{call_id}-{function}")
}

fn authorized(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| pair == format!("{WEAK_USER}:{WEAK_PASSWORD}"))
}

fn answer(shared: &Shared, status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if shared.weak.headers {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        );
    }
    response
}

async fn swml(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return answer(&shared, StatusCode::UNAUTHORIZED, "{}".into());
    }
    let host = match shared.weak.webhook_host {
        Some(host) => host.to_string(),
        None => headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string(),
    };
    let path_token = shared.weak.path_token;
    let call_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("call_id").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "no-call".into());
    let functions: Vec<Value> = ["transfer_funds", "set_department"]
        .iter()
        .map(|name| {
            json!({
                "function": name,
                "description": format!("{name} (weak)"),
                "parameters": schema(name),
                "web_hook_url": if path_token {
                    format!(
                        "http://{WEAK_USER}:{WEAK_PASSWORD}@{host}/swaig/{}",
                        token(&call_id, name)
                    )
                } else {
                    format!(
                        "http://{WEAK_USER}:{WEAK_PASSWORD}@{host}/swaig?__token={}",
                        token(&call_id, name)
                    )
                },
            })
        })
        .collect();
    let document = json!({"version": "1.0.0", "sections": {"main": [
        {"answer": {}},
        {"ai": {"prompt": {"text": "weak"}, "SWAIG": {"functions": functions}}},
    ]}});
    answer(&shared, StatusCode::OK, document.to_string())
}

async fn swaig(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&shared, query.get("__token").cloned(), &headers, &body)
}

/// `/swaig/<token>`: any request that is not a JSON call with credentials carried the token
/// where it must not go.
async fn swaig_path(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) || serde_json::from_slice::<Value>(&body).is_err() {
        shared.path_leaks.fetch_add(1, Ordering::SeqCst);
    }
    handle(&shared, Some(path), &headers, &body)
}

/// Any other method on `/swaig/<token>`.
async fn path_leak(State(shared): State<Arc<Shared>>) -> Response {
    shared.path_leaks.fetch_add(1, Ordering::SeqCst);
    answer(&shared, StatusCode::METHOD_NOT_ALLOWED, "{}".into())
}

fn handle(shared: &Shared, given: Option<String>, headers: &HeaderMap, body: &Bytes) -> Response {
    let weak = shared.weak;
    if weak.webhook_auth && !authorized(headers) {
        return answer(shared, StatusCode::UNAUTHORIZED, "{}".into());
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return if weak.generic_errors {
            answer(
                shared,
                StatusCode::BAD_REQUEST,
                json!({"error": "malformed_json"}).to_string(),
            )
        } else {
            answer(
                shared,
                StatusCode::INTERNAL_SERVER_ERROR,
                "Traceback (most recent call last):\n  File \"/srv/agent/app.py\", line 42, in swaig\njson.decoder.JSONDecodeError: Expecting value".into(),
            )
        };
    };
    let function = request["function"].as_str().unwrap_or_default().to_string();
    let Some(validator) = shared.validators.get(function.as_str()) else {
        return answer(
            shared,
            StatusCode::NOT_FOUND,
            json!({"error": "unknown_function"}).to_string(),
        );
    };
    let call_id = request["call_id"].as_str().unwrap_or_default();
    let args = request["argument"]["parsed"][0].clone();
    let token_ok = given == Some(token(call_id, &function));
    let args_ok = validator.is_valid(&args);
    if token_ok && args_ok {
        shared.real_runs.fetch_add(1, Ordering::SeqCst);
    }
    if weak.token_check && !token_ok {
        let status = if weak.refusal_403 {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        let refusal = json!({"error": "token_invalid", "response": "Bad token."});
        return answer(shared, status, refusal.to_string());
    }
    if weak.validation && !args_ok {
        let refusal = json!({"error": "invalid_argument", "response": "Invalid."});
        return answer(shared, StatusCode::OK, refusal.to_string());
    }
    shared.runs.fetch_add(1, Ordering::SeqCst);
    answer(
        shared,
        StatusCode::OK,
        json!({"response": format!("{function} done")}).to_string(),
    )
}

/// A lax agent, as many are written: no token check, no body limit, no webhook
/// authentication, no schema validation — it coerces types the way a dynamic language does
/// (a numeric string or a boolean is a number, anything is an account number), acts on any
/// truthy `confirmed`, and has a parameterless function that acts on every call. Every side
/// effect counts, whatever the probe thinks of the arguments.
pub struct LaxAgent {
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    /// Side effects (money moved, an account closed).
    pub side_effects: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LaxAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LaxAgent {
    /// The credentials of its SWML route as the environment of a CLI run.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("SWML_BASIC_AUTH_USER", WEAK_USER),
            ("SWML_BASIC_AUTH_PASSWORD", WEAK_PASSWORD),
        ]
    }
}

/// A number the way a lax handler reads it (`float(x)`).
fn lax_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Truthiness the way a dynamic language sees it.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

async fn lax_swml(headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return (StatusCode::UNAUTHORIZED, "{}").into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let call_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("call_id").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "no-call".into());
    let url = |name: &str| format!("http://{host}/swaig?__token=lax-{call_id}-{name}");
    let functions = json!([
        {
            "function": "close_account",
            "description": "Close the caller's account (no parameters)",
            "parameters": {"type": "object", "properties": {}},
            "web_hook_url": url("close_account"),
        },
        {
            "function": "transfer_funds",
            "description": "Move money",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number", "minimum": 1, "maximum": 1000},
                    "to_account": {"type": "string", "pattern": "^[0-9]{10}$"},
                    "confirmed": {"type": "boolean"},
                },
                "required": ["amount", "to_account", "confirmed"],
            },
            "web_hook_url": url("transfer_funds"),
        },
    ]);
    let document = json!({"version": "1.0.0", "sections": {"main": [
        {"answer": {}},
        {"ai": {"prompt": {"text": "lax"}, "SWAIG": {"functions": functions}}},
    ]}});
    (StatusCode::OK, document.to_string()).into_response()
}

async fn lax_swaig(State(side_effects): State<Arc<AtomicUsize>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let done = |what: &str| {
        side_effects.fetch_add(1, Ordering::SeqCst);
        let reply = json!({"response": what, "action": [{"say": what}]});
        (StatusCode::OK, reply.to_string()).into_response()
    };
    let args = &request["argument"]["parsed"][0];
    match request["function"].as_str() {
        Some("close_account") => done("account closed"),
        Some("transfer_funds") => {
            // float(args["amount"]), str(args["to_account"]): anything else raises (500).
            let amount = lax_number(&args["amount"]);
            let account = match &args["to_account"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            match (amount, account) {
                (Some(_), Some(_)) if truthy(&args["confirmed"]) => done("transferred"),
                (Some(_), Some(_)) => (
                    StatusCode::OK,
                    json!({"response": "Please confirm."}).to_string(),
                )
                    .into_response(),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
            }
        }
        _ => (StatusCode::NOT_FOUND, "{}").into_response(),
    }
}

/// Start a lax agent on 127.0.0.1, port 0.
pub async fn start_lax() -> LaxAgent {
    let side_effects = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/", post(lax_swml))
        .route("/swaig", post(lax_swaig))
        .layer(DefaultBodyLimit::disable())
        .with_state(side_effects.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    LaxAgent {
        base: format!("http://{addr}/"),
        side_effects,
        task,
    }
}

/// Start a weak agent on 127.0.0.1, port 0.
pub async fn start(weak: Weak) -> WeakAgent {
    let real_runs = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let path_leaks = Arc::new(AtomicUsize::new(0));
    let validators = ["transfer_funds", "set_department"]
        .into_iter()
        .filter_map(|name| {
            let schema = schema(name)?;
            Some((
                name,
                jsonschema::validator_for(&schema).expect("schema compiles"),
            ))
        })
        .collect();
    let shared = Arc::new(Shared {
        weak,
        validators,
        real_runs: real_runs.clone(),
        runs: runs.clone(),
        path_leaks: path_leaks.clone(),
    });
    let limit = if weak.body_limit {
        DefaultBodyLimit::max(1024 * 1024)
    } else {
        DefaultBodyLimit::disable()
    };
    let app = Router::new()
        .route("/", post(swml))
        .route("/swaig", post(swaig))
        .route("/swaig/{token}", post(swaig_path).fallback(path_leak))
        .layer(limit)
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    WeakAgent {
        base: format!("http://{addr}/"),
        real_runs,
        runs,
        path_leaks,
        task,
    }
}
