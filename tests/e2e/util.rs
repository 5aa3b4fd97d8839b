//! Helpers shared by the end-to-end modules: the reference test kit (`src/lib.rs`), plus the
//! counting tools several modules use to prove whether a handler ran.

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
        use voxguard::store::{Durability, SqliteAuditLog, SqliteRecordStore};
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = Arc::new(
            SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, None, 50)
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
