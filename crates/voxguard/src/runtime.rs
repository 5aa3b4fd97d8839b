//! The runtime: configuration, token keys, session store and agents, served by
//! `voxguard-server`.
//!
//! Owns start-up decisions: reading `VOXGUARD_TOKEN_KEY` (and previous keys for rotation),
//! refusing to start in production without strong credentials or a configured key, announcing
//! generated credentials once, and binding each [`Agent`] to the shared [`KeyRing`] and
//! [`SessionStore`] as an [`AgentService`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use voxguard_guard::{Anomaly, AnomalyDetector, AnomalyRules, AuditKey};
use voxguard_guard::{
    Clock, CredentialSource, EmergencyState, EmergencySwitch, InputGuard, KeyError, KeyRing,
    PinVault, SystemClock, TokenKey,
};
use voxguard_server::{
    AccessHooks, AccessRecord, AdminService, AgentService, BoundServer, ConfigError, Metrics,
    Reply, RequestInfo, ServeError, Server, ServerConfig,
};
use voxguard_store::{
    AttemptStore, AuditSink, Durability, MemoryStore, SessionStore, SqliteAuditLog,
};

use crate::agent::Agent;
use crate::audit::{AnomalyCallback, Auditor, AuthEvents};
use crate::dispatch::{self, reasons, valid_call_id};
use crate::render;
use crate::verification::VerifyServices;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Server configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A token key is invalid.
    #[error("{name}: {source}")]
    Key {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        source: KeyError,
    },
    /// Production mode needs a configured token key.
    #[error("VOXGUARD_ENV=production requires VOXGUARD_TOKEN_KEY (base64, at least 32 bytes; e.g. `openssl rand -base64 32`) so that every replica accepts the same tokens")]
    MissingKeyInProduction,
    /// Two agents share a name (names scope sessions and logs).
    #[error("two agents are named {0:?}; give each agent its own name")]
    DuplicateAgent(String),
    /// The audit trail cannot be configured or opened.
    #[error("{0}")]
    Audit(String),
    /// Invalid emergency mode value.
    #[error("VOXGUARD_EMERGENCY_MODE={0:?} is not valid: true or false")]
    InvalidEmergency(String),
    /// Invalid token lifetime.
    #[error("VOXGUARD_TOKEN_TTL_SECS={0:?} is not valid: a whole number of seconds between 60 and 86400")]
    InvalidTtl(String),
    /// The server could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Token keys resolved from the environment.
pub struct KeySettings {
    /// The key ring.
    pub keys: KeyRing,
    /// Whether the current key was generated because none was configured.
    pub generated: bool,
}

/// Read `VOXGUARD_TOKEN_KEY`, `VOXGUARD_TOKEN_KEYS_PREVIOUS` (comma-separated) and
/// `VOXGUARD_TOKEN_TTL_SECS` through `lookup`.
pub fn keys_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
    production: bool,
) -> Result<KeySettings, RuntimeError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (current, generated) = match get("VOXGUARD_TOKEN_KEY") {
        Some(text) => (
            TokenKey::from_base64(&text).map_err(|source| RuntimeError::Key {
                name: "VOXGUARD_TOKEN_KEY",
                source,
            })?,
            false,
        ),
        None if production => return Err(RuntimeError::MissingKeyInProduction),
        None => (TokenKey::generate(), true),
    };
    let mut previous = Vec::new();
    for text in get("VOXGUARD_TOKEN_KEYS_PREVIOUS")
        .iter()
        .flat_map(|v| v.split(','))
    {
        let text = text.trim();
        if !text.is_empty() {
            previous.push(
                TokenKey::from_base64(text).map_err(|source| RuntimeError::Key {
                    name: "VOXGUARD_TOKEN_KEYS_PREVIOUS",
                    source,
                })?,
            );
        }
    }
    let mut keys = KeyRing::new(current).with_previous(previous);
    if let Some(ttl) = get("VOXGUARD_TOKEN_TTL_SECS") {
        match ttl.parse::<u64>() {
            Ok(secs) if (60..=86_400).contains(&secs) => {
                keys = keys.with_ttl(Duration::from_secs(secs))
            }
            _ => return Err(RuntimeError::InvalidTtl(ttl)),
        }
    }
    Ok(KeySettings { keys, generated })
}

