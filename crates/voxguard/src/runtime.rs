//! The runtime: agents plus everything they share, served by `voxguard-server`.
//!
//! Owns start-up: the one clock, the stores, the audit sink, anomaly rules and access hooks are
//! gathered by the [`Runtime`] builder; [`Runtime::bind`] announces generated credentials once,
//! builds the shared [`Services`] and binds each [`Agent`] into a `Pipeline` (the server's
//! `AgentService`), and keeps the maintenance task running while the server serves. Reading the
//! environment is `config`'s job; the request path is `pipeline`'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use voxguard_guard::{
    Anomaly, AnomalyDetector, AnomalyRules, Clock, CredentialSource, EmergencySwitch, InputGuard,
    KeyRing, PinVault, RateLimit, RateLimiter, SystemClock,
};
use voxguard_server::{
    AccessHooks, AccessRecord, BoundServer, Metrics, ServeRole, Server, ServerConfig,
};
use voxguard_store::{AttemptStore, AuditSink, MemoryStore, SessionStore};

use crate::admin::Admin;
use crate::agent::Agent;
use crate::audit::{AnomalyCallback, Auditor, AuthEvents};
use crate::config::{
    emergency_from_lookup, keys_from_lookup, render_limit_from_lookup, secret_checks_from_lookup,
    RuntimeError, DEFAULT_SWML_RENDERS_PER_MIN,
};
use crate::console::{agent_view, Console, ConsoleTimeouts};
use crate::gateway::{Gate, GatewayConfig};
use crate::pipeline::limiter::{Limiter, SharedLimiter, LIMIT_KEY_PURPOSE};
use crate::pipeline::Pipeline;
use crate::records::api::RecordsApi;
use crate::records::{Cleanup, Compliance, ComplianceError, Records, RecordsConfig};
use crate::services::{Hashers, Services};
use crate::state::{Shared, SharedEmergency, State};
use crate::verify_policy::SUBJECT_KEY_PURPOSE;

