//! End-to-end tests of `voxguard audit verify`: real audit logs written by the store's sinks,
//! tampered with directly (SQL on the database, edits of the JSON-lines file), checked by the
//! compiled binary; stdout, stderr and the exit code are asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};
use voxguard_guard::audit::{AuditEvent, AuditKey, AuditKind, Outcome};
use voxguard_store::{AuditSink as _, Durability, JsonlAuditLog, SqliteAuditLog};

/// The raw test key (48 bytes) and its base64 text, as an operator would export it.
const KEY_BYTES: [u8; 48] = [0x5A; 48];

fn key_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(KEY_BYTES)
}

fn key() -> AuditKey {
    AuditKey::from_bytes(KEY_BYTES.to_vec()).unwrap()
}

fn event(i: u64) -> AuditEvent {
    let mut event = AuditEvent::new(AuditKind::ToolCalled, 1_700_000_000_000 + i);
    event.agent = Some("bank".into());
    event.call_id = Some(format!("call-{i}"));
    event.caller = Some("***4567".into());
    event.function = Some("get_balance".into());
    event.arguments = Some(json!({"account": "[REDACTED]", "n": i}));
    event.outcome = Some(Outcome::Ok);
    event
}

/// What one run of the binary produced.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `voxguard` with `args` in `cwd`, with `VOXGUARD_AUDIT_KEY` set to `key` (or unset).
fn voxguard_in(cwd: &Path, args: &[&str], key: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxguard"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("VOXGUARD_AUDIT_KEY")
        // Set, it would name the PostgreSQL log when no log option is given.
        .env_remove("VOXGUARD_DATABASE_URL")
        .env_remove("VOXGUARD_DATABASE_SCHEMA");
    if let Some(key) = key {
        command.env("VOXGUARD_AUDIT_KEY", key);
    }
    let output = command.output().expect("run voxguard");
    let run = Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    // Whatever happened, the key never shows.
    let b64 = key_b64();
    assert!(
        !run.stdout.contains(&b64[..16]) && !run.stderr.contains(&b64[..16]),
        "{run:?}"
    );
    run
}

fn voxguard(args: &[&str], key: Option<&str>) -> Run {
    voxguard_in(&std::env::temp_dir(), args, key)
}

fn verify_db(path: &Path, extra: &[&str], key: Option<&str>) -> Run {
    let mut args = vec!["audit", "verify", "--db", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    voxguard(&args, key)
}

fn verify_jsonl(path: &Path, extra: &[&str], key: Option<&str>) -> Run {
    let mut args = vec!["audit", "verify", "--jsonl", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    voxguard(&args, key)
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(run.stdout.trim_end()).unwrap_or_else(|err| panic!("{err}: {run:?}"))
}

/// A closed SQLite audit log of `n` records in `dir/audit.db`; with the key, checkpoints are
/// signed every 10 records.
async fn sqlite_log(dir: &Path, n: u64, with_key: bool) -> PathBuf {
    let log = SqliteAuditLog::open_in_dir(dir, Durability::Normal, with_key.then(key), 10)
        .await
        .unwrap();
    for i in 0..n {
        log.append(event(i)).await.unwrap();
    }
    log.close().await.unwrap();
    dir.join(voxguard_store::AUDIT_DB_FILE_NAME)
}

/// Run one tampering statement (bound to `seq`) directly on the database.
async fn tamper(path: &Path, sql: &str, seq: i64) {
    let mut conn: SqliteConnection = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    let done = sqlx::query(sql).bind(seq).execute(&mut conn).await.unwrap();
    assert!(done.rows_affected() > 0, "{sql} changed nothing");
    conn.close().await.unwrap();
}

/// A closed JSON-lines log of `n` records (checkpoints every 10 with the key); its lines.
async fn jsonl_log(dir: &Path, n: u64, with_key: bool) -> (PathBuf, Vec<String>) {
    let path = dir.join("audit.jsonl");
    let log = JsonlAuditLog::open(&path, Durability::Normal, with_key.then(key), 10)
        .await
        .unwrap();
    for i in 0..n {
        log.append(event(i)).await.unwrap();
    }
    log.close().await.unwrap();
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    (path, lines)
}

fn rewrite(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn assert_broken(run: &Run, seq: u64, problem: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    let prefix = format!("BROKEN at seq {seq}: ");
    assert!(run.stdout.starts_with(&prefix), "{run:?}");
    assert!(
        run.stdout.trim_end().ends_with(&format!("({problem})")),
        "{run:?}"
    );
    assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
}

fn assert_broken_json(run: &Run, seq: u64, problem: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    let value = json_of(run);
    assert_eq!(value["ok"], false, "{value}");
    assert_eq!(value["seq"], seq, "{value}");
    assert_eq!(value["problem"], problem, "{value}");
    assert!(value["message"].as_str().unwrap().len() > 20, "{value}");
    assert_eq!(value.as_object().unwrap().len(), 4, "{value}");
}

#[tokio::test]
async fn clean_sqlite_log_is_ok_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 25, true).await;
    let b64 = key_b64();

    let run = verify_db(&db, &[], Some(&b64));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "OK: 25 records verified (last seq 25), 2 checkpoints checked\n"
    );
    assert!(run.stderr.is_empty(), "{run:?}");

    let run = verify_db(&db, &["--json"], Some(&b64));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        json_of(&run),
        json!({"ok": true, "records": 25, "last_seq": 25, "checkpoints_checked": 2})
    );

    // --dir DIR finds DIR/audit.db; without options ./voxguard-data/audit.db is used.
    let run = voxguard(
        &["audit", "verify", "--dir", dir.path().to_str().unwrap()],
        Some(&b64),
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("OK: 25 records verified"), "{run:?}");

    let cwd = tempfile::tempdir().unwrap();
    sqlite_log(&cwd.path().join("voxguard-data"), 3, true).await;
    let run = voxguard_in(cwd.path(), &["audit", "verify"], Some(&b64));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run
        .stdout
        .starts_with("OK: 3 records verified (last seq 3)"));
}

