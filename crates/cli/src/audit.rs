//! `voxguard audit verify`: check a stored audit log and report the verdict.
//!
//! This module owns the command's arguments ([`VerifyArgs`]), where the log is found (`--db`,
//! `--dir`, `--jsonl`, or a PostgreSQL schema by `--database-url` / `VOXGUARD_DATABASE_URL`),
//! reading the optional audit key from the environment (`--key-env`, default
//! `VOXGUARD_AUDIT_KEY`), and how the verdict is printed (text or `--json`) and mapped to an
//! [`Exit`] code. The verification itself is `voxguard-store`'s `verify_path` /
//! `PgAuditLog::verify_url` over the pure verifier in `voxguard_guard::audit`; this module adds
//! no rules of its own. It must never print the key or the database URL (it may hold a
//! password), and a missing or unreadable file or schema must be a usage error, never an empty
//! OK.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use serde_json::json;
use voxguard_guard::audit::{AuditKey, ChainProblem, Checkpoint, VerifyReport};
use voxguard_store::{JsonlAuditLog, PgAuditLog, SqliteAuditLog, StoreError, AUDIT_DB_FILE_NAME};
use zeroize::Zeroizing;

use crate::Exit;

/// The environment variable that holds the audit key unless `--key-env` names another.
pub const DEFAULT_KEY_ENV: &str = "VOXGUARD_AUDIT_KEY";

/// The data directory used when no log is named.
pub const DEFAULT_DATA_DIR: &str = "./voxguard-data";

/// The environment variable naming the PostgreSQL database when no log is named.
pub const DATABASE_URL_ENV: &str = "VOXGUARD_DATABASE_URL";

/// The environment variable naming the PostgreSQL schema unless `--database-schema` does.
pub const DATABASE_SCHEMA_ENV: &str = "VOXGUARD_DATABASE_SCHEMA";

/// The PostgreSQL schema used when none is named.
pub const DEFAULT_DATABASE_SCHEMA: &str = "public";

/// Arguments of `voxguard audit verify`.
#[derive(Clone, Default, Args)]
#[command(group(
    ArgGroup::new("log")
        .args(["db", "dir", "jsonl", "database_url"])
        .multiple(false)
))]
pub struct VerifyArgs {
    /// The SQLite audit database to verify.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The data directory whose audit.db to verify [default: ./voxguard-data].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The JSON-lines audit log to verify (its checkpoints are read from PATH.checkpoints).
    #[arg(long, value_name = "PATH")]
    pub jsonl: Option<PathBuf>,
    /// The PostgreSQL database whose audit log to verify (postgres://user:password@host/db);
    /// without any log option, $VOXGUARD_DATABASE_URL is used when set. Prefer the variable:
    /// a password on the command line is visible to other users. The URL is never printed.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// The PostgreSQL schema holding the audit tables [default: $VOXGUARD_DATABASE_SCHEMA, or
    /// public].
    #[arg(long, value_name = "SCHEMA", conflicts_with_all = ["db", "dir", "jsonl"])]
    pub database_schema: Option<String>,
    /// Verify from this sequence number on (a signed checkpoint at N-1, if any, anchors it).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub from: u64,
    /// The environment variable holding the base64 audit (HMAC) key that signs checkpoints
    /// [default: VOXGUARD_AUDIT_KEY]. Without a key, checkpoints are not checked and a cut-off
    /// tail cannot be detected. The key is never printed.
    #[arg(long, value_name = "NAME")]
    pub key_env: Option<String>,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl std::fmt::Debug for VerifyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the database URL: it may hold a password.
        f.debug_struct("VerifyArgs")
            .field("db", &self.db)
            .field("dir", &self.dir)
            .field("jsonl", &self.jsonl)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("database_schema", &self.database_schema)
            .field("from", &self.from)
            .field("key_env", &self.key_env)
            .field("json", &self.json)
            .finish()
    }
}