/// Open the SQLite audit trail in `dir` (`dir/audit.db`, a database of its own so its
/// durability setting does not slow call sessions), configured by `VOXGUARD_AUDIT_DURABILITY`
/// (`normal`: survives a process crash or `kill -9`; `fsync`: also a power loss, with group
/// commit), `VOXGUARD_AUDIT_KEY` (base64 HMAC key, ≥ 32 bytes, for signed checkpoints that make
/// truncation detectable; required in production) and `VOXGUARD_AUDIT_CHECKPOINT_EVERY`
/// (records between checkpoints, default 100).
pub async fn open_audit_log_from_env(
    dir: impl AsRef<std::path::Path>,
    production: bool,
) -> Result<SqliteAuditLog, RuntimeError> {
    let get = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let durability = match get("VOXGUARD_AUDIT_DURABILITY")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("normal") => Durability::Normal,
        Some("fsync") => Durability::Fsync,
        Some(other) => {
            return Err(RuntimeError::Audit(format!(
                "VOXGUARD_AUDIT_DURABILITY={other:?} is not valid: normal or fsync"
            )))
        }
    };
    let key = match get("VOXGUARD_AUDIT_KEY") {
        Some(text) => Some(
            AuditKey::from_base64(&text)
                .map_err(|e| RuntimeError::Audit(format!("VOXGUARD_AUDIT_KEY: {e}")))?,
        ),
        None if production => {
            return Err(RuntimeError::Audit(
                "VOXGUARD_ENV=production requires VOXGUARD_AUDIT_KEY (base64, at least 32 bytes) so that truncating the audit trail is detectable".into(),
            ))
        }
        None => {
            tracing::warn!("VOXGUARD_AUDIT_KEY is not set: audit checkpoints are not signed, so deleting the newest audit records would go unnoticed");
            None
        }
    };
    let every = match get("VOXGUARD_AUDIT_CHECKPOINT_EVERY") {
        None => 100,
        Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            RuntimeError::Audit(format!(
                "VOXGUARD_AUDIT_CHECKPOINT_EVERY={v:?} is not valid: a whole number greater than 0"
            ))
        })?,
    };
    SqliteAuditLog::open_in_dir(dir, durability, key, every)
        .await
        .map_err(|e| RuntimeError::Audit(format!("the audit trail cannot be opened: {e}")))
}

/// Read `VOXGUARD_EMERGENCY_MODE` (true/false) and `VOXGUARD_EMERGENCY_TOOLS` (comma-separated
/// tool names; unset = every sensitive tool) through `lookup`.
pub fn emergency_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<EmergencyState, RuntimeError> {
    let enabled = match lookup("VOXGUARD_EMERGENCY_MODE")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("false") | Some("0") | Some("off") | Some("no") => false,
        Some("true") | Some("1") | Some("on") | Some("yes") => true,
        Some(other) => return Err(RuntimeError::InvalidEmergency(other.to_string())),
    };
    let tools = lookup("VOXGUARD_EMERGENCY_TOOLS")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect::<std::collections::BTreeSet<_>>()
        })
        .filter(|set| !set.is_empty());
    Ok(EmergencyState { enabled, tools })
}

/// The operator endpoints: the emergency switch and readiness detail.
struct Admin {
    emergency: Arc<EmergencySwitch>,
    auditor: Auditor,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmergencyRequest {
    enabled: bool,
    #[serde(default)]
    tools: Option<Vec<String>>,
}

#[async_trait::async_trait]
impl AdminService for Admin {
    async fn emergency(&self, request: &RequestInfo, body: Value) -> Reply {
        // Only a JSON object: serde would also read a struct from an array such as [true].
        let parsed = match body {
            Value::Object(_) => serde_json::from_value::<EmergencyRequest>(body).ok(),
            _ => None,
        };
        let Some(change) = parsed else {
            return Reply::refusal(
                400,
                reasons::INVALID_REQUEST,
                "Send {\"enabled\": true|false, \"tools\": [names] (optional; default every sensitive tool)}.",
            );
        };
        let next = EmergencyState {
            enabled: change.enabled,
            tools: change
                .tools
                .map(|t| t.into_iter().collect())
                .filter(|t: &std::collections::BTreeSet<String>| !t.is_empty()),
        };
        let mut event = Auditor::event("emergency_toggled");
        event.outcome = Some(if next.enabled { "enabled" } else { "disabled" }.into());
        event.arguments = Some(serde_json::json!({ "enabled": next.enabled, "tools": next.tools }));
        event.source = Some(request.client.ip().to_string());
        event.request_id = Some(request.request_id.clone());
        if self.auditor.record(event).await.is_err() {
            return Reply::refusal(
                503,
                reasons::AUDIT_UNAVAILABLE,
                "The change could not be recorded, so it was not made.",
            );
        }
        let previous = self.emergency.set(next.clone());
        tracing::warn!(
            target: "voxguard::security",
            event = "emergency_toggled",
            enabled = next.enabled,
            tools = ?next.tools,
            was_enabled = previous.enabled,
            client = %request.client,
            request_id = %request.request_id,
            "emergency switch changed"
        );
        Reply::ok(serde_json::json!({ "emergency": next, "previous": previous }))
    }