/// Agents plus everything they share, ready to serve.
pub struct Runtime {
    config: ServerConfig,
    render_limit: Option<RateLimit>,
    /// Argon2 checks at once (`None`: half the cores).
    secret_checks: Option<usize>,
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
    gateways: Vec<GatewayConfig>,
    records: Option<RecordsConfig>,
    compliance: Compliance,
    shared: Option<Shared>,
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
        let render_limit =
            render_limit_from_lookup(|name| std::env::var(name).ok(), config.trust_proxy)?;
        let secret_checks = secret_checks_from_lookup(|name| std::env::var(name).ok())?;
        let memory = Arc::new(MemoryStore::default());
        let compliance = match std::env::var("VOXGUARD_COMPLIANCE") {
            Ok(text) => Compliance::parse(&text)?,
            Err(_) => Compliance::NONE,
        };
        Ok(Self {
            config,
            render_limit,
            secret_checks,
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
            gateways: Vec::new(),
            records: None,
            compliance,
            shared: None,
        })
    }

    /// A runtime with explicit settings (tests, embedding).
    pub fn new(config: ServerConfig, keys: KeyRing) -> Self {
        let memory = Arc::new(MemoryStore::default());
        Self {
            config,
            render_limit: RateLimit::new(DEFAULT_SWML_RENDERS_PER_MIN, Duration::from_secs(60))
                .ok(),
            secret_checks: None,
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
            gateways: Vec::new(),
            records: None,
            compliance: Compliance::NONE,
            shared: None,
        }
    }

    /// Keep conversation records (summaries, transcripts, tool logs, …) as `config` says, and
    /// serve the operator records API on `/records` (docs/records.md).
    pub fn records(mut self, config: RecordsConfig) -> Self {
        self.records = Some(config);
        self
    }

    /// Hold every agent to compliance `modes` on top of its own (also read from
    /// `VOXGUARD_COMPLIANCE` by [`Runtime::from_env`]; docs/compliance.md).
    pub fn compliance(mut self, modes: Compliance) -> Self {
        self.compliance = self.compliance.and(modes);
        self
    }

    /// Keep every store where `state` says ([`State::open_from_env`]: SQLite files in the data
    /// directory, or PostgreSQL and Redis shared by several replicas): sessions, attempt
    /// counters, the audit trail, conversation records, and with PostgreSQL the rate limits
    /// and the emergency switch, which then hold for the whole deployment.
    pub fn state(mut self, state: State) -> Self {
        self.store = state.sessions;
        self.attempts = state.attempts;
        self.audit = Some(state.audit);
        if let Some(records) = state.records {
            self.records = Some(records);
        }
        self.shared = state.shared;
        self
    }

    /// Keep call sessions and verification attempt counters in `store` (memory by default;
    /// `SqliteStore` for state that survives restarts).
    pub fn store<S: SessionStore + AttemptStore>(mut self, store: Arc<S>) -> Self {
        self.store = store.clone();
        self.attempts = store;
        self
    }

    /// The one clock of the runtime (tests use `ManualClock`): audit timestamps, session
    /// expiry, confirmation windows, lockouts and rate limits all read it.
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

    /// At most `limit` SWML renders per source address (default 120 per minute, or
    /// `VOXGUARD_SWML_RENDERS_PER_MIN`); `None` turns the limit off (e.g. for a load-test
    /// target). A render mints fresh tokens for a fresh session, so this bounds how many fresh
    /// per-call budgets one client can make itself.
    pub fn swml_render_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.render_limit = limit;
        self
    }

    /// At most `checks` argon2 checks (caller PINs and secrets, operator passwords) at once,
    /// kept within 1–1024 as `VOXGUARD_SECRET_CHECKS` is (default: half the cores this process
    /// may use, at least one). Each running check holds a core and, with the default cost,
    /// 19 MiB; more checks wait their turn.
    pub fn secret_checks(mut self, checks: usize) -> Self {
        self.secret_checks = Some(checks.clamp(1, crate::config::MAX_SECRET_CHECKS));
        self
    }

    /// The argon2 pool every check of this runtime shares, sized by
    /// [`secret_checks`](Self::secret_checks).
    fn hashers(&self) -> Arc<Hashers> {
        Hashers::new(self.secret_checks.unwrap_or_else(Hashers::default_permits))
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

    /// Stand in front of the upstream agent `config` names (gateway mode, docs/gateway.md):
    /// served like an agent, on `config.route`, with its functions taken from each render of
    /// the upstream's SWML. The file's `public_url` and `body_limit` apply unless the
    /// environment set them.
    pub fn gateway(mut self, config: GatewayConfig) -> Self {
        if let Some(url) = &config.public_url {
            self.config.proxy_url_base = Some(url.clone());
        }
        if let Some(limit) = config.body_limit {
            self.config.body_limit = limit;
        }
        self.gateways.push(config);
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
        if self.key_generated && self.shared.is_some() {
            // Replicas must accept each other's tokens, and count in the same rate-limit
            // buckets: a key made up by this process would do neither.
            return Err(RuntimeError::State("VOXGUARD_DATABASE_URL needs VOXGUARD_TOKEN_KEY (base64, at least 32 bytes; the same on every replica): a generated key would make each replica refuse the others' tokens".into()));
        }
        let connector_base = self.config.payment_connector_url.clone();
        if self.config.role != ServeRole::All && self.shared.is_none() {
            // The agent's host records a pending payment; the connector's host charges it:
            // both must read the same sessions.
            return Err(RuntimeError::State("VOXGUARD_SERVE=agent or connector needs VOXGUARD_DATABASE_URL: the agent and the payment connector on separate hosts share the call's pending payment through PostgreSQL".into()));
        }
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
        let hashers = self.hashers();
        let shared_emergency = self.shared.clone().map(|shared| SharedEmergency { shared });
        if let Some(shared) = &shared_emergency {
            shared.start(&self.emergency).await.map_err(|e| {
                RuntimeError::State(format!("the shared emergency switch cannot be read: {e}"))
            })?;
        }
        let state = self.emergency.state();
        if state.enabled {
            tracing::warn!(target: "voxguard::security", event = "emergency_active", tools = ?state.tools, "starting with the emergency switch on");
        }
        let metrics = Metrics::new();
        let detector = Arc::new(AnomalyDetector::new(self.anomaly_rules.clone()));
        let auditor = Auditor::new(
            self.audit.clone(),
            self.clock.clone(),
            metrics.clone(),
            Some(detector),
            self.on_anomaly.clone(),
        );
        let auth_events = Arc::new(AuthEvents::new(auditor.clone()));
        let admin = Arc::new(Admin {
            emergency: self.emergency.clone(),
            auditor: auditor.clone(),
            shared: shared_emergency.clone(),
        });
        let mut server = Server::new(self.config)
            .metrics(metrics)
            .admin(admin.clone())
            .events(auth_events.clone());
        if !self.hooks.on_request.is_empty() || !self.hooks.on_response.is_empty() {
            server = server.access(Arc::new(self.hooks.clone()));
        }
        // Gateways are served as agents whose tools come from the upstream's renders.
        let mut agents: Vec<(Agent, Option<Arc<Gate>>)> =
            self.agents.into_iter().map(|agent| (agent, None)).collect();
        for config in &self.gateways {
            let gate = Arc::new(Gate::new(config)?);
            agents.push((crate::gateway::agent(config, gate.clone())?, Some(gate)));
        }
        // Compliance before anything is bound: each agent under its own modes and the runtime's.
        let mut modes = self.compliance;
        for (agent, _) in &agents {
            let effective = self.compliance.and(agent.inner.compliance);
            agent.check_compliance(effective)?;
            modes = modes.and(effective);
        }
        if !self.gateways.is_empty() && (modes.hipaa() || modes.pci()) {
            // The gateway cannot hold an upstream to HIPAA's or PCI's rules (no recording, the
            // recording paused around `pay`): it cannot see into the upstream's calls. Fail
            // closed rather than serve under a mode that does not hold.
            return Err(RuntimeError::Gateway(crate::gateway::GatewayConfigError::Invalid {
                key: "VOXGUARD_COMPLIANCE".into(),
                message: "gateway mode does not support the hipaa or pci compliance modes (docs/gateway.md)".into(),
            }));
        }
        if modes.hipaa() {
            match &self.records {
                None => return Err(ComplianceError::RecordsRequired.into()),
                Some(records) if records.uses_dev_key() => {
                    return Err(ComplianceError::DevKey.into())
                }
                Some(_) => {}
            }
        }
        let mut names = std::collections::HashSet::new();
        if let Some((dup, _)) = agents
            .iter()
            .find(|(a, _)| !names.insert(a.name().to_string()))
        {
            return Err(RuntimeError::DuplicateAgent(dup.name().to_string()));
        }
        let subject_key = self.keys.derive(SUBJECT_KEY_PURPOSE);
        let records = self.records.map(|config| {
            let attempt_keys = agents
                .iter()
                .map(|(agent, _)| {
                    let key = agent
                        .inner
                        .verification
                        .subject_key
                        .clone()
                        .unwrap_or_else(|| subject_key.clone());
                    (agent.name().to_string(), key)
                })
                .collect();
            Records::with_auditor(
                config,
                auditor.clone(),
                modes,
                Some(Cleanup {
                    sessions: self.store.clone(),
                    attempts: self.attempts.clone(),
                    attempt_keys,
                    default_key: Some(subject_key.clone()),
                }),
            )
        });
        if let Some(records) = &records {
            let api = Arc::new(RecordsApi::new(
                records.clone(),
                PinVault::default(),
                hashers.clone(),
                auth_events.clone(),
                self.clock.clone(),
                self.attempts.clone(),
            ));
            // The security console: the same operators, permission table and auditing.
            let timeouts = ConsoleTimeouts::from_lookup(|name| std::env::var(name).ok())?;
            let described = agents
                .iter()
                .map(|(agent, gate)| agent_view(agent, gate.is_some()))
                .collect();
            server = server.records(api.clone()).console(Arc::new(
                Console::new(api, admin.clone(), self.store.clone(), timeouts)
                    .describing(described, self.anomaly_rules.clone()),
            ));
        }
        let services = Arc::new(Services {
            clock: self.clock.clone(),
            attempts: self.attempts.clone(),
            subject_key,
            vault: PinVault::default(),
            hashers,
            auditor: auditor.clone(),
            failures: auth_events.clone(),
            records: records.clone(),
        });
        let input_guard = InputGuard::new();

        let mut pipelines = Vec::with_capacity(agents.len());
        for (agent, gateway) in agents {
            let compliance = self.compliance.and(agent.inner.compliance);
            let limiter = match &self.shared {
                Some(shared) => Limiter::Shared(SharedLimiter::new(
                    shared.limits.clone(),
                    agent.name(),
                    agent.inner.limits.clone(),
                    self.keys.derive(LIMIT_KEY_PURPOSE),
                    self.clock.clone(),
                )),
                None => Limiter::Local(agent.inner.limits.limiter(self.clock.clone())),
            };
            let pipeline = Arc::new(Pipeline {
                limiter,
                templates: Default::default(),
                render_limiter: self
                    .render_limit
                    .map(|limit| RateLimiter::with_clock(self.clock.clone()).per_caller(limit)),
                policy: agent.inner.verification.clone(),
                // Each agent its own ring: a token rendered for one agent is refused by the
                // others, even for a function of the same name in the same call.
                keys: self.keys.for_agent(agent.route()),
                agent,
                store: self.store.clone(),
                services: services.clone(),
                emergency: self.emergency.clone(),
                input_guard: input_guard.clone(),
                compliance,
                connector_base: connector_base.clone(),
                ready: Default::default(),
                gateway,
            });
            server = server.agent(pipeline.clone());
            pipelines.push(pipeline);
        }
        let follower = shared_emergency.map(|shared| Upkeep(shared.follow(self.emergency.clone())));
        let maintenance = spawn_maintenance(
            self.store.clone(),
            self.attempts.clone(),
            self.clock.clone(),
            pipelines,
            auth_events.clone(),
            records,
        );
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
            _follower: follower,
            auth_events,
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
    /// Keeps the emergency switch in step with the other replicas (shared state only).
    _follower: Option<Upkeep>,
    auth_events: Arc<AuthEvents>,
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
/// memory or on disk), attempt counters whose window has ended, forget rate-limit state of
/// callers that went quiet (in process, or the refilled buckets of PostgreSQL limits), and write out the counts of authentication-failure windows that
/// closed (every window length).
fn spawn_maintenance(
    store: Arc<dyn SessionStore>,
    attempts: Arc<dyn AttemptStore>,
    clock: Arc<dyn Clock>,
    pipelines: Vec<Arc<Pipeline>>,
    auth_events: Arc<AuthEvents>,
    records: Option<Records>,
) -> Upkeep {
    Upkeep(tokio::spawn(async move {
        // The retention purge: once at start, then every `purge_every` (an interval's first
        // tick is immediate). Without records it never fires.
        let purge_every = records
            .as_ref()
            .map(Records::purge_every)
            .unwrap_or(Duration::from_secs(86_400));
        let mut purge_tick = tokio::time::interval(purge_every);
        purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut auth_tick =
            tokio::time::interval(Duration::from_secs(crate::audit::AUTH_FAILURE_WINDOW_SECS));
        auth_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = auth_tick.tick() => {
                    auth_events.flush_closed().await;
                    continue;
                }
                _ = purge_tick.tick(), if records.is_some() => {
                    if let Some(records) = &records {
                        match records.purge(&Records::runtime_actor(), false).await {
                            Ok(counts) => tracing::info!(?counts, "retention purge ran"),
                            Err(error) => tracing::warn!(%error, "retention purge failed"),
                        }
                    }
                    continue;
                }
            }
            match store.purge_expired(clock.now_unix()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "expired sessions purged"),
                Err(error) => tracing::warn!(%error, "purging expired sessions failed"),
            }
            match attempts.purge_attempts(clock.now_unix()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "ended attempt counters purged"),
                Err(error) => tracing::warn!(%error, "purging attempt counters failed"),
            }
            for pipeline in &pipelines {
                pipeline.limiter.retain_recent().await;
                if let Some(limiter) = &pipeline.render_limiter {
                    limiter.retain_recent();
                }
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
            auth_events,
            ..
        } = self;
        bound.serve_until(signal).await;
        drop(maintenance);
        auth_events.flush_all().await;
        crate::logging::flush_access_log();
    }

    /// Serve until `shutdown` resolves, then shut down gracefully.
    pub async fn serve_until(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let Running {
            bound,
            maintenance,
            auth_events,
            ..
        } = self;
        bound.serve_until(shutdown).await;
        drop(maintenance);
        auth_events.flush_all().await;
        crate::logging::flush_access_log();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxguard_guard::{BasicCredentials, TokenKey};

    fn runtime() -> Runtime {
        let config = ServerConfig::new(BasicCredentials::new(
            "user",
            "a-password-long-enough-for-tests",
        ));
        Runtime::new(config, KeyRing::new(TokenKey::generate()))
    }

    /// The pool the runtime binds with is the one `secret_checks` asked for, clamped like the
    /// variable, and half the cores when nothing asked.
    #[test]
    fn the_secret_check_pool_follows_the_setting() {
        assert_eq!(runtime().secret_checks(3).hashers().free_permits(), 3);
        assert_eq!(runtime().secret_checks(0).hashers().free_permits(), 1);
        assert_eq!(
            runtime().secret_checks(usize::MAX).hashers().free_permits(),
            crate::config::MAX_SECRET_CHECKS
        );
        assert_eq!(
            runtime().hashers().free_permits(),
            Hashers::default_permits()
        );
    }
}