/// Where environment variables come from: the process ([`ProcessEnv`]) or, in tests, a map.
pub trait Env {
    /// The value of the variable `name` (a valid name: non-empty, no `=`, no NUL), if set.
    fn var_os(&self, name: &str) -> Option<OsString>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var_os(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }
}

/// Run `voxguard audit verify`: print the verdict (stdout) or the error (stderr) and return the
/// exit code: [`Exit::Ok`], [`Exit::Failed`], [`Exit::Usage`] or [`Exit::Internal`].
pub fn verify(args: &VerifyArgs, env: &dyn Env) -> Exit {
    match check(args, env) {
        Ok(verdict) => {
            if args.json {
                if let Some(warning) = verdict.no_key_warning() {
                    eprintln!("voxguard: warning: {warning}");
                }
            }
            let exit = verdict.exit();
            match crate::print_stdout(&verdict.render(args.json, args.from)) {
                Exit::Ok => exit,
                failed => failed,
            }
        }
        Err(err) => {
            eprintln!("voxguard: error: {}", err.message());
            err.exit()
        }
    }
}

/// Why the command could not reach a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Bad arguments, a missing or unreadable file, a bad key: exit 2.
    Usage(String),
    /// Something that should not happen: exit 3.
    Internal(String),
}

impl VerifyError {
    /// The message, for stderr (never contains the key).
    pub fn message(&self) -> &str {
        match self {
            VerifyError::Usage(message) | VerifyError::Internal(message) => message,
        }
    }

    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            VerifyError::Usage(_) => Exit::Usage,
            VerifyError::Internal(_) => Exit::Internal,
        }
    }
}

/// The outcome of a verification that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What was found.
    pub finding: Finding,
    /// `None` when a key was given; else the name of the variable that was not set.
    pub missing_key_env: Option<String>,
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The verifier's report.
    Report(VerifyReport),
    /// A file is damaged in a way the store cannot read past (a checkpoint line that is not a
    /// checkpoint, a log line that is not UTF-8): tampering or damage all the same.
    Damaged {
        /// The sequence number concerned, when it can be told.
        seq: Option<u64>,
        /// The closest problem code.
        problem: ChainProblem,
        /// What is wrong, as a sentence.
        message: String,
    },
}

impl Verdict {
    /// [`Exit::Ok`] for a verified chain, else [`Exit::Failed`].
    pub fn exit(&self) -> Exit {
        match &self.finding {
            Finding::Report(report) if report.is_ok() => Exit::Ok,
            _ => Exit::Failed,
        }
    }

    /// The warning to give when the chain verified without a key.
    pub fn no_key_warning(&self) -> Option<String> {
        let name = self.missing_key_env.as_deref()?;
        matches!(self.finding, Finding::Report(VerifyReport::Ok { .. })).then(|| {
            format!(
                "checkpoints NOT checked because no key was given (${name} is not set), so \
                 truncation of the tail cannot be detected"
            )
        })
    }

    /// The verdict as printed: one line of text, or one JSON object (`from` is the first
    /// sequence number that was asked for), with a final newline.
    pub fn render(&self, json: bool, from: u64) -> String {
        let mut out = if json {
            self.render_json().to_string()
        } else {
            self.render_text(from)
        };
        out.push('\n');
        out
    }

    fn render_json(&self) -> serde_json::Value {
        match &self.finding {
            Finding::Report(VerifyReport::Ok {
                records,
                last_seq,
                checkpoints_checked,
            }) => json!({
                "ok": true,
                "records": records,
                "last_seq": last_seq,
                "checkpoints_checked": checkpoints_checked,
            }),
            Finding::Report(VerifyReport::Broken { seq, problem }) => json!({
                "ok": false,
                "seq": seq,
                "problem": problem.as_str(),
                "message": problem.to_string(),
            }),
            Finding::Damaged {
                seq,
                problem,
                message,
            } => json!({
                "ok": false,
                "seq": seq,
                "problem": problem.as_str(),
                "message": message,
            }),
        }
    }