#[tokio::test]
async fn a_log_without_key_verifies_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 12, false).await;
    let run = verify_db(&db, &[], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("OK: 12 records verified (last seq 12); checkpoints NOT checked"),
        "{run:?}"
    );
    assert!(run.stdout.contains("no key was given"), "{run:?}");
    assert!(run.stdout.contains("VOXGUARD_AUDIT_KEY"), "{run:?}");
    assert!(
        run.stdout
            .contains("truncation of the tail cannot be detected"),
        "{run:?}"
    );

    // --json keeps stdout machine-readable and warns on stderr.
    let run = verify_db(&db, &["--json"], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        json_of(&run),
        json!({"ok": true, "records": 12, "last_seq": 12, "checkpoints_checked": 0})
    );
    assert!(run.stderr.contains("NOT checked"), "{run:?}");
}

#[tokio::test]
async fn modified_row_is_reported_at_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 25, true).await;
    tamper(
        &db,
        "UPDATE audit_log SET event = replace(event, '\"outcome\":\"ok\"', '\"outcome\":\"refused\"') WHERE seq = ?",
        7,
    )
    .await;
    let b64 = key_b64();
    let run = verify_db(&db, &[], Some(&b64));
    assert_broken(&run, 7, "modified");
    assert!(run.stdout.contains("was modified"), "{run:?}");
    assert_broken_json(&verify_db(&db, &["--json"], Some(&b64)), 7, "modified");
    // The hash chain alone catches it, key or not.
    assert_broken(&verify_db(&db, &[], None), 7, "modified");
}

#[tokio::test]
async fn deleted_middle_row_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 25, true).await;
    tamper(&db, "DELETE FROM audit_log WHERE seq = ?", 13).await;
    let b64 = key_b64();
    assert_broken(&verify_db(&db, &[], Some(&b64)), 13, "missing");
    assert_broken_json(&verify_db(&db, &["--json"], None), 13, "missing");
}

#[tokio::test]
async fn deleted_tail_after_checkpoint_is_truncated_with_the_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 25, true).await;
    tamper(&db, "DELETE FROM audit_log WHERE seq > ?", 15).await;
    let b64 = key_b64();

    let run = verify_db(&db, &[], Some(&b64));
    assert_broken(&run, 16, "truncated");
    assert!(run.stdout.contains("checkpoint 20"), "{run:?}");
    assert_broken_json(&verify_db(&db, &["--json"], Some(&b64)), 16, "truncated");

    // Without the key the shorter log looks whole: OK, but the output says what was not checked.
    let run = verify_db(&db, &[], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("OK: 15 records verified (last seq 15); checkpoints NOT checked"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("truncation of the tail cannot be detected"),
        "{run:?}"
    );
}

