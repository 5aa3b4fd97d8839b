//! Helpers shared by the end-to-end modules: the reference test kit (`src/lib.rs`), plus the
//! counting tools several modules use to prove whether a handler ran, the records kit (a data
//! directory with records, audit trail and operators, and an HTTP client for `/records`), and
//! the reference clinic agent as a child process. Helpers must not assert product behaviour
//! beyond what they need to run (the tests do that).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use voxguard::prelude::*;
use voxguard::Compliance;
pub use voxguard_reference::*;

/// How many times a handler ran.
pub type Counter = Arc<AtomicUsize>;

/// A fresh counter at 0.
pub fn counter() -> Counter {
    Arc::new(AtomicUsize::new(0))
}

/// The counter's value.
pub fn count(counter: &Counter) -> usize {
    counter.load(Ordering::SeqCst)
}

/// An object schema without properties.
pub fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// An untyped, secure tool without arguments that counts its runs and answers `"{name} ran."`.
pub fn counting_tool(name: &str, runs: &Counter) -> Tool {
    let runs = runs.clone();
    let reply = format!("{name} ran.");
    Tool::untyped(
        name,
        format!("Test tool {name}"),
        empty_schema(),
        move |_args, _ctx| {
            let runs = runs.clone();
            let reply = reply.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(FunctionResult::new(reply))
            }
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Conversation records (issue 10): a records database, its audit trail and operators
// ---------------------------------------------------------------------------------------------

/// The records key of the records tests (base64 of 32 bytes).
pub const RECORDS_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A data directory with a records database and an audit trail, plus a library `Records`
/// handle on them (for adding operators and computing masked subjects), audited to the same
/// trail the server writes to.
pub struct RecordsKit {
    /// The data directory (records.db, audit.db, voxguard.db).
    pub dir: tempfile::TempDir,
    /// The audit trail the runtime and the handle write to.
    pub audit: Arc<voxguard::store::SqliteAuditLog>,
    /// The records database.
    pub store: Arc<voxguard::store::SqliteRecordStore>,
    /// A records service on the same database (the CLI's view of it).
    pub records: voxguard::Records,
}

impl RecordsKit {
    /// A fresh data directory.
    pub async fn new() -> Self {
        Self::with_audit_key(None).await
    }

    /// A fresh data directory whose audit trail, with `key`, signs a checkpoint every 50
    /// records and at each flush.
    pub async fn with_audit_key(key: Option<voxguard::guard::AuditKey>) -> Self {
        use voxguard::store::{Durability, SqliteAuditLog, SqliteRecordStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = Arc::new(
            SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, key, 50)
                .await
                .expect("audit log"),
        );
        let store = Arc::new(
            SqliteRecordStore::open_in_dir(dir.path())
                .await
                .expect("records store"),
        );
        let sink: Arc<dyn voxguard::store::AuditSink> = audit.clone();
        let records = voxguard::Records::open(self_config(&store), Some(sink), Compliance::NONE);
        Self {
            dir,
            audit,
            store,
            records,
        }
    }

    /// A records configuration on this kit's database and key (for `Runtime::records`).
    pub fn config(&self) -> voxguard::RecordsConfig {
        self_config(&self.store)
    }

    /// The audit sink to give the runtime.
    pub fn sink(&self) -> Arc<dyn voxguard::store::AuditSink> {
        self.audit.clone()
    }

    /// Add operator `name` with `role`; returns its bearer token.
    pub async fn token(&self, name: &str, role: &str) -> String {
        let (_, secret) = self
            .records
            .add_operator(&voxguard::Actor::cli("test"), name, role, false)
            .await
            .expect("operator added");
        secret.to_string()
    }

    /// Add operator `name` with `role`; returns its password.
    pub async fn password(&self, name: &str, role: &str) -> String {
        let (_, secret) = self
            .records
            .add_operator(&voxguard::Actor::cli("test"), name, role, true)
            .await
            .expect("operator added");
        secret.to_string()
    }

    /// The masked subject the audit trail names `subject` by.
    pub fn masked(&self, subject: &str) -> String {
        self.records.subject_ref(subject)
    }

    /// Every audit record so far.
    pub async fn trail(&self) -> Vec<voxguard::guard::AuditRecord> {
        self.audit.records(1).await.expect("audit trail")
    }

    /// The audit events written for the HTTP request `request_id`.
    pub async fn events_of(&self, request_id: &str) -> Vec<voxguard::guard::AuditEvent> {
        self.trail()
            .await
            .into_iter()
            .map(|r| r.event)
            .filter(|e| e.request_id.as_deref() == Some(request_id))
            .collect()
    }

    /// The whole trail as JSON text without the times (which are numbers that may contain
    /// any digits), for "never appears" scans.
    pub async fn trail_text(&self) -> String {
        let events: Vec<Value> = self
            .trail()
            .await
            .iter()
            .map(|r| {
                let mut event = serde_json::to_value(&r.event).expect("json");
                if let Some(map) = event.as_object_mut() {
                    map.remove("time_ms");
                }
                event
            })
            .collect();
        serde_json::to_string(&events).expect("json")
    }
}

fn self_config(store: &Arc<voxguard::store::SqliteRecordStore>) -> voxguard::RecordsConfig {
    voxguard::RecordsConfig::new(store.clone(), RECORDS_KEY, None).expect("records config")
}

/// How an operator request authenticates.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// No `Authorization` header.
    Nothing,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// Basic name:password.
    Basic(&'a str, &'a str),
    /// The header exactly as given.
    Raw(&'a str),
}

/// An answer of the records API.
#[derive(Debug)]
pub struct OpReply {
    /// HTTP status.
    pub status: reqwest::StatusCode,
    /// JSON body (`Null` when not JSON).
    pub body: Value,
    /// `X-Request-Id`, which the audit events of the request carry.
    pub request_id: String,
    /// `WWW-Authenticate`, if any.
    pub challenge: Option<String>,
}

/// Send `method path` to the records API of `server` with `auth` and an optional JSON body.
pub async fn operator_request(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> OpReply {
    let mut request = server.client.request(method, server.url(path));
    request = match auth {
        Auth::Nothing => request,
        Auth::Bearer(token) => request.bearer_auth(token),
        Auth::Basic(name, password) => request.basic_auth(name, Some(password)),
        Auth::Raw(header) => request.header("authorization", header),
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("records request");
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let request_id = header("x-request-id").unwrap_or_default();
    let challenge = header("www-authenticate");
    let body = response.json().await.unwrap_or(Value::Null);
    OpReply {
        status,
        body,
        request_id,
        challenge,
    }
}

/// A summary POST body as the platform sends it at the end of a call.
pub fn summary_body(call_id: &str, caller: &str, raw: &str, call_log: Value) -> Value {
    json!({
        "call_id": call_id,
        "caller_id_num": caller,
        "post_prompt_data": {"raw": raw, "substituted": raw},
        "call_log": call_log,
    })
}

/// POST `body` to the post-prompt URL rendered in `swml` (with its token).
pub async fn post_summary(server: &TestServer, swml: &Value, body: Value) -> (StatusCode, Value) {
    let url = swml["sections"]["main"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|verb| verb.get("ai"))
        .and_then(|ai| ai["post_prompt_url"].as_str())
        .expect("the SWML has a post_prompt_url");
    let url = reqwest::Url::parse(url).expect("post_prompt_url parses");
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    server.post_json(&path, body).await
}

// ---------------------------------------------------------------------------------------------
// The reference clinic agent (`examples/clinic_agent.rs`) as a child process
// ---------------------------------------------------------------------------------------------

/// Basic-auth user the clinic agent child is started with.
pub const CLINIC_USER: &str = "clinic-platform";
/// Basic-auth password the clinic agent child is started with.
pub const CLINIC_PASSWORD: &str = "s3cure-clinic-agent-password-0123456789";
/// The audit key the clinic agent child signs its checkpoints with (base64 of 32 bytes).
pub const CLINIC_AUDIT_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// A `clinic_agent` command on `data_dir` with a clean environment: the test's credentials,
/// records key and audit key, then `vars`.
pub fn clinic_agent_command(
    data_dir: &std::path::Path,
    vars: &[(&str, &str)],
) -> std::process::Command {
    let mut command = bank_process::example_command("clinic_agent", data_dir);
    command
        .env("SWML_BASIC_AUTH_USER", CLINIC_USER)
        .env("SWML_BASIC_AUTH_PASSWORD", CLINIC_PASSWORD)
        .env("VOXGUARD_RECORDS_KEY", RECORDS_KEY)
        .env("VOXGUARD_AUDIT_KEY", CLINIC_AUDIT_KEY)
        .envs(vars.iter().copied());
    command
}

/// A running `clinic_agent` child process.
pub struct ClinicAgent {
    /// The child process.
    pub child: bank_process::ChildGuard,
    /// The announced base URL.
    pub base: reqwest::Url,
    /// An HTTP client.
    pub client: reqwest::Client,
    stderr: std::thread::JoinHandle<String>,
}

/// Add operators to the records database of `dir` before the clinic agent runs there (as
/// `voxguard users add` does), audited to the same trail; returns their bearer tokens.
pub async fn clinic_operators(dir: &std::path::Path, operators: &[(&str, &str)]) -> Vec<String> {
    use voxguard::store::{Durability, SqliteAuditLog, SqliteRecordStore};
    let audit_key = voxguard::guard::AuditKey::from_base64(CLINIC_AUDIT_KEY).expect("audit key");
    let audit = Arc::new(
        SqliteAuditLog::open_in_dir(dir, Durability::Normal, Some(audit_key), 100)
            .await
            .expect("audit log"),
    );
    let store = Arc::new(SqliteRecordStore::open_in_dir(dir).await.expect("records"));
    let sink: Arc<dyn voxguard::store::AuditSink> = audit.clone();
    let records = voxguard::Records::open(self_config(&store), Some(sink), Compliance::NONE);
    let mut tokens = Vec::new();
    for (name, role) in operators {
        let (_, token) = records
            .add_operator(&voxguard::Actor::cli("test"), name, role, false)
            .await
            .expect("operator added");
        tokens.push(token.to_string());
    }
    drop(records);
    let Ok(audit) = Arc::try_unwrap(audit) else {
        panic!("the audit log has no other owner");
    };
    audit.close().await.expect("audit log closed");
    tokens
}

/// Start the clinic agent on `dir` with `vars` and wait for its "listening" line.
pub async fn start_clinic_agent(dir: &std::path::Path, vars: &[(&str, &str)]) -> ClinicAgent {
    let agent =
        bank_process::spawn_announced(clinic_agent_command(dir, vars), "clinic agent").await;
    let base = reqwest::Url::parse(&agent.base).expect("announced URL");
    assert_eq!(base.host_str(), Some("127.0.0.1"));
    ClinicAgent {
        child: agent.child,
        base,
        client: reqwest::Client::new(),
        stderr: agent.stderr,
    }
}

impl ClinicAgent {
    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        self.base.join(path).expect("join").to_string()
    }

    /// The SWML for a call from `caller`.
    pub async fn swml(&self, call_id: &str, caller: &str) -> Value {
        let response = self
            .client
            .post(self.url("/"))
            .basic_auth(CLINIC_USER, Some(CLINIC_PASSWORD))
            .json(&json!({ "call_id": call_id, "call": { "from": caller } }))
            .send()
            .await
            .expect("swml request");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("swml json")
    }

    /// POST `body` to `path_and_query` with the platform's credentials.
    pub async fn post(&self, path_and_query: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path_and_query))
            .basic_auth(CLINIC_USER, Some(CLINIC_PASSWORD))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A records API request with a bearer token; (status, body).
    pub async fn records(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("records request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Send SIGTERM and wait for the exit; returns the status and everything on stderr.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.0.id().to_string();
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid}");
        let status = bank_process::wait_for_exit(&mut self.child.0)
            .await
            .expect("the clinic agent exits after SIGTERM");
        (status, self.stderr.join().unwrap_or_default())
    }
}

/// One phone call to the clinic agent.
pub struct ClinicCall<'a> {
    /// The agent.
    pub agent: &'a ClinicAgent,
    /// The call id.
    pub call_id: String,
    /// The caller's number.
    pub caller: String,
    /// The SWML rendered for the call.
    pub swml: Value,
}

impl<'a> ClinicCall<'a> {
    /// Render the SWML of a new call from `caller`.
    pub async fn start(agent: &'a ClinicAgent, call_id: &str, caller: &str) -> Self {
        let swml = agent.swml(call_id, caller).await;
        Self {
            agent,
            call_id: call_id.to_string(),
            caller: caller.to_string(),
            swml,
        }
    }

    /// Call `function` with this render's token.
    pub async fn invoke(&self, function: &str, args: Value) -> (StatusCode, Value) {
        let token = token_for(&self.swml, function)
            .unwrap_or_else(|| panic!("{function} has a token in the SWML"));
        let body = json!({
            "function": function,
            "call_id": self.call_id,
            "caller_id_num": self.caller,
            "argument": { "parsed": [args], "raw": "" },
        });
        self.agent.post(&swaig_path("/", Some(&token)), body).await
    }

    /// The sentence of a successful call.
    pub async fn say(&self, function: &str, args: Value) -> String {
        let (status, reply) = self.invoke(function, args).await;
        assert_eq!(status, StatusCode::OK, "{function}: {reply}");
        assert!(reply.get("error").is_none(), "{function}: {reply}");
        reply["response"].as_str().unwrap_or_default().to_string()
    }

    /// POST the end-of-call summary with the rendered post-prompt token.
    pub async fn summary(&self, raw: &str, call_log: Value) -> (StatusCode, Value) {
        let url = self.swml["sections"]["main"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|verb| verb.get("ai"))
            .and_then(|ai| ai["post_prompt_url"].as_str())
            .expect("a post_prompt_url");
        let url = reqwest::Url::parse(url).expect("url");
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        self.agent
            .post(
                &path,
                summary_body(&self.call_id, &self.caller, raw, call_log),
            )
            .await
    }
}
