//! Opening a data directory for `voxguard users` and `voxguard records`, and what can go wrong.
//!
//! This module owns the arguments every such command shares ([`DataArgs`]: `--data-dir`,
//! `--json`), the checks made before anything is opened (the records key must be *set*: the
//! library would otherwise generate a throw-away one; the records database must exist unless
//! the command may create it), opening the records service with the audit trail and the
//! compliance modes exactly as the runtime does ([`Workspace`]), the local actor (`cli:$USER`),
//! and the errors of these commands ([`CommandError`]) with their exit codes. It must not
//! decide what a command does, must never print or keep a key, and its error messages never
//! contain a secret, SQL, a subject id or a path (the data directory is shown on a separate
//! hint line by [`report`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use voxguard::guard::records::RecordCryptoError;
use voxguard::records::OperatorProblem;
use voxguard::store::{
    AttemptStore, AuditSink, SessionStore, SqliteAuditLog, StoreError, RECORDS_DB_FILE_NAME,
};
use voxguard::{Actor, Compliance, Records, RecordsConfig, RecordsError, State, StateConfig};
use zeroize::Zeroizing;

use crate::Exit;

/// The variable holding the records key (base64, at least 32 bytes).
pub const RECORDS_KEY_ENV: &str = "VOXGUARD_RECORDS_KEY";

/// The variable holding the previous records keys during a rotation.
pub const PREVIOUS_KEYS_ENV: &str = "VOXGUARD_RECORDS_KEYS_PREVIOUS";

/// The data directory when neither `--data-dir` nor `VOXGUARD_DATA_DIR` names one.
pub const DEFAULT_DATA_DIR: &str = "./voxguard-data";

/// The longest operator name shown for the local user (`cli:<user>`), in characters.
const MAX_USER_LEN: usize = 64;

/// Arguments shared by the `users` and `records` commands.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The agent's data directory (records.db, audit.db, voxguard.db).
    #[arg(
        long,
        value_name = "DIR",
        env = "VOXGUARD_DATA_DIR",
        default_value = DEFAULT_DATA_DIR,
        global = true
    )]
    pub data_dir: PathBuf,
    /// Print the result as one JSON object.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a `users` or `records` command failed. `Display` is the sentence printed after
/// `voxguard: error:`; it never contains a key, SQL, a subject id or a path.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// `VOXGUARD_RECORDS_KEY` is unset or empty.
    #[error("VOXGUARD_RECORDS_KEY is not set: the users and records commands need the records key the agent uses (base64, at least 32 bytes); the command line never generates one")]
    MissingRecordsKey,
    /// `VOXGUARD_RECORDS=off`.
    #[error("conversation records are switched off (VOXGUARD_RECORDS=off): unset it or set it to on to use the users and records commands")]
    RecordsOff,
    /// The data directory has no records database (and the command does not create one).
    #[error("there is no records database ({RECORDS_DB_FILE_NAME}) in the data directory: check --data-dir or VOXGUARD_DATA_DIR, or add the first operator with `voxguard users add NAME --role admin`")]
    NoRecordsDatabase,
    /// The environment is not a valid configuration (records, audit trail, mode, compliance).
    #[error("{0}")]
    Config(String),
    /// A command-line value is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),
    /// No such record (or it expired).
    #[error("no record with that id")]
    NotFound,
    /// The subject id is not usable.
    #[error("the subject id must be 1 to 128 characters without control characters")]
    InvalidSubject,
    /// An operator change was refused.
    #[error(transparent)]
    Operator(#[from] OperatorProblem),
    /// A data key is wrapped by a records key that is not configured.
    #[error("{0}")]
    UnknownKey(RecordCryptoError),
    /// A record could not be decrypted or decoded: it was altered, or its key is gone.
    #[error("the record cannot be read: {0}")]
    Unreadable(String),
    /// The audit trail could not be written, so nothing was done.
    #[error("the audit trail could not be written, so nothing was done")]
    AuditUnavailable,
    /// A subject deletion was committed but the database's log could not be scrubbed yet.
    #[error("the deletion was committed, but the records database's write-ahead log could not be emptied yet: run the command again to finish scrubbing")]
    ScrubIncomplete,
    /// The data store failed.
    #[error("the data store failed: {0}")]
    Store(String),
    /// The output could not be written.
    #[error("{0}")]
    Output(String),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    /// The exit code: usage and configuration problems are 2, failures of the machinery 3.
    pub fn exit(&self) -> Exit {
        match self {
            CommandError::MissingRecordsKey
            | CommandError::RecordsOff
            | CommandError::NoRecordsDatabase
            | CommandError::Config(_)
            | CommandError::InvalidArgument(_)
            | CommandError::NotFound
            | CommandError::InvalidSubject
            | CommandError::Operator(_)
            | CommandError::UnknownKey(_) => Exit::Usage,
            CommandError::Unreadable(_)
            | CommandError::AuditUnavailable
            | CommandError::ScrubIncomplete
            | CommandError::Store(_)
            | CommandError::Output(_)
            | CommandError::Internal(_) => Exit::Internal,
        }
    }
}

