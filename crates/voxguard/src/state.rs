//! Where a runtime keeps its state: the embedded SQLite default, or PostgreSQL (and Redis)
//! shared by several replicas.
//!
//! Owns reading the state variables (`VOXGUARD_DATABASE_URL`, `VOXGUARD_DATABASE_SCHEMA`,
//! `VOXGUARD_DATABASE_MAX_CONNECTIONS`, `VOXGUARD_REDIS_URL`, `VOXGUARD_REDIS_PREFIX`; see
//! docs/deployment.md), opening every store on the chosen backend — sessions and attempt
//! counters, the audit trail, records and operators, and with PostgreSQL the shared rate
//! limits, the notifications between replicas and the emergency switch's shared state — and
//! keeping the emergency switch of this replica in step with the others ([`SharedEmergency`]).
//! Migrations run here, at start. Without `VOXGUARD_DATABASE_URL` nothing changes: one process,
//! one data directory, nothing to install. It must not serve requests or decide anything per
//! request, and no error or log line it writes contains a URL (they can hold passwords).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use voxguard_guard::{EmergencyState, EmergencySwitch};
use voxguard_store::postgres::{valid_schema, PgDatabase, DEFAULT_MAX_CONNECTIONS, DEFAULT_SCHEMA};
use voxguard_store::{
    AttemptStore, AuditSink, LimitStore, Notice, Notifier, PgAuditLog, PgEmergency, PgLimits,
    PgNotifier, PgRecordStore, PgStore, RedisState, SessionStore, SqliteAuditLog, SqliteStore,
    StoreError, DEFAULT_SESSION_TTL,
};

use crate::config::{AuditSettings, RuntimeError};
use crate::records::RecordsConfig;

/// The Redis key prefix used when `VOXGUARD_REDIS_PREFIX` is unset.
pub const DEFAULT_REDIS_PREFIX: &str = "voxguard:";

/// How often a replica re-reads the shared emergency switch even without a notification (a
/// notification normally arrives within milliseconds; this bounds a missed one).
const EMERGENCY_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// The state variables, checked.
#[derive(Clone)]
pub struct StateConfig {
    database_url: Option<String>,
    schema: String,
    max_connections: u32,
    redis_url: Option<String>,
    redis_prefix: String,
    records: bool,
}

impl std::fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URLs: they may hold passwords.
        f.debug_struct("StateConfig")
            .field("postgres", &self.database_url.is_some())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("redis", &self.redis_url.is_some())
            .field("redis_prefix", &self.redis_prefix)
            .finish()
    }
}

impl StateConfig {
    /// Read the variables from the environment.
    pub fn from_env() -> Result<Self, RuntimeError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let invalid = |message: String| RuntimeError::State(message);
        let database_url = get("VOXGUARD_DATABASE_URL");
        if let Some(url) = &database_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid("VOXGUARD_DATABASE_URL is not valid: a postgres://user:password@host:port/database URL (leave it unset for the embedded SQLite default)".into()));
            }
        }
        let schema = get("VOXGUARD_DATABASE_SCHEMA").unwrap_or_else(|| DEFAULT_SCHEMA.into());
        if !valid_schema(&schema) {
            return Err(invalid(format!("VOXGUARD_DATABASE_SCHEMA={schema:?} is not valid: 1-63 lowercase letters, digits or underscores, not starting with a digit")));
        }
        let max_connections = match get("VOXGUARD_DATABASE_MAX_CONNECTIONS") {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| invalid(format!("VOXGUARD_DATABASE_MAX_CONNECTIONS={v:?} is not valid: a whole number from 1 to 1000")))?,
        };
        let redis_url = get("VOXGUARD_REDIS_URL");
        if let Some(url) = &redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "VOXGUARD_REDIS_URL is not valid: a redis:// or rediss:// URL".into(),
                ));
            }
            if database_url.is_none() {
                return Err(invalid("VOXGUARD_REDIS_URL needs VOXGUARD_DATABASE_URL: Redis carries the rate limits and notifications of replicas whose state is on PostgreSQL; the embedded SQLite default serves one process".into()));
            }
        }
        let redis_prefix =
            get("VOXGUARD_REDIS_PREFIX").unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into());
        if redis_prefix.len() > 64 || redis_prefix.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(invalid(format!("VOXGUARD_REDIS_PREFIX={redis_prefix:?} is not valid: at most 64 visible ASCII characters")));
        }
        Ok(Self {
            database_url,
            schema,
            max_connections,
            redis_url,
            redis_prefix,
            records: true,
        })
    }

    /// Keep no conversation records, whatever `VOXGUARD_RECORDS` says (e.g. a load-test
    /// target): their key is then not needed either.
    pub fn without_records(mut self) -> Self {
        self.records = false;
        self
    }

    /// Whether state is shared on PostgreSQL.
    pub fn shared(&self) -> bool {
        self.database_url.is_some()
    }

    /// Connect to the configured PostgreSQL database and apply its migrations (`Ok(None)` in
    /// SQLite mode).
    pub async fn database(&self) -> Result<Option<PgDatabase>, RuntimeError> {
        let Some(url) = &self.database_url else {
            return Ok(None);
        };
        let database = PgDatabase::connect(url, &self.schema, self.max_connections)
            .await
            .map_err(|e| unreachable_db("connect to", &e))?;
        database
            .migrate()
            .await
            .map_err(|e| unreachable_db("migrate", &e))?;
        Ok(Some(database))
    }
}

