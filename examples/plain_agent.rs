//! A deliberately plain SWML agent, standing for an agent written with an unsecured SDK: the
//! upstream of the gateway benchmark (BENCHMARKS.md, "Gateway (issue 15)"), where the issue
//! asks for a *trivial* upstream. It is not built on voxguard and must never be deployed: it
//! checks no credentials and no token, validates nothing and keeps no audit trail — exactly
//! what `voxguard gateway` is for.
//!
//! Run it with `cargo run --release --example plain_agent`. It prints one line on stdout once it
//! is listening, `plain agent listening on http://127.0.0.1:PORT/`, and serves until killed.
//! `VOXGUARD_HOST` (default 127.0.0.1) and `VOXGUARD_PORT` (default 3000; 0 picks a free port)
//! say where; `BENCH_BACKEND_MS` (default 50) is how long `/slow`'s function waits.
//!
//! - `POST /` (or `GET /`) answers a SWML document with one `ai` verb and two functions with
//!   declared parameters, `verify_pin` and `check_order` — the bench agent's `/fast` pair with
//!   the same arguments, patterns and required fields, limits that the official schema has no
//!   keyword for stated in the descriptions as voxguard renders them — so `voxguard bench`
//!   drives both the same way and a gateway checks the same things in front of each. Each
//!   `web_hook_url` carries a per-call `__token` the way the SDKs render one, which this agent
//!   never checks;
//! - `POST /swaig` parses the SWAIG request and answers a fixed sentence per function;
//! - `POST /slow` (or `GET /slow`) answers a document with one function, `backend_lookup` (the
//!   bench agent's slow tool, same argument), whose webhook `POST /slow/swaig` waits
//!   `BENCH_BACKEND_MS` before its fixed answer: the slow upstream of the gateway benchmark.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let host = std::env::var("VOXGUARD_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = match std::env::var("VOXGUARD_PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| anyhow::anyhow!("VOXGUARD_PORT={port:?} is not a port number"))?,
        Err(_) => 3000,
    };
    // Read as the bench agent reads it: blank or unset is the default.
    let backend: u64 = match std::env::var("BENCH_BACKEND_MS") {
        Ok(ms) if !ms.trim().is_empty() => ms.trim().parse().map_err(|_| {
            anyhow::anyhow!("BENCH_BACKEND_MS={ms:?} is not valid: a whole number of milliseconds")
        })?,
        _ => 50,
    };
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    let addr = listener.local_addr()?;
    let app = app(addr, Duration::from_millis(backend));
    println!("plain agent listening on http://{addr}/");
    axum::serve(listener, app).await?;
    Ok(())
}

/// The agent's routes, its webhook URLs pointing at `addr`; `/slow`'s function waits `backend`.
pub fn app(addr: SocketAddr, backend: Duration) -> axum::Router {
    axum::Router::new()
        .route("/", get(swml).post(swml))
        .route("/swaig", post(swaig))
        .route("/slow", get(slow_swml).post(slow_swml))
        .route(
            "/slow/swaig",
            post(move |body: axum::body::Bytes| async move {
                // Parsed like `/swaig`'s, so both handlers do the same work.
                let _request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                tokio::time::sleep(backend).await;
                Json(json!({ "response": "The customer has no open tickets." }))
            }),
        )
        .with_state(addr)
}

/// The URL-safe characters of the call id a SWML request names, for the per-call tokens.
fn call_id(body: &[u8]) -> String {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    request["call_id"]
        .as_str()
        .unwrap_or("none")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect()
}

/// The `/slow` document: `backend_lookup`, its webhook waiting `BENCH_BACKEND_MS`.
async fn slow_swml(State(addr): State<SocketAddr>, body: axum::body::Bytes) -> Json<Value> {
    let call_id = call_id(&body);
    Json(json!({
        "version": "1.0.0",
        "sections": {"main": [
            {"answer": {}},
            {"ai": {
                "prompt": {"text": "You look customers up in the CRM."},
                "SWAIG": {"functions": [
                    {"function": "backend_lookup", "description": "Look up a customer's account in the CRM by customer reference",
                     "parameters": {"type": "object",
                        "properties": {"customer_ref": {"type": "string", "description": "Customer reference, C followed by 4 to 12 digits.", "pattern": "^C[0-9]{4,12}$"}},
                        "required": ["customer_ref"]},
                     "web_hook_url": format!("http://{addr}/slow/swaig?__token=plain-{call_id}-backend_lookup")}
                ]}
            }}
        ]}
    }))
}

/// The SWML document: the call id (when the request names one) goes into each function's token,
/// as an SDK's per-call token would.
async fn swml(State(addr): State<SocketAddr>, body: axum::body::Bytes) -> Json<Value> {
    let call_id = call_id(&body);
    let hook = |function: &str| format!("http://{addr}/swaig?__token=plain-{call_id}-{function}");
    Json(json!({
        "version": "1.0.0",
        "sections": {"main": [
            {"answer": {}},
            {"ai": {
                "prompt": {"text": "You help callers with their orders."},
                "SWAIG": {"functions": [
                    {"function": "verify_pin", "description": "Verify the caller's PIN",
                     "parameters": {"type": "object",
                        "properties": {"pin": {"type": "string", "description": "four to eight digits", "pattern": "^[0-9]{4,8}$"}},
                        "required": ["pin"]},
                     "web_hook_url": hook("verify_pin")},
                    {"function": "check_order", "description": "Look up an order",
                     "parameters": {"type": "object",
                        "properties": {
                            "order_number": {"type": "string", "description": "Order number, e.g. ORD-12345.", "pattern": "^ORD-[0-9]{5,10}$"},
                            "amount": {"type": "number", "description": "Order amount in dollars, more than 0, at most two decimal places."},
                            "note": {"type": "string", "description": "What the caller said about the order, at most 200 characters."}},
                        "required": ["order_number", "amount", "note"]},
                     "web_hook_url": hook("check_order")}
                ]}
            }}
        ]}
    }))
}

/// A SWAIG call: whatever arrives, a fixed answer per function.
async fn swaig(body: axum::body::Bytes) -> Json<Value> {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = match request["function"].as_str() {
        Some("verify_pin") => "The caller is verified.",
        Some("check_order") => "The order shipped yesterday.",
        _ => "I cannot help with that.",
    };
    Json(json!({ "response": response }))
}