#[tokio::test]
async fn wrong_key_makes_checkpoints_forged() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 25, true).await;
    let other = base64::engine::general_purpose::STANDARD.encode([0x11u8; 32]);
    assert_broken(&verify_db(&db, &[], Some(&other)), 10, "checkpoint_forged");
}

#[tokio::test]
async fn from_skips_earlier_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 25, true).await;
    tamper(
        &db,
        "UPDATE audit_log SET event = replace(event, '\"outcome\":\"ok\"', '\"outcome\":\"no\"') WHERE seq = ?",
        3,
    )
    .await;
    let b64 = key_b64();
    assert_broken(&verify_db(&db, &[], Some(&b64)), 3, "modified");
    assert_broken(&verify_db(&db, &["--from", "3"], Some(&b64)), 3, "modified");

    // From 5 on: records 5..=25, checkpoints 10 and 20.
    let run = verify_db(&db, &["--from", "5"], Some(&b64));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "OK: 21 records verified (last seq 25), 2 checkpoints checked\n"
    );
    // From 11 on: the checkpoint at 10 anchors record 11, the one at 20 is checked as usual.
    let run = verify_db(&db, &["--from", "11", "--json"], Some(&b64));
    assert_eq!(
        json_of(&run),
        json!({"ok": true, "records": 15, "last_seq": 25, "checkpoints_checked": 2})
    );
    // Beyond the end there is nothing to check.
    let run = verify_db(&db, &["--from", "100"], Some(&b64));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "OK: 0 records verified (none from seq 100 on), 0 checkpoints checked\n"
    );
    // Not a number: usage error.
    let run = verify_db(&db, &["--from", "-1"], Some(&b64));
    assert_eq!(run.code, 2, "{run:?}");
}

#[tokio::test]
async fn jsonl_log_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (path, lines) = jsonl_log(dir.path(), 25, true).await;
    let b64 = key_b64();

    let run = verify_jsonl(&path, &[], Some(&b64));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "OK: 25 records verified (last seq 25), 2 checkpoints checked\n"
    );

    // An edited line.
    let mut edited = lines.clone();
    edited[8] = edited[8].replace("\"outcome\":\"ok\"", "\"outcome\":\"no\"");
    assert_ne!(edited[8], lines[8]);
    rewrite(&path, &edited);
    assert_broken(&verify_jsonl(&path, &[], Some(&b64)), 9, "modified");
    assert_broken_json(&verify_jsonl(&path, &["--json"], None), 9, "modified");
    // ... out of range of --from.
    let run = verify_jsonl(&path, &["--from", "10"], Some(&b64));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run
        .stdout
        .starts_with("OK: 16 records verified (last seq 25)"));

    // A line that is no longer UTF-8 is modified too, not a read error.
    let mut bytes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut line = line.clone().into_bytes();
        if i == 4 {
            let at = line.len() - 20;
            line[at] = 0xFF;
        }
        bytes.extend_from_slice(&line);
        bytes.push(b'\n');
    }
    std::fs::write(&path, &bytes).unwrap();
    let run = verify_jsonl(&path, &[], Some(&b64));
    assert_broken(&run, 5, "modified");
    assert!(
        run.stdout.contains("line 5 of the log is not valid UTF-8"),
        "{run:?}"
    );

    // The tail cut off after a checkpoint.
    rewrite(&path, &lines[..13]);
    assert_broken(&verify_jsonl(&path, &[], Some(&b64)), 14, "truncated");
    let run = verify_jsonl(&path, &[], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("NOT checked"), "{run:?}");
}