/// A start-up failure on the database, with its causes but never its URL.
fn unreachable_db(what: &str, error: &StoreError) -> RuntimeError {
    RuntimeError::State(format!(
        "could not {what} the PostgreSQL database of VOXGUARD_DATABASE_URL: {}",
        error.describe()
    ))
}

/// The start-up failure of an audit trail that cannot be opened, with its causes.
fn audit_unopened(error: &StoreError) -> RuntimeError {
    RuntimeError::Audit(format!(
        "the audit trail cannot be opened: {}",
        error.describe()
    ))
}

/// Every store a runtime needs, opened on one backend.
pub struct State {
    pub(crate) sessions: Arc<dyn SessionStore>,
    pub(crate) attempts: Arc<dyn AttemptStore>,
    pub(crate) audit: Arc<dyn AuditSink>,
    pub(crate) records: Option<RecordsConfig>,
    pub(crate) shared: Option<Shared>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("backend", &self.backend())
            .field("records", &self.records.is_some())
            .finish_non_exhaustive()
    }
}

/// What replicas share beyond the stores.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) database: PgDatabase,
    pub(crate) limits: Arc<dyn LimitStore>,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) emergency: PgEmergency,
}

impl State {
    /// Open every store as the environment says: on PostgreSQL (and Redis) when
    /// `VOXGUARD_DATABASE_URL` is set, else SQLite files in `data_dir` (sessions and attempts in
    /// `voxguard.db`, the audit trail in `audit.db`, records in `records.db`). Records follow
    /// `VOXGUARD_RECORDS` (on by default); on PostgreSQL they need `VOXGUARD_RECORDS_KEY`
    /// (every replica must share it). The audit trail follows `VOXGUARD_AUDIT_*`.
    pub async fn open_from_env(
        data_dir: impl AsRef<Path>,
        production: bool,
    ) -> Result<Self, RuntimeError> {
        let config = StateConfig::from_env()?;
        Self::open(&config, data_dir.as_ref(), production).await
    }

    /// Open every store as `config` says (see [`State::open_from_env`]).
    pub async fn open(
        config: &StateConfig,
        data_dir: &Path,
        production: bool,
    ) -> Result<Self, RuntimeError> {
        let audit_settings = AuditSettings::from_env(production)?;
        let Some(database) = config.database().await? else {
            let store = Arc::new(
                SqliteStore::open_in_dir(data_dir, DEFAULT_SESSION_TTL)
                    .await
                    .map_err(|e| {
                        RuntimeError::State(format!(
                            "the session store cannot be opened: {}",
                            e.describe()
                        ))
                    })?,
            );
            let audit = SqliteAuditLog::open_in_dir(
                data_dir,
                audit_settings.durability,
                audit_settings.key,
                audit_settings.every,
            )
            .await
            .map_err(|e| audit_unopened(&e))?;
            let records = match config.records {
                true => RecordsConfig::open_from_env(data_dir, production).await?,
                false => None,
            };
            return Ok(Self {
                sessions: store.clone(),
                attempts: store,
                audit: Arc::new(audit),
                records,
                shared: None,
            });
        };
        let audit = PgAuditLog::open(
            database.clone(),
            audit_settings.durability,
            audit_settings.key,
            audit_settings.every,
        )
        .await
        .map_err(|e| audit_unopened(&e))?;
        let records = match config.records {
            true => RecordsConfig::open_shared_from_env(
                Arc::new(PgRecordStore::new(database.clone())),
                production,
            )?,
            false => None,
        };
        let (limits, notifier): (Arc<dyn LimitStore>, Arc<dyn Notifier>) = match &config.redis_url {
            Some(url) => {
                let redis = Arc::new(
                    RedisState::connect(url, &config.redis_prefix)
                        .await
                        .map_err(|e| {
                            RuntimeError::State(format!(
                                "could not connect to the Redis server of VOXGUARD_REDIS_URL: {}",
                                e.describe()
                            ))
                        })?,
                );
                (redis.clone(), redis)
            }
            None => (
                Arc::new(PgLimits::new(&database)),
                Arc::new(PgNotifier::connect(&database).await.map_err(|e| {
                    RuntimeError::State(format!(
                        "could not listen for notifications on PostgreSQL: {}",
                        e.describe()
                    ))
                })?),
            ),
        };
        // Sessions read again are answered from this replica's memory, kept honest by the
        // notices every replica's writes send (see `PgStore::with_cache`).
        let store = Arc::new(
            PgStore::new(database.clone(), DEFAULT_SESSION_TTL).with_cache(notifier.clone()),
        );
        Ok(Self {
            sessions: store.clone(),
            attempts: store,
            audit: Arc::new(audit),
            records,
            shared: Some(Shared {
                emergency: PgEmergency::new(&database),
                database,
                limits,
                notifier,
            }),
        })
    }