impl From<RecordsError> for CommandError {
    fn from(error: RecordsError) -> Self {
        match error {
            RecordsError::NotFound => CommandError::NotFound,
            RecordsError::InvalidSubject => CommandError::InvalidSubject,
            RecordsError::Crypto(crypto @ RecordCryptoError::UnknownKey { .. }) => {
                CommandError::UnknownKey(crypto)
            }
            RecordsError::Crypto(crypto) => CommandError::Unreadable(crypto.to_string()),
            error @ (RecordsError::KeyShredded | RecordsError::Corrupt) => {
                CommandError::Unreadable(error.to_string())
            }
            RecordsError::Store(store) => store.into(),
            RecordsError::AuditUnavailable => CommandError::AuditUnavailable,
            RecordsError::Operator(problem) => CommandError::Operator(problem),
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ScrubIncomplete => CommandError::ScrubIncomplete,
            StoreError::UnknownCursor => CommandError::InvalidArgument(
                "--after does not name a stored record: give the id of the last record of the previous page".into(),
            ),
            other => CommandError::Store(other.describe()),
        }
    }
}

/// The messages of `error` and its sources (the store's own `Display` is deliberately vague).
/// Whether the database may be created by the command (only `users add`, which bootstraps the
/// first admin of a new deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the data directory and the records database if missing.
    IfMissing,
    /// Refuse when the records database does not exist.
    Never,
}

/// An opened data directory: the records service (audited to the directory's audit trail) and
/// the actor the command's accesses are recorded under.
pub struct Workspace {
    /// The records service.
    pub records: Records,
    /// Who is acting: `cli:<user>`, role `local-admin`.
    pub actor: Actor,
    /// The data directory.
    pub dir: PathBuf,
    /// The sessions and attempt counters when the state is shared on PostgreSQL
    /// (`VOXGUARD_DATABASE_URL`); `None` for the data directory's SQLite files.
    pub shared: Option<(Arc<dyn SessionStore>, Arc<dyn AttemptStore>)>,
    audit: Audit,
}