    fn render_text(&self, from: u64) -> String {
        let mut out = String::new();
        match &self.finding {
            Finding::Report(VerifyReport::Ok {
                records,
                last_seq,
                checkpoints_checked,
            }) => {
                let _ = write!(out, "OK: {records} records verified");
                match last_seq {
                    Some(last) => {
                        let _ = write!(out, " (last seq {last})");
                    }
                    None => {
                        let _ = write!(out, " (none from seq {} on)", from.max(1));
                    }
                }
                match self.no_key_warning() {
                    Some(warning) => {
                        let _ = write!(out, "; {warning}");
                    }
                    None => {
                        let _ = write!(out, ", {checkpoints_checked} checkpoints checked");
                    }
                }
            }
            Finding::Report(VerifyReport::Broken { seq, problem }) => {
                let _ = write!(out, "BROKEN at seq {seq}: {problem} ({})", problem.as_str());
            }
            Finding::Damaged {
                seq,
                problem,
                message,
            } => {
                match seq {
                    Some(seq) => {
                        let _ = write!(out, "BROKEN at seq {seq}: ");
                    }
                    None => out.push_str("BROKEN: "),
                }
                let _ = write!(out, "{message} ({})", problem.as_str());
            }
        }
        out
    }
}

/// A PostgreSQL audit log to verify.
#[derive(Clone, PartialEq, Eq)]
struct PgSource {
    /// Never printed: it may hold a password.
    url: Zeroizing<String>,
    schema: String,
}

impl std::fmt::Debug for PgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSource")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgSource {
    /// The PostgreSQL log named by `--database-url` or, when no log option is given at all, by
    /// `$VOXGUARD_DATABASE_URL`; its schema from `--database-schema`,
    /// `$VOXGUARD_DATABASE_SCHEMA` or [`DEFAULT_DATABASE_SCHEMA`]. `None`: verify a file.
    fn of(args: &VerifyArgs, env: &dyn Env) -> Result<Option<Self>, VerifyError> {
        let file_named = args.db.is_some() || args.dir.is_some() || args.jsonl.is_some();
        let url = match &args.database_url {
            Some(url) if url.trim().is_empty() => {
                return Err(usage("--database-url is empty".to_owned()));
            }
            Some(url) => Some(Zeroizing::new(url.clone())),
            None if !file_named => env_text(env, DATABASE_URL_ENV)?.map(Zeroizing::new),
            None => None,
        };
        let Some(url) = url else {
            if args.database_schema.is_some() {
                return Err(usage(format!(
                    "--database-schema needs --database-url URL (or ${DATABASE_URL_ENV})"
                )));
            }
            return Ok(None);
        };
        let schema = match &args.database_schema {
            Some(schema) => schema.clone(),
            None => env_text(env, DATABASE_SCHEMA_ENV)?
                .unwrap_or_else(|| DEFAULT_DATABASE_SCHEMA.to_owned()),
        };
        Ok(Some(PgSource { url, schema }))
    }
}

/// The value of the variable `name`, `None` when it is unset or empty.
fn env_text(env: &dyn Env, name: &str) -> Result<Option<String>, VerifyError> {
    let Some(value) = env.var_os(name) else {
        return Ok(None);
    };
    let text = value
        .into_string()
        .map_err(|_| usage(format!("${name} is not valid UTF-8 text")))?;
    Ok(Some(text).filter(|text| !text.trim().is_empty()))
}

/// Which log file to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A SQLite audit database; `defaulted` when no option named it.
    Sqlite { path: PathBuf, defaulted: bool },
    /// A JSON-lines log.
    Jsonl { path: PathBuf },
}

impl Source {
    fn of(args: &VerifyArgs) -> Self {
        if let Some(path) = &args.db {
            return Source::Sqlite {
                path: path.clone(),
                defaulted: false,
            };
        }
        if let Some(path) = &args.jsonl {
            return Source::Jsonl { path: path.clone() };
        }
        let (dir, defaulted) = match &args.dir {
            Some(dir) => (dir.clone(), false),
            None => (PathBuf::from(DEFAULT_DATA_DIR), true),
        };
        Source::Sqlite {
            path: dir.join(AUDIT_DB_FILE_NAME),
            defaulted,
        }
    }

