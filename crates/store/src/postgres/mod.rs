//! The PostgreSQL backend: shared state for several replicas.
//!
//! This module owns connecting to PostgreSQL ([`PgDatabase`]): one pool per process, the
//! schema every table lives in (`VOXGUARD_DATABASE_SCHEMA`, so that several deployments — or
//! every test — can share one database without seeing each other), and the versioned
//! migrations under `crates/store/migrations/postgres`, applied in order at start and by
//! `voxguard migrate` (sqlx records each applied version and its checksum, and refuses a
//! database whose applied migrations were edited). The stores built on the pool live in the
//! submodules. It must never build SQL from caller data (the schema name is checked to be a
//! plain identifier before it is quoted into `SET search_path`), and its errors must not show
//! SQL text, URLs or passwords through `Display`.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Executor;

use crate::StoreError;

mod attempts;
mod emergency;
mod limits;
mod notify;
#[cfg(test)]
mod replica_tests;
mod session;
mod session_cache;

pub use emergency::PgEmergency;
pub use limits::PgLimits;
pub use notify::{channel_for_schema, PgNotifier};
pub use session::PgStore;
pub use session_cache::MAX_AGE_SECS;

/// How long an operation waits for a free pooled connection before giving up: short, so that
/// requests fail closed quickly while the database is down instead of queueing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections in each replica's pool unless `max_connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The schema used when none is given.
pub const DEFAULT_SCHEMA: &str = "public";

/// The migrations every PostgreSQL database needs, in version order.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// A connection pool on one PostgreSQL database and schema, shared by every PostgreSQL store of
/// a process (cheap to clone).
#[derive(Clone)]
pub struct PgDatabase {
    pool: PgPool,
    schema: String,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("PgDatabase")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// How many times [`PgDatabase::connect`] runs `CREATE SCHEMA IF NOT EXISTS` when a replica
/// creating the same schema at the same moment makes it fail.
const CREATE_SCHEMA_ATTEMPTS: u32 = 6;

/// Whether `error` says the object was created concurrently (unique violation `23505`, or
/// duplicate schema `42P06`).
fn is_duplicate(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "23505" || code == "42P06")
}

/// Whether `schema` is a name voxguard accepts for its schema: 1-63 lowercase ASCII letters,
/// digits or underscores, not starting with a digit (a plain identifier, safe to quote).
pub fn valid_schema(schema: &str) -> bool {
    !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Why a schema name was refused.
pub(crate) fn check_schema(schema: &str) -> Result<(), StoreError> {
    if valid_schema(schema) {
        Ok(())
    } else {
        Err(StoreError::unavailable(std::io::Error::other(
            "the database schema name must be 1-63 lowercase letters, digits or underscores, not starting with a digit",
        )))
    }
}

impl PgDatabase {
    /// Connect to `url` (`postgres://user:password@host:port/database`), creating `schema` if
    /// it does not exist and using it for every table. Nothing is migrated: call
    /// [`PgDatabase::migrate`] (the runtime does at start).
    pub async fn connect(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let database = Self::connect_existing(url, schema, max_connections)?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        let mut attempt = 1;
        loop {
            match database.pool.execute(create.as_str()).await {
                Ok(_) => return Ok(database),
                // `IF NOT EXISTS` does not cover a concurrent creation: a replica starting at
                // the same moment can win the race, and this one then sees a unique violation
                // on pg_namespace (23505) or "schema already exists" (42P06). Once the winner
                // has committed, the same statement is a no-op.
                Err(error) if attempt < CREATE_SCHEMA_ATTEMPTS && is_duplicate(&error) => {
                    // Another replica's creation may still be in flight (each retry can lose
                    // to the next one): wait a little longer each time.
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(error) => return Err(StoreError::unavailable(error)),
            }
        }
    }

    /// A pool on `url` using `schema`, creating nothing and connecting only when first used
    /// (e.g. to report which migrations a schema has without creating it: a schema that does
    /// not exist has none applied).
    pub fn connect_existing(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        check_schema(schema)?;
        let options: PgConnectOptions = url.parse().map_err(StoreError::unavailable)?;
        let search_path = format!("SET search_path TO \"{schema}\"");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    conn.execute(search_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            schema: schema.to_string(),
        })
    }

    /// Apply every migration not yet applied, in order (idempotent; concurrent replicas take
    /// turns on sqlx's lock). Fails if an applied migration's file was changed since.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(StoreError::unavailable)
    }

    /// The versions and descriptions of the migrations this build knows, in order.
    pub fn known_migrations() -> Vec<(i64, String)> {
        MIGRATOR
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    }

    /// The migration versions applied to this database, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        // Before the first migration the table does not exist: nothing is applied.
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables
                WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(StoreError::unavailable)?;
        if !exists {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::unavailable)
    }

    /// The pool (every query of the PostgreSQL stores goes through it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Cheap health check, meant for `/ready`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }

    /// Drop the schema and everything in it (tests clean up with it). Irreversible.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        self.pool
            .execute(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema).as_str())
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }
}

/// Test support shared by the crates' tests: a fresh schema per test on the database named by
/// `VOXGUARD_TEST_POSTGRES_URL`, or `None` (after saying so on stderr) when it is not set.
#[doc(hidden)]
pub mod testing {
    use super::PgDatabase;

    /// The variable naming the test database.
    pub const URL_VAR: &str = "VOXGUARD_TEST_POSTGRES_URL";

    /// A unique schema name for `label` (lowercase letters, digits and underscores).
    pub fn unique_schema(label: &str) -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(30)
            .collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "t_{clean}_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            nanos % 100_000
        )
    }

    /// A migrated database in a fresh schema named after `label`, or `None` when
    /// `VOXGUARD_TEST_POSTGRES_URL` is not set (the test should then return early; this prints
    /// why). Panics if the variable is set but the database cannot be used: a configured
    /// server that does not answer is a failure, not a skip.
    pub async fn database(label: &str) -> Option<PgDatabase> {
        let Some(url) = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()) else {
            eprintln!("skipped on PostgreSQL ({label}): {URL_VAR} is not set");
            return None;
        };
        let database = PgDatabase::connect(&url, &unique_schema(label), 4)
            .await
            .unwrap_or_else(|e| panic!("{URL_VAR} is set but unusable: {e:?}"));
        database
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating the test schema failed: {e:?}"));
        Some(database)
    }
}