/// The audit trail a command writes to.
enum Audit {
    Sqlite(Arc<SqliteAuditLog>),
    Shared(Arc<dyn AuditSink>),
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("dir", &self.dir)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// Check the environment and open the data directory of `args`.
    pub async fn open(args: &DataArgs, create: Create) -> Result<Self, CommandError> {
        // Before anything else: without a key the library would make up one, and everything
        // written with it would be unreadable afterwards.
        if env_value(RECORDS_KEY_ENV).is_none() {
            return Err(CommandError::MissingRecordsKey);
        }
        let production = production()?;
        let compliance =
            Compliance::parse(&std::env::var("VOXGUARD_COMPLIANCE").unwrap_or_default())
                .map_err(|error| CommandError::Config(error.to_string()))?;
        let dir = args.data_dir.clone();
        let state =
            StateConfig::from_env().map_err(|error| CommandError::Config(error.to_string()))?;
        if state.shared() {
            // The agent's state is on PostgreSQL: work there, exactly as its replicas do.
            let state = State::open(&state, &dir, production)
                .await
                .map_err(|error| CommandError::Config(error.to_string()))?;
            let config = state.records().ok_or(CommandError::RecordsOff)?;
            let audit = state.audit();
            warn_unsigned();
            let records = Records::open(config, Some(audit.clone()), compliance);
            return Ok(Self {
                records,
                actor: Actor::cli(&local_user()),
                dir,
                shared: Some((state.sessions(), state.attempts())),
                audit: Audit::Shared(audit),
            });
        }
        if create == Create::Never && !dir.join(RECORDS_DB_FILE_NAME).is_file() {
            return Err(CommandError::NoRecordsDatabase);
        }
        let config = RecordsConfig::open_from_env(&dir, production)
            .await
            .map_err(|error| CommandError::Config(error.to_string()))?
            .ok_or(CommandError::RecordsOff)?;
        let audit = Arc::new(
            voxguard::open_audit_log_from_env(&dir, production)
                .await
                .map_err(|error| CommandError::Config(error.to_string()))?,
        );
        warn_unsigned();
        let records = Records::open(config, Some(audit.clone()), compliance);
        Ok(Self {
            records,
            actor: Actor::cli(&local_user()),
            dir,
            shared: None,
            audit: Audit::Sqlite(audit),
        })
    }

    /// Drop the records service and close the audit trail, waiting for every event to be
    /// stored.
    pub async fn close(self) -> Result<(), CommandError> {
        let Self { records, audit, .. } = self;
        drop(records);
        match audit {
            Audit::Sqlite(audit) => match Arc::try_unwrap(audit) {
                Ok(audit) => audit
                    .close()
                    .await
                    .map_err(|error| CommandError::Store(error.describe())),
                // Still shared (cannot happen once the service is dropped): the appends
                // already waited for their commit, so dropping it loses nothing.
                Err(_) => Ok(()),
            },
            // Every append already waited for its commit; the flush signs the head.
            Audit::Shared(audit) => audit
                .flush()
                .await
                .map_err(|error| CommandError::Store(error.describe())),
        }
    }
}

/// Say once that checkpoints written without `VOXGUARD_AUDIT_KEY` are not signed.
fn warn_unsigned() {
    if env_value("VOXGUARD_AUDIT_KEY").is_none() {
        eprintln!(
            "voxguard: warning: VOXGUARD_AUDIT_KEY is not set: the audit checkpoints written now are not signed"
        );
    }
}

/// The value of `name`, trimmed, if set and not empty (as the library reads it), zeroized when
/// dropped.
pub fn env_value(name: &str) -> Option<Zeroizing<String>> {
    let value = Zeroizing::new(std::env::var(name).ok()?);
    (!value.trim().is_empty()).then(|| Zeroizing::new(value.trim().to_string()))
}

/// `VOXGUARD_ENV`, read as the server reads it: production or development.
fn production() -> Result<bool, CommandError> {
    match env_value("VOXGUARD_ENV").as_deref().map(String::as_str) {
        None | Some("development") | Some("dev") | Some("test") => Ok(false),
        Some("production") | Some("prod") => Ok(true),
        Some(other) => Err(CommandError::Config(format!(
            "VOXGUARD_ENV={other:?} is not valid: production or development"
        ))),
    }
}

/// The local user the accesses are recorded under: `$USER` (control characters dropped, at
/// most 64 characters), or `unknown`.
pub fn local_user() -> String {
    let user: String = std::env::var("USER")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_LEN)
        .collect();
    let user = user.trim();
    if user.is_empty() {
        "unknown".to_string()
    } else {
        user.to_string()
    }
}