    fn path(&self) -> &Path {
        match self {
            Source::Sqlite { path, .. } | Source::Jsonl { path } => path,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Source::Sqlite { .. } => "audit database",
            Source::Jsonl { .. } => "JSON-lines audit log",
        }
    }

    /// Refuse a path that is not a readable file, before the store could treat it as empty.
    fn check_readable(&self) -> Result<(), VerifyError> {
        let path = self.path();
        let what = self.what();
        let hint = match self {
            Source::Sqlite {
                defaulted: true, ..
            } => " (no log was named: use --db PATH, --dir DIR or --jsonl PATH)",
            _ => "",
        };
        let metadata = std::fs::metadata(path).map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                usage(format!(
                    "no {what} at {}: file not found{hint}",
                    path.display()
                ))
            } else {
                usage(format!(
                    "cannot read the {what} at {}: {err}",
                    path.display()
                ))
            }
        })?;
        if !metadata.is_file() {
            return Err(usage(format!(
                "{} is not a file; expected the {what}{hint}",
                path.display()
            )));
        }
        std::fs::File::open(path).map(drop).map_err(|err| {
            usage(format!(
                "cannot read the {what} at {}: {err}",
                path.display()
            ))
        })
    }
}

fn usage(message: String) -> VerifyError {
    VerifyError::Usage(message)
}

/// Resolve the arguments, read the key, and verify: the verdict, or why there is none.
pub fn check(args: &VerifyArgs, env: &dyn Env) -> Result<Verdict, VerifyError> {
    let postgres = PgSource::of(args, env)?;
    let source = Source::of(args);
    let (key, missing_key_env) = load_key(args.key_env.as_deref(), env)?;
    if postgres.is_none() {
        source.check_readable()?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| VerifyError::Internal(format!("cannot start the runtime: {err}")))?;
    let finding = runtime.block_on(async {
        if let Some(pg) = &postgres {
            return PgAuditLog::verify_url(&pg.url, &pg.schema, key.as_ref(), args.from)
                .await
                .map(Finding::Report)
                .map_err(|err| postgres_error(&err, &pg.schema));
        }
        match &source {
            Source::Sqlite { path, .. } => {
                SqliteAuditLog::verify_path(path, key.as_ref(), args.from)
                    .await
                    .map(Finding::Report)
                    .map_err(|err| sqlite_error(&err, path))
            }
            Source::Jsonl { path } => JsonlAuditLog::verify_path(path, key.as_ref(), args.from)
                .await
                .map(Finding::Report)
                .or_else(|err| jsonl_error(&err, path)),
        }
    })?;
    Ok(Verdict {
        finding,
        missing_key_env,
    })
}

/// The key named by `--key-env` (or [`DEFAULT_KEY_ENV`]), and the variable's name when it is
/// not set. The default variable may be unset (no key); a variable named explicitly must be
/// set; a set variable must hold a valid key.
fn load_key(
    key_env: Option<&str>,
    env: &dyn Env,
) -> Result<(Option<AuditKey>, Option<String>), VerifyError> {
    let (name, explicit) = match key_env {
        Some(name) => (name, true),
        None => (DEFAULT_KEY_ENV, false),
    };
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(usage(format!(
            "--key-env {name:?} is not a valid environment variable name"
        )));
    }
    let Some(value) = env.var_os(name) else {
        if explicit {
            return Err(usage(format!(
                "--key-env {name}: the environment variable {name} is not set"
            )));
        }
        return Ok((None, Some(name.to_owned())));
    };
    let bytes = Zeroizing::new(value.into_encoded_bytes());
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        usage(format!(
            "the audit key in ${name} is not valid base64 (it is not even UTF-8 text)"
        ))
    })?;
    if text.trim().is_empty() {
        return Err(usage(format!(
            "${name} is set but empty: set it to the base64 audit key, or unset it to verify \
             without checking checkpoints"
        )));
    }
    let key = AuditKey::from_base64(text)
        .map_err(|err| usage(format!("the audit key in ${name} was refused: {err}")))?;
    Ok((Some(key), None))
}