    async fn detail(&self) -> Value {
        serde_json::json!({ "emergency": self.emergency.state() })
    }
}

/// Agents plus everything they share, ready to serve.
pub struct Runtime {
    config: ServerConfig,
    keys: KeyRing,
    key_generated: bool,
    store: Arc<dyn SessionStore>,
    attempts: Arc<dyn AttemptStore>,
    clock: Arc<dyn Clock>,
    emergency: Arc<EmergencySwitch>,
    audit: Option<Arc<dyn AuditSink>>,
    anomaly_rules: AnomalyRules,
    on_anomaly: Option<AnomalyCallback>,
    hooks: Hooks,
    agents: Vec<Agent>,
}

type RequestHook = Arc<dyn Fn(&str, &str, SocketAddr, &str) + Send + Sync>;
type ResponseHook = Arc<dyn Fn(&AccessRecord) + Send + Sync>;

/// User callbacks around every request.
#[derive(Clone, Default)]
struct Hooks {
    on_request: Vec<RequestHook>,
    on_response: Vec<ResponseHook>,
}

impl AccessHooks for Hooks {
    fn on_request(&self, method: &str, path: &str, client: SocketAddr, request_id: &str) {
        for hook in &self.on_request {
            hook(method, path, client, request_id);
        }
    }

    fn on_response(&self, record: &AccessRecord) {
        for hook in &self.on_response {
            hook(record);
        }
    }
}

impl Runtime {
    /// Configure everything from the environment (see `docs/configuration.md`). The session
    /// store defaults to memory; use [`Runtime::store`] for SQLite.
    pub fn from_env() -> Result<Self, RuntimeError> {
        let config = ServerConfig::from_env()?;
        let keys = keys_from_lookup(|name| std::env::var(name).ok(), config.production)?;
        let emergency = emergency_from_lookup(|name| std::env::var(name).ok())?;
        let memory = Arc::new(MemoryStore::default());
        Ok(Self {
            config,
            keys: keys.keys,
            key_generated: keys.generated,
            store: memory.clone(),
            attempts: memory,
            clock: Arc::new(SystemClock),
            emergency: Arc::new(EmergencySwitch::new(emergency)),
            audit: None,
            anomaly_rules: AnomalyRules::default(),
            on_anomaly: None,
            hooks: Hooks::default(),
            agents: Vec::new(),
        })
    }

    /// A runtime with explicit settings (tests, embedding).
    pub fn new(config: ServerConfig, keys: KeyRing) -> Self {
        let memory = Arc::new(MemoryStore::default());
        Self {
            config,
            keys,
            key_generated: false,
            store: memory.clone(),
            attempts: memory,
            clock: Arc::new(SystemClock),
            emergency: Arc::new(EmergencySwitch::default()),
            audit: None,
            anomaly_rules: AnomalyRules::default(),
            on_anomaly: None,
            hooks: Hooks::default(),
            agents: Vec::new(),
        }
    }

    /// Keep call sessions and verification attempt counters in `store` (memory by default;
    /// `SqliteStore` for state that survives restarts).
    pub fn store<S: SessionStore + AttemptStore>(mut self, store: Arc<S>) -> Self {
        self.store = store.clone();
        self.attempts = store;
        self
    }

