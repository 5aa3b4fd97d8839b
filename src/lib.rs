//! Reference agents (`examples/`) and end-to-end tests (`tests/`) for voxguard.
//!
//! This library is the shared test kit: it starts a real voxguard server on `127.0.0.1:0`
//! in-process ([`TestServer::start`]) and speaks real HTTP to it with helpers for the SWML
//! fetch and SWAIG calls. It holds no product logic.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bank_process;

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use voxguard::guard::{BasicCredentials, KeyRing, TokenKey};
use voxguard::server::ServerConfig;
use voxguard::{Agent, Runtime};

/// User name of every test server.
pub const USER: &str = "tester";
/// Password of every test server (32 characters).
pub const PASSWORD: &str = "correct-horse-battery-staple-123";

/// A voxguard server running in this process on an ephemeral port.
pub struct TestServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The token keys the server uses (to mint tokens the way a replica would).
    pub keys: KeyRing,
    /// An HTTP client (accepts the test certificate when TLS is on).
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Start `agents` with test credentials, a fresh token key, and `tweak` applied to the
    /// server configuration.
    pub async fn start(agents: Vec<Agent>, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_with(agents, tweak, |runtime| runtime, reqwest::Client::builder()).await
    }

    /// Like [`TestServer::start`], also adjusting the runtime (e.g. its store) and the client.
    pub async fn start_with(
        agents: Vec<Agent>,
        tweak: impl FnOnce(&mut ServerConfig),
        runtime_tweak: impl FnOnce(Runtime) -> Runtime,
        client: reqwest::ClientBuilder,
    ) -> Self {
        let keys = KeyRing::new(TokenKey::generate());
        Self::launch(agents, keys, tweak, runtime_tweak, client).await
    }

    /// Start `agents` with an explicit token key ring (rotation tests, replicas sharing a key).
    pub async fn start_with_keys(agents: Vec<Agent>, keys: KeyRing) -> Self {
        Self::launch(
            agents,
            keys,
            |_| {},
            |runtime| runtime,
            reqwest::Client::builder(),
        )
        .await
    }

    async fn launch(
        agents: Vec<Agent>,
        keys: KeyRing,
        tweak: impl FnOnce(&mut ServerConfig),
        runtime_tweak: impl FnOnce(Runtime) -> Runtime,
        client: reqwest::ClientBuilder,
    ) -> Self {
        let mut config = ServerConfig::new(BasicCredentials::new(USER, PASSWORD));
        tweak(&mut config);
        let mut runtime = Runtime::new(config, keys.clone());
        for agent in agents {
            runtime = runtime.agent(agent);
        }
        let running = runtime_tweak(runtime).bind().await.expect("server binds");
        let addr = running.local_addr();
        let scheme = running.scheme();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(running.serve_until(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            scheme,
            keys,
            client: client.build().expect("client builds"),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        let host = if self.scheme == "https" {
            "localhost".to_string()
        } else {
            self.addr.ip().to_string()
        };
        format!("{}://{}:{}{}", self.scheme, host, self.addr.port(), path)
    }

    /// POST the SWML fetch for `call_id` to `route` with valid credentials; returns the document.
    pub async fn swml(&self, route: &str, call_id: &str) -> Value {
        let response = self
            .client
            .post(self.url(route))
            .basic_auth(USER, Some(PASSWORD))
            .json(&json!({ "call_id": call_id, "call": { "from": "+15551234567" } }))
            .send()
            .await
            .expect("swml request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("swml json")
    }

    /// POST a SWAIG call to `{route}/swaig` with valid credentials and `token` (if any).
    pub async fn swaig(
        &self,
        route: &str,
        function: &str,
        call_id: &str,
        caller: &str,
        args: Value,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let body = json!({
            "function": function,
            "call_id": call_id,
            "caller_id_num": caller,
            "argument": { "parsed": [args], "raw": "" },
        });
        self.post_json(&swaig_path(route, token), body).await
    }

    /// POST `body` to `path` with valid credentials; returns status and JSON body.
    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .basic_auth(USER, Some(PASSWORD))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stop the server gracefully and wait for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// `{route}/swaig` with `__token` when given.
pub fn swaig_path(route: &str, token: Option<&str>) -> String {
    let swaig = voxguard::server::AgentRoutes::new(route)
        .swaig()
        .to_string();
    match token {
        Some(token) => format!("{swaig}?__token={token}"),
        None => swaig,
    }
}

/// The SWAIG function list of a rendered SWML document.
pub fn functions(swml: &Value) -> Vec<Value> {
    swml["sections"]["main"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|verb| verb.get("ai"))
        .and_then(|ai| ai["SWAIG"]["functions"].as_array().cloned())
        .unwrap_or_default()
}

/// The token rendered into `function`'s `web_hook_url`.
pub fn token_for(swml: &Value, function: &str) -> Option<String> {
    let functions = functions(swml);
    let url = functions
        .iter()
        .find(|f| f["function"] == function)?
        .get("web_hook_url")?
        .as_str()?;
    let url = reqwest::Url::parse(url).ok()?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "__token")?
        .1
        .into_owned();
    Some(token)
}

/// Path to the official SWML schema in the shared reference folder.
pub fn swml_schema_path() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/reference/swml-schema.json"
    )
    .to_string()
}