/// The messages of `err`'s sources (the store's own `Display` is deliberately vague).
fn causes(err: &StoreError) -> String {
    let mut out = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if !out.is_empty() {
            out.push_str(": ");
        }
        let _ = write!(out, "{cause}");
        source = cause.source();
    }
    if out.is_empty() {
        out = err.to_string();
    }
    out
}

fn sqlite_error(err: &StoreError, path: &Path) -> VerifyError {
    match err {
        StoreError::Unavailable { .. } => usage(format!(
            "cannot read the audit database at {} (is it a voxguard audit database?): {}",
            path.display(),
            causes(err)
        )),
        _ => VerifyError::Internal(format!(
            "verifying the audit database at {} failed: {}",
            path.display(),
            causes(err)
        )),
    }
}

/// A PostgreSQL error (the URL is never part of it): an unreachable server, a refused login,
/// a schema without audit tables is a usage error; anything else internal.
fn postgres_error(err: &StoreError, schema: &str) -> VerifyError {
    match err {
        StoreError::Unavailable { .. } => usage(format!(
            "cannot read the audit log in PostgreSQL schema {schema:?} (is the database \
             reachable and migrated, and the schema right?): {}",
            causes(err)
        )),
        _ => VerifyError::Internal(format!(
            "verifying the audit log in PostgreSQL schema {schema:?} failed: {}",
            causes(err)
        )),
    }
}

/// A JSON-lines error: damage the store cannot read past is a finding (exit 1), anything
/// else a read error (exit 2).
fn jsonl_error(err: &StoreError, path: &Path) -> Result<Finding, VerifyError> {
    let damaged = match err {
        StoreError::Corrupt { .. } => true,
        StoreError::Io { source } => source.kind() == std::io::ErrorKind::InvalidData,
        _ => false,
    };
    if damaged {
        let sidecar = JsonlAuditLog::checkpoints_path(path);
        if let Some((line, seq)) =
            first_bad_line(&sidecar, |line| Checkpoint::from_json_line(line).is_ok())
        {
            return Ok(Finding::Damaged {
                seq,
                problem: ChainProblem::CheckpointForged,
                message: format!(
                    "line {line} of the checkpoint file {} is not a valid checkpoint: it was \
                     altered or damaged",
                    sidecar.display()
                ),
            });
        }
        if let Some((line, seq)) = first_bad_line(path, |_| true) {
            return Ok(Finding::Damaged {
                seq: seq.or(u64::try_from(line).ok()),
                problem: ChainProblem::Modified,
                message: format!(
                    "line {line} of the log is not valid UTF-8 text: the record was modified \
                     or damaged"
                ),
            });
        }
    }
    match err {
        StoreError::Io { source } => Err(usage(format!(
            "cannot read the JSON-lines audit log at {}: {source}",
            path.display()
        ))),
        _ => Err(VerifyError::Internal(format!(
            "verifying the JSON-lines audit log at {} failed: {}",
            path.display(),
            causes(err)
        ))),
    }
}

/// The first complete line of the file at `path` that is not UTF-8 or fails `valid`: its line
/// number (from 1) and the sequence number it claims, if one can be read from it.
fn first_bad_line(path: &Path, valid: impl Fn(&str) -> bool) -> Option<(usize, Option<u64>)> {
    let bytes = std::fs::read(path).ok()?;
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..end],
        None => return None,
    };
    complete
        .split(|&b| b == b'\n')
        .enumerate()
        .find_map(|(index, line)| {
            let bad = std::str::from_utf8(line).map_or(true, |text| !valid(text));
            bad.then(|| (index + 1, seq_hint(&String::from_utf8_lossy(line))))
        })
}