    /// `"sqlite"`, `"postgres"` or `"postgres+redis"`.
    pub fn backend(&self) -> &'static str {
        match &self.shared {
            None => "sqlite",
            Some(shared) if shared.limits.backend() == "redis" => "postgres+redis",
            Some(_) => "postgres",
        }
    }

    /// The conversation records settings, if records are on.
    pub fn records(&self) -> Option<RecordsConfig> {
        self.records.clone()
    }

    /// The call sessions.
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        self.sessions.clone()
    }

    /// The verification attempt counters.
    pub fn attempts(&self) -> Arc<dyn AttemptStore> {
        self.attempts.clone()
    }

    /// The audit trail (e.g. to flush it at shutdown).
    pub fn audit(&self) -> Arc<dyn AuditSink> {
        self.audit.clone()
    }
}

/// This replica's emergency switch kept in step with the others: a change is stored, then
/// announced; every replica reloads on the announcement, and every
/// [`EMERGENCY_RELOAD_EVERY`] in case one was missed.
#[derive(Clone)]
pub(crate) struct SharedEmergency {
    pub(crate) shared: Shared,
}

impl SharedEmergency {
    /// Store `state` for every replica and announce it. The caller changes its own switch only
    /// once this succeeded.
    pub(crate) async fn publish(&self, state: &EmergencyState) -> Result<(), StoreError> {
        self.shared.emergency.save(state).await?;
        if let Err(error) = self.shared.notifier.publish(Notice::Emergency).await {
            // Stored: the other replicas pick it up at their next reload.
            tracing::warn!(%error, "the emergency change was stored but could not be announced; other replicas will reload it within seconds");
        }
        Ok(())
    }

    /// At start: a switch turned on by this replica's environment is stored for all; otherwise
    /// the stored state (if any) is taken.
    pub(crate) async fn start(&self, switch: &EmergencySwitch) -> Result<(), StoreError> {
        let local = switch.state();
        if local.enabled {
            self.publish(&local).await
        } else {
            if let Some(stored) = self.shared.emergency.load().await? {
                switch.set(stored);
            }
            Ok(())
        }
    }