/// Run `command` on a fresh single-threaded runtime.
pub fn block_on<F: Future<Output = Exit>>(command: F) -> Exit {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(command),
        Err(error) => {
            eprintln!("voxguard: error: internal error: cannot start the runtime: {error}");
            Exit::Internal
        }
    }
}

/// Open the data directory of `args`, run `command` on it, close it, and print the result:
/// the text the command returned on stdout, or the error on stderr. Returns the exit code.
pub async fn run<F>(args: &DataArgs, create: Create, command: F) -> Exit
where
    F: AsyncFnOnce(&Workspace) -> Result<Zeroizing<String>, CommandError>,
{
    let workspace = match Workspace::open(args, create).await {
        Ok(workspace) => workspace,
        Err(error) => return report(&error, &args.data_dir),
    };
    let outcome = command(&workspace).await;
    let closed = workspace.close().await;
    let exit = match outcome {
        Ok(text) => crate::print_stdout(&text),
        Err(error) => report(&error, &args.data_dir),
    };
    match closed {
        Ok(()) => exit,
        Err(error) => report(&error, &args.data_dir).max_with(exit),
    }
}

/// Print `error` (and, for a missing database, which directory was looked at) on stderr;
/// return its exit code.
pub fn report(error: &CommandError, dir: &Path) -> Exit {
    eprintln!("voxguard: error: {error}");
    if matches!(error, CommandError::NoRecordsDatabase) {
        eprintln!("voxguard: data directory: {}", dir.display());
    }
    error.exit()
}

impl Exit {
    /// The more serious of two exit codes (internal over usage over success).
    fn max_with(self, other: Exit) -> Exit {
        if (other as u8) > (self as u8) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_errors_map_to_exit_codes_without_leaking() {
        let cases: Vec<(RecordsError, Exit, &str)> = vec![
            (
                RecordsError::NotFound,
                Exit::Usage,
                "no record with that id",
            ),
            (RecordsError::InvalidSubject, Exit::Usage, "subject id"),
            (
                RecordsError::Crypto(RecordCryptoError::UnknownKey {
                    kek_id: "0011223344556677".into(),
                }),
                Exit::Usage,
                "VOXGUARD_RECORDS_KEYS_PREVIOUS",
            ),
            (
                RecordsError::Crypto(RecordCryptoError::Tampered),
                Exit::Internal,
                "cannot be read: the record did not decrypt",
            ),
            (
                RecordsError::KeyShredded,
                Exit::Internal,
                "data key was deleted",
            ),
            (
                RecordsError::AuditUnavailable,
                Exit::Internal,
                "nothing was done",
            ),
            (
                RecordsError::Store(StoreError::ScrubIncomplete),
                Exit::Internal,
                "run the command again",
            ),
            (
                RecordsError::Store(StoreError::UnknownCursor),
                Exit::Usage,
                "--after",
            ),
            (
                RecordsError::Operator(OperatorProblem::LastAdmin),
                Exit::Usage,
                "last admin",
            ),
        ];
        for (error, exit, needle) in cases {
            let error = CommandError::from(error);
            assert_eq!(error.exit(), exit, "{error:?}");
            assert!(error.to_string().contains(needle), "{error}");
        }
        assert_eq!(CommandError::MissingRecordsKey.exit(), Exit::Usage);
        assert!(CommandError::MissingRecordsKey
            .to_string()
            .contains(RECORDS_KEY_ENV));
    }

    #[test]
    fn the_more_serious_exit_wins() {
        assert_eq!(Exit::Ok.max_with(Exit::Internal), Exit::Internal);
        assert_eq!(Exit::Internal.max_with(Exit::Usage), Exit::Internal);
        assert_eq!(Exit::Usage.max_with(Exit::Ok), Exit::Usage);
    }
}