#[tokio::test]
async fn jsonl_damaged_checkpoint_file_is_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = jsonl_log(dir.path(), 25, true).await;
    let sidecar = JsonlAuditLog::checkpoints_path(&path);
    let text = std::fs::read_to_string(&sidecar).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    lines[1] = lines[1].replacen(':', ": ", 1);
    rewrite(&sidecar, &lines);
    let run = verify_jsonl(&path, &[], Some(&key_b64()));
    assert_broken(&run, 20, "checkpoint_forged");
    assert!(
        run.stdout.contains("line 2 of the checkpoint file"),
        "{run:?}"
    );
}

#[tokio::test]
async fn missing_or_unreadable_log_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.db");
    let b64 = key_b64();

    for run in [
        verify_db(&missing, &[], Some(&b64)),
        verify_db(&missing, &["--json"], None),
        verify_jsonl(&dir.path().join("nope.jsonl"), &[], None),
        voxguard(
            &[
                "audit",
                "verify",
                "--dir",
                dir.path().join("no-dir").to_str().unwrap(),
            ],
            None,
        ),
    ] {
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert!(run.stderr.contains("file not found"), "{run:?}");
    }
    // Nothing was created while looking.
    assert!(!missing.exists());

    // The default data directory, when absent, says how to name a log.
    let empty = tempfile::tempdir().unwrap();
    let run = voxguard_in(empty.path(), &["audit", "verify"], None);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("./voxguard-data/audit.db"), "{run:?}");
    assert!(run.stderr.contains("--db"), "{run:?}");
    assert!(!empty.path().join("voxguard-data").exists());

    // A directory, and a file that is not a SQLite database.
    let run = verify_db(dir.path(), &[], None);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("not a file"), "{run:?}");
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        "this is not a database, not even close to one".repeat(20),
    )
    .unwrap();
    let run = verify_db(&junk, &[], None);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(
        run.stderr.contains("cannot read the audit database"),
        "{run:?}"
    );
}

#[tokio::test]
async fn bad_key_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_log(dir.path(), 5, true).await;

    let run = verify_db(&db, &[], Some("this is not base64!"));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains("not valid base64"), "{run:?}");
    assert!(!run.stderr.contains("this is not base64"), "{run:?}");

    let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let run = verify_db(&db, &[], Some(&short));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("at least 32 bytes"), "{run:?}");
    assert!(!run.stderr.contains(&short), "{run:?}");

    let run = verify_db(&db, &[], Some(""));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("set but empty"), "{run:?}");

    // --key-env names another variable; one named explicitly must be set.
    let run = verify_db(&db, &["--key-env", "VOXGUARD_TEST_UNSET_KEY_VAR"], None);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("VOXGUARD_TEST_UNSET_KEY_VAR"),
        "{run:?}"
    );
    let run = Command::new(env!("CARGO_BIN_EXE_voxguard"))
        .args(["audit", "verify", "--db", db.to_str().unwrap()])
        .args(["--key-env", "MY_AUDIT_KEY"])
        .env_remove("VOXGUARD_AUDIT_KEY")
        .env("MY_AUDIT_KEY", key_b64())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(run.stdout).unwrap(),
        "OK: 5 records verified (last seq 5), 0 checkpoints checked\n"
    );
}

#[test]
fn help_version_and_usage_errors() {
    let run = voxguard(&["--help"], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("audit"), "{run:?}");
    assert!(run.stdout.contains("Exit codes:"), "{run:?}");

    let run = voxguard(&["help"], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Usage: voxguard"), "{run:?}");

    let run = voxguard(&[], None);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("Usage: voxguard"), "{run:?}");

    let expected = format!("voxguard {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["version"][..], &["--version"][..]] {
        let run = voxguard(args, None);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stdout, expected);
    }

    let run = voxguard(&["audit", "verify", "--help"], None);
    assert_eq!(run.code, 0, "{run:?}");
    for needle in [
        "--db",
        "--dir",
        "--jsonl",
        "--from",
        "--key-env",
        "--json",
        "Exit codes:",
        "1  the audit chain is broken",
        "2  usage or configuration error",
        "3  internal error",
    ] {
        assert!(run.stdout.contains(needle), "{needle}: {run:?}");
    }

    for args in [
        &["bogus"][..],
        &["audit", "verify", "--db", "a", "--jsonl", "b"][..],
        &["audit", "verify", "--no-such-flag"][..],
        &["audit"][..],
    ] {
        let run = voxguard(args, None);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }
}