/// The README's code blocks compile (doctest only).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// One phone call: a SWML render for `call_id`, and the caller's number on every SWAIG call.
pub struct Call {
    /// The server the call is on.
    pub server: Arc<TestServer>,
    /// The agent's route.
    pub route: String,
    /// The call id.
    pub call_id: String,
    /// The caller's number.
    pub caller: String,
    /// The SWML rendered for this call.
    pub swml: Value,
}

impl Call {
    /// Fetch SWML for `call_id` (a new render, with its own tokens and session).
    pub async fn start(server: &Arc<TestServer>, route: &str, call_id: &str, caller: &str) -> Self {
        let swml = server.swml(route, call_id).await;
        Self {
            server: server.clone(),
            route: route.to_string(),
            call_id: call_id.to_string(),
            caller: caller.to_string(),
            swml,
        }
    }

    /// The token rendered for `function`.
    pub fn token(&self, function: &str) -> String {
        token_for(&self.swml, function)
            .unwrap_or_else(|| panic!("{function} has a token in the SWML"))
    }

    /// Call `function` with this render's token (no token for insecure tools).
    pub async fn invoke(&self, function: &str, args: Value) -> (StatusCode, Value) {
        let token = token_for(&self.swml, function);
        self.server
            .swaig(
                &self.route,
                function,
                &self.call_id,
                &self.caller,
                args,
                token.as_deref(),
            )
            .await
    }

    /// A successful answer (200, no `error`).
    pub async fn ok(&self, function: &str, args: Value) -> Value {
        let (status, reply) = self.invoke(function, args).await;
        assert_eq!(status, StatusCode::OK, "{function}: {reply}");
        assert!(reply.get("error").is_none(), "{function}: {reply}");
        reply
    }

    /// A policy refusal with HTTP 200 and `error: reason`, carrying no action.
    pub async fn refused(&self, function: &str, args: Value, reason: &str) -> Value {
        let (status, reply) = self.invoke(function, args).await;
        assert_refusal(status, &reply, reason);
        reply
    }

    /// The response sentence of a successful call (200, no `error`).
    pub async fn say(&self, function: &str, args: Value) -> String {
        let reply = self.ok(function, args).await;
        reply["response"]
            .as_str()
            .unwrap_or_else(|| panic!("{function} answers a sentence: {reply}"))
            .to_string()
    }
}

/// HTTP 200, `error: reason`, a sentence, and no action.
pub fn assert_refusal(status: StatusCode, reply: &Value, reason: &str) {
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["error"], reason, "{reply}");
    assert!(
        reply["response"]
            .as_str()
            .is_some_and(|s| s.trim().len() > 10),
        "a sentence for the AI: {reply}"
    );
    assert!(reply.get("action").is_none(), "no action: {reply}");
}