    /// Follow the other replicas' changes until the task is aborted.
    pub(crate) fn follow(self, switch: Arc<EmergencySwitch>) -> tokio::task::JoinHandle<()> {
        let mut notices = self.shared.notifier.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EMERGENCY_RELOAD_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    notice = notices.recv() => match notice {
                        Ok(Notice::Emergency | Notice::Resync)
                        | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        // Session notices are the session cache's, not the switch's.
                        Ok(Notice::Session(_) | Notice::Sessions | Notice::Lost) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            // No more notices: the periodic reload carries on alone.
                            tick.tick().await;
                        }
                    },
                    _ = tick.tick() => {}
                }
                match self.shared.emergency.load().await {
                    Ok(Some(stored)) if stored != switch.state() => {
                        tracing::warn!(target: "voxguard::security", event = "emergency_synced", enabled = stored.enabled, tools = ?stored.tools, "emergency switch changed by another replica");
                        switch.set(stored);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "the shared emergency switch could not be read; keeping this replica's state");
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<StateConfig, RuntimeError> {
        StateConfig::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    /// Shared state on `database` with PostgreSQL alone (no Redis), as `State::open` builds it.
    async fn postgres_state(database: &PgDatabase) -> State {
        let store = Arc::new(PgStore::new(database.clone(), DEFAULT_SESSION_TTL));
        let audit = PgAuditLog::open(
            database.clone(),
            voxguard_store::Durability::Normal,
            None,
            0,
        )
        .await
        .expect("audit");
        State {
            sessions: store.clone(),
            attempts: store,
            audit: Arc::new(audit),
            records: None,
            shared: Some(Shared {
                database: database.clone(),
                limits: Arc::new(PgLimits::new(database)),
                notifier: Arc::new(PgNotifier::connect(database).await.expect("notifier")),
                emergency: PgEmergency::new(database),
            }),
        }
    }

    /// A runtime on `state` with one agent, on a free port.
    fn runtime(state: State) -> crate::Runtime {
        use voxguard_guard::{BasicCredentials, KeyRing, TokenKey};
        let mut config = voxguard_server::ServerConfig::new(BasicCredentials::new(
            "user",
            "a-password-long-enough-for-tests",
        ));
        config.port = 0;
        let agent = crate::Agent::builder("bank")
            .prompt_text("You help customers.")
            .rate_limit_per_caller(5, Duration::from_secs(60))
            .build()
            .unwrap();
        crate::Runtime::new(config, KeyRing::new(TokenKey::generate()))
            .state(state)
            .agent(agent)
    }

    /// Every distinct caller leaves a bucket row in `rate_limits` (PostgreSQL without Redis);
    /// a row whose bucket has refilled means nothing, and the runtime's maintenance must delete
    /// it, or the table grows with every caller ever seen (Redis expires its keys; the
    /// in-process limiter sweeps its map; PostgreSQL needs `PgLimits::purge` to be run).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_maintenance_purges_refilled_rate_limit_buckets_on_postgres() {
        let Some(database) = voxguard_store::postgres::testing::database("limit_purge").await
        else {
            return;
        };
        let now_ms = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        // One bucket refilled long ago (a caller who went quiet), one still draining.
        sqlx::query(
            "INSERT INTO rate_limits (key, tat_ms) VALUES ('rl:stale', 1), ('rl:live', $1)",
        )
        .bind(now_ms + 3_600_000)
        .execute(database.pool())
        .await
        .unwrap();
        let running = runtime(postgres_state(&database).await)
            .bind()
            .await
            .expect("binds");
        // The maintenance runs at start, then every few minutes.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let keys = loop {
            let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM rate_limits ORDER BY key")
                .fetch_all(database.pool())
                .await
                .unwrap();
            if keys.len() < 2 || std::time::Instant::now() > deadline {
                break keys;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        drop(running);
        database.drop_schema().await.unwrap();
        assert_eq!(
            keys,
            vec!["rl:live".to_string()],
            "refilled buckets are never purged"
        );
    }

    #[test]
    fn without_a_database_url_state_stays_on_sqlite() {
        let config = config(&[]).expect("defaults");
        assert!(!config.shared());
        assert_eq!(config.schema, DEFAULT_SCHEMA);
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(config.redis_prefix, DEFAULT_REDIS_PREFIX);
    }

    #[test]
    fn bad_values_are_refused_naming_the_variable_and_never_the_url() {
        let secret = "postgres://voxguard:hunter2-secret@db/voxguard";
        for (vars, variable) in [
            (
                vec![("VOXGUARD_DATABASE_URL", "mysql://root:hunter2-secret@db/x")],
                "VOXGUARD_DATABASE_URL",
            ),
            (
                vec![
                    ("VOXGUARD_DATABASE_URL", secret),
                    ("VOXGUARD_DATABASE_SCHEMA", "Public; DROP"),
                ],
                "VOXGUARD_DATABASE_SCHEMA",
            ),
            (
                vec![
                    ("VOXGUARD_DATABASE_URL", secret),
                    ("VOXGUARD_DATABASE_MAX_CONNECTIONS", "0"),
                ],
                "VOXGUARD_DATABASE_MAX_CONNECTIONS",
            ),
            (
                vec![("VOXGUARD_REDIS_URL", "redis://:hunter2-secret@cache/")],
                "VOXGUARD_DATABASE_URL",
            ),
            (
                vec![
                    ("VOXGUARD_DATABASE_URL", secret),
                    ("VOXGUARD_REDIS_URL", "http://cache"),
                ],
                "VOXGUARD_REDIS_URL",
            ),
            (
                vec![
                    ("VOXGUARD_DATABASE_URL", secret),
                    ("VOXGUARD_REDIS_PREFIX", "has space"),
                ],
                "VOXGUARD_REDIS_PREFIX",
            ),
        ] {
            let error = config(&vars).expect_err("refused").to_string();
            assert!(error.contains(variable), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn postgres_and_redis_settings_are_read() {
        let config = config(&[
            ("VOXGUARD_DATABASE_URL", "postgresql://db/voxguard"),
            ("VOXGUARD_DATABASE_SCHEMA", "bank_prod"),
            ("VOXGUARD_DATABASE_MAX_CONNECTIONS", "32"),
            ("VOXGUARD_REDIS_URL", "rediss://cache:6380/0"),
            ("VOXGUARD_REDIS_PREFIX", "bank:"),
        ])
        .expect("valid");
        assert!(config.shared());
        assert_eq!(config.schema, "bank_prod");
        assert_eq!(config.max_connections, 32);
        assert_eq!(config.redis_prefix, "bank:");
        let debug = format!("{config:?}");
        assert!(!debug.contains("cache:6380"), "{debug}");
    }
}