/// The `seq` a (damaged) line claims, if it is still JSON with one.
fn seq_hint(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<String, OsString>);

    impl Env for MapEnv {
        fn var_os(&self, name: &str) -> Option<OsString> {
            self.0.get(name).cloned()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
                .collect(),
        )
    }

    const KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

    #[test]
    fn key_rules() {
        let (key, missing) = load_key(None, &env(&[])).unwrap();
        assert!(key.is_none());
        assert_eq!(missing.as_deref(), Some(DEFAULT_KEY_ENV));

        let (key, missing) = load_key(None, &env(&[(DEFAULT_KEY_ENV, KEY)])).unwrap();
        assert!(key.is_some() && missing.is_none());
        let (key, _) = load_key(Some("OTHER"), &env(&[("OTHER", KEY)])).unwrap();
        assert!(key.is_some());

        for (name, value, needle) in [
            (DEFAULT_KEY_ENV, "not base64!", "base64"),
            (DEFAULT_KEY_ENV, "AAAA", "32 bytes"),
            (DEFAULT_KEY_ENV, "  ", "empty"),
        ] {
            let err = load_key(None, &env(&[(name, value)])).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage);
            assert!(err.message().contains(needle), "{err:?}");
        }
        // A variable named explicitly must be set.
        let err = load_key(Some("NOPE"), &env(&[])).unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(err.message().contains("NOPE"));
        for bad in ["", "A=B", "A\0B"] {
            assert_eq!(
                load_key(Some(bad), &env(&[])).unwrap_err().exit(),
                Exit::Usage
            );
        }
        // The key itself never appears in a message.
        let long_bad = format!("{KEY}!");
        let err = load_key(None, &env(&[(DEFAULT_KEY_ENV, &long_bad)])).unwrap_err();
        assert!(!err.message().contains(&KEY[..12]), "{err:?}");
    }

    #[test]
    fn sources() {
        let args = VerifyArgs::default();
        assert_eq!(
            Source::of(&args),
            Source::Sqlite {
                path: PathBuf::from("./voxguard-data/audit.db"),
                defaulted: true
            }
        );
        let args = VerifyArgs {
            dir: Some("/data".into()),
            ..VerifyArgs::default()
        };
        assert_eq!(Source::of(&args).path(), Path::new("/data/audit.db"));
        let args = VerifyArgs {
            jsonl: Some("/x.jsonl".into()),
            ..VerifyArgs::default()
        };
        assert_eq!(
            Source::of(&args),
            Source::Jsonl {
                path: "/x.jsonl".into()
            }
        );
    }

    #[test]
    fn postgres_sources() {
        let url = "postgres://u:pw-secret@db.example/voxguard";
        let with_url = env(&[(DATABASE_URL_ENV, url)]);
        // Nothing named and no variable: a file.
        assert_eq!(
            PgSource::of(&VerifyArgs::default(), &env(&[])).unwrap(),
            None
        );
        // The variable names the database when no log option is given, in schema `public`...
        let pg = PgSource::of(&VerifyArgs::default(), &with_url)
            .unwrap()
            .unwrap();
        assert_eq!((pg.url.as_str(), pg.schema.as_str()), (url, "public"));
        // ... but never over a file option; an empty variable counts as unset.
        let args = VerifyArgs {
            db: Some("a.db".into()),
            ..VerifyArgs::default()
        };
        assert_eq!(PgSource::of(&args, &with_url).unwrap(), None);
        let empty = env(&[(DATABASE_URL_ENV, "")]);
        assert_eq!(PgSource::of(&VerifyArgs::default(), &empty).unwrap(), None);
        // The schema: --database-schema, else the variable, else `public`.
        let mut args = VerifyArgs {
            database_url: Some(url.into()),
            ..VerifyArgs::default()
        };
        let with_schema = env(&[(DATABASE_SCHEMA_ENV, "tenant_a")]);
        let pg = PgSource::of(&args, &with_schema).unwrap().unwrap();
        assert_eq!(pg.schema, "tenant_a");
        args.database_schema = Some("tenant_b".into());
        let pg = PgSource::of(&args, &with_schema).unwrap().unwrap();
        assert_eq!(pg.schema, "tenant_b");
        // Neither the arguments nor the source ever print the URL.
        let shown = format!("{args:?} {pg:?}");
        assert!(
            !shown.contains("pw-secret") && shown.contains("tenant_b"),
            "{shown}"
        );
        // A schema without a database, and an empty URL, are usage errors.
        let args = VerifyArgs {
            database_schema: Some("s".into()),
            ..VerifyArgs::default()
        };
        let err = PgSource::of(&args, &env(&[])).unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        let args = VerifyArgs {
            database_url: Some(" ".into()),
            ..VerifyArgs::default()
        };
        assert_eq!(
            PgSource::of(&args, &env(&[])).unwrap_err().exit(),
            Exit::Usage
        );
    }

    #[test]
    fn rendering() {
        let ok = |missing: Option<&str>| Verdict {
            finding: Finding::Report(VerifyReport::Ok {
                records: 25,
                last_seq: Some(25),
                checkpoints_checked: 2,
            }),
            missing_key_env: missing.map(str::to_owned),
        };
        assert_eq!(
            ok(None).render(false, 1),
            "OK: 25 records verified (last seq 25), 2 checkpoints checked\n"
        );
        let text = ok(Some("VOXGUARD_AUDIT_KEY")).render(false, 1);
        assert!(text.starts_with("OK: 25 records verified (last seq 25); checkpoints NOT checked"));
        assert!(text.contains("$VOXGUARD_AUDIT_KEY") && text.contains("truncation"));
        assert_eq!(ok(None).exit(), Exit::Ok);
        let value: serde_json::Value = serde_json::from_str(&ok(None).render(true, 1)).unwrap();
        assert_eq!(
            value,
            json!({"ok": true, "records": 25, "last_seq": 25, "checkpoints_checked": 2})
        );

        let empty = Verdict {
            finding: Finding::Report(VerifyReport::Ok {
                records: 0,
                last_seq: None,
                checkpoints_checked: 0,
            }),
            missing_key_env: None,
        };
        assert_eq!(
            empty.render(false, 7),
            "OK: 0 records verified (none from seq 7 on), 0 checkpoints checked\n"
        );
        let value: serde_json::Value = serde_json::from_str(&empty.render(true, 7)).unwrap();
        assert_eq!(value["last_seq"], serde_json::Value::Null);

        let broken = Verdict {
            finding: Finding::Report(VerifyReport::Broken {
                seq: 16,
                problem: ChainProblem::TruncatedAfterCheckpoint { checkpoint_seq: 20 },
            }),
            missing_key_env: None,
        };
        assert_eq!(broken.exit(), Exit::Failed);
        let text = broken.render(false, 1);
        assert!(
            text.starts_with("BROKEN at seq 16: the log was truncated"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("(truncated)"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&broken.render(true, 1)).unwrap();
        assert_eq!(value["ok"], false);
        assert_eq!(value["seq"], 16);
        assert_eq!(value["problem"], "truncated");
        assert!(value["message"].as_str().unwrap().contains("20"));

        let damaged = Verdict {
            finding: Finding::Damaged {
                seq: None,
                problem: ChainProblem::CheckpointForged,
                message: "line 2 is bad".into(),
            },
            missing_key_env: Some("X".into()),
        };
        assert_eq!(damaged.exit(), Exit::Failed);
        assert!(damaged.no_key_warning().is_none());
        assert_eq!(
            damaged.render(false, 1),
            "BROKEN: line 2 is bad (checkpoint_forged)\n"
        );
    }

    #[test]
    fn bad_lines_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(
            &path,
            b"{\"seq\":1}\n{\"seq\":2,\"x\":\"\xff\"}\n{\"seq\":3",
        )
        .unwrap();
        assert_eq!(first_bad_line(&path, |_| true), Some((2, Some(2))));
        assert_eq!(
            first_bad_line(&path, |line| !line.contains('1')),
            Some((1, Some(1)))
        );
        std::fs::write(&path, b"ok\nok\npartial \xff").unwrap();
        assert_eq!(first_bad_line(&path, |_| true), None);
        assert_eq!(first_bad_line(&dir.path().join("none"), |_| true), None);
    }
}