    /// Measure lockouts and confirmation windows with `clock` (tests use `ManualClock`).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Write the audit trail to `sink` (e.g. `SqliteAuditLog`): every tool call and its outcome,
    /// every refusal by reason, verifications, lockouts, emergency toggles and refused logins,
    /// each stored before the response that depends on it is sent.
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Anomaly rules run over every audit event (failed-auth bursts per source, tool-call
    /// spikes per caller, large transactions, after-hours activity). Defaults:
    /// `AnomalyRules::default()`; `AnomalyRules::disabled()` turns them off.
    pub fn anomaly_rules(mut self, rules: AnomalyRules) -> Self {
        self.anomaly_rules = rules;
        self
    }

    /// Call `callback(anomaly)` (in the background) for every anomaly, e.g. to page someone.
    pub fn on_anomaly<F, Fut>(mut self, callback: F) -> Self
    where
        F: Fn(Anomaly) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.on_anomaly = Some(Arc::new(move |anomaly| Box::pin(callback(anomaly))));
        self
    }

    /// Call `hook(method, path, client, request_id)` when a request arrives (before
    /// authentication; the path never includes the query string).
    pub fn on_request<F>(mut self, hook: F) -> Self
    where
        F: Fn(&str, &str, SocketAddr, &str) + Send + Sync + 'static,
    {
        self.hooks.on_request.push(Arc::new(hook));
        self
    }

    /// Call `hook(record)` when a response is about to be sent: method, path, status,
    /// duration, client address, request id and call id.
    pub fn on_response<F>(mut self, hook: F) -> Self
    where
        F: Fn(&AccessRecord) + Send + Sync + 'static,
    {
        self.hooks.on_response.push(Arc::new(hook));
        self
    }

    /// The emergency switch shared by every agent of this runtime.
    pub fn emergency(&self) -> Arc<EmergencySwitch> {
        self.emergency.clone()
    }

    /// Serve `agent`.
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// The server configuration (e.g. to adjust limits before binding).
    pub fn config_mut(&mut self) -> &mut ServerConfig {
        &mut self.config
    }

    /// The server configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The token key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Bind the listener. Prints generated credentials (once) to stderr and warns about a
    /// generated token key.
    pub async fn bind(self) -> Result<Running, RuntimeError> {
        if self.key_generated {
            tracing::warn!(
                "VOXGUARD_TOKEN_KEY is not set: generated a random token key; function tokens will not survive a restart or be accepted by other replicas"
            );
        }
        let announce = (self.config.credential_source == CredentialSource::Generated).then(|| {
            (
                self.config.credentials.user().to_string(),
                self.config.credentials.expose_password().to_string(),
            )
        });
        let state = self.emergency.state();
        if state.enabled {
            tracing::warn!(target: "voxguard::security", event = "emergency_active", tools = ?state.tools, "starting with the emergency switch on");
        }
        let metrics = Metrics::new();
        let detector = Arc::new(AnomalyDetector::new(self.anomaly_rules.clone()));
        let auditor = Auditor::new(
            self.audit.clone(),
            metrics.clone(),
            Some(detector),
            self.on_anomaly.clone(),
        );
        let mut server = Server::new(self.config)
            .metrics(metrics)
            .admin(Arc::new(Admin {
                emergency: self.emergency.clone(),
                auditor: auditor.clone(),
            }))
            .events(Arc::new(AuthEvents(auditor.clone())));
        if !self.hooks.on_request.is_empty() || !self.hooks.on_response.is_empty() {
            server = server.access(Arc::new(self.hooks.clone()));
        }
        let mut names = std::collections::HashSet::new();
        if let Some(dup) = self
            .agents
            .iter()
            .find(|a| !names.insert(a.name().to_string()))
        {
            return Err(RuntimeError::DuplicateAgent(dup.name().to_string()));
        }
        let maintenance = spawn_maintenance(self.store.clone(), self.agents.clone());
        let input_guard = InputGuard::new();
        let hashers = crate::verification::Hashers::per_core();
        for agent in self.agents {
            let services = Arc::new(VerifyServices {
                attempts: self.attempts.clone(),
                clock: self.clock.clone(),
                vault: PinVault::default(),
                policy: agent.inner.verification.clone(),
                hashers: hashers.clone(),
                auditor: auditor.clone(),
            });
            server = server.agent(Arc::new(AgentRuntime {
                agent,
                keys: self.keys.clone(),
                store: self.store.clone(),
                services,
                emergency: self.emergency.clone(),
                input_guard: input_guard.clone(),
                auditor: auditor.clone(),
            }));
        }
        let bound = server.bind().await?;
        // Install the signal handlers now, before anyone is told the server is up.
        let signal = Box::pin(voxguard_server::shutdown_signal());
        if let Some((user, password)) = announce {
            announce_credentials(&user, &password);
        }
        tracing::info!(address = %bound.local_addr(), scheme = bound.scheme(), "voxguard listening");
        Ok(Running {
            bound,
            signal,
            maintenance,
        })
    }

    /// Bind and serve until SIGTERM or Ctrl-C.
    pub async fn serve(self) -> Result<(), RuntimeError> {
        self.bind().await?.serve().await;
        Ok(())
    }
}

/// The one place generated credentials are shown: once, on the console, never in a log line.
fn announce_credentials(user: &str, password: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(
        stderr,
        "voxguard: no SWML_BASIC_AUTH_USER/SWML_BASIC_AUTH_PASSWORD set; generated credentials for this run:\n  user: {user}\n  password: {password}\n(set both variables to choose your own; VOXGUARD_ENV=production refuses to start without them)"
    );
}

/// A bound runtime.
pub struct Running {
    bound: BoundServer,
    signal: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    maintenance: Upkeep,
}

/// The maintenance task, stopped when the server stops (or the `Running` is dropped).
struct Upkeep(tokio::task::JoinHandle<()>);

impl Drop for Upkeep {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often expired sessions are deleted and idle rate-limit state is dropped.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(300);

/// Background upkeep: purge expired sessions (so nothing about a call outlives its TTL, in
/// memory or on disk) and forget rate-limit state of callers that went quiet.
fn spawn_maintenance(store: Arc<dyn SessionStore>, agents: Vec<Agent>) -> Upkeep {
    Upkeep(tokio::spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.purge_expired().await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired sessions purged"),
                Err(error) => tracing::warn!(%error, "purging expired sessions failed"),
            }
            for agent in &agents {
                agent.inner.limiter.retain_recent();
            }
        }
    }))
}

impl Running {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.bound.local_addr()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.bound.scheme()
    }

    /// Serve until SIGTERM or Ctrl-C (handlers installed at bind time), then shut down
    /// gracefully.
    pub async fn serve(self) {
        let Running {
            bound,
            signal,
            maintenance,
        } = self;
        bound.serve_until(signal).await;
        drop(maintenance);
    }

    /// Serve until `shutdown` resolves, then shut down gracefully.
    pub async fn serve_until(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let Running {
            bound, maintenance, ..
        } = self;
        bound.serve_until(shutdown).await;
        drop(maintenance);
    }
}

/// An agent bound to the runtime's keys and store.
pub(crate) struct AgentRuntime {
    pub(crate) agent: Agent,
    pub(crate) keys: KeyRing,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) services: Arc<VerifyServices>,
    pub(crate) emergency: Arc<EmergencySwitch>,
    pub(crate) input_guard: InputGuard,
    pub(crate) auditor: Auditor,
}

#[async_trait::async_trait]
impl AgentService for AgentRuntime {
    fn name(&self) -> &str {
        self.agent.name()
    }

    fn route(&self) -> &str {
        self.agent.route()
    }

    async fn swml(&self, request: &RequestInfo, body: Option<Value>) -> Reply {
        if body.as_ref().is_some_and(|b| !b.is_object()) {
            return Reply::refusal(
                400,
                reasons::INVALID_REQUEST,
                "The SWML request body must be a JSON object.",
            );
        }
        let call_id = render::call_id_for(body.as_ref());
        if !valid_call_id(&call_id) {
            return Reply::refusal(400, reasons::INVALID_CALL_ID, "The call id is not valid.");
        }
        let document = render::render(&self.agent, &self.keys, request, &call_id);
        match serde_json::to_value(&document) {
            Ok(body) => Reply::ok(body).with_call_id(Some(call_id)),
            Err(error) => {
                tracing::error!(agent = self.agent.name(), %error, "SWML could not be serialized");
                Reply::refusal(500, "internal_error", "Something went wrong on our side.")
            }
        }
    }

    async fn swaig(&self, request: &RequestInfo, body: Value) -> Reply {
        dispatch::swaig(self, request, body).await
    }

    async fn post_prompt(&self, request: &RequestInfo, body: Value) -> Reply {
        dispatch::post_prompt(self, request, body).await
    }

    async fn ready(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}
