//! End-to-end tests of `voxguard audit verify --database-url`: a real PostgreSQL audit log
//! written by the store's `PgAuditLog` in a fresh schema, tampered with by SQL, checked by the
//! compiled binary; stdout, stderr and the exit code are asserted, and the database password
//! never shows. Skipped (saying so on stderr) when `VOXGUARD_TEST_POSTGRES_URL` is not set.

use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};
use voxguard_guard::audit::{AuditEvent, AuditKey, AuditKind, Outcome};
use voxguard_store::postgres::{testing, PgDatabase};
use voxguard_store::{AuditSink as _, Durability, PgAuditLog};

const KEY_BYTES: [u8; 48] = [0x3C; 48];

/// A password put into the URL; the test server trusts local connections, so it is ignored
/// there, but it must never be printed.
const PASSWORD: &str = "pw-never-printed";

fn key_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(KEY_BYTES)
}

fn event(i: u64) -> AuditEvent {
    let mut event = AuditEvent::new(AuditKind::ToolCalled, 1_700_000_000_000 + i);
    event.call_id = Some(format!("call-{i}"));
    event.function = Some("get_balance".into());
    event.arguments = Some(json!({"n": i}));
    event.outcome = Some(Outcome::Ok);
    event
}

/// The test server's URL with [`PASSWORD`] in it.
fn url_with_password() -> String {
    let mut url = url::Url::parse(&std::env::var(testing::URL_VAR).unwrap()).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    url.to_string()
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `voxguard audit verify` with `args` and the environment `vars` (and nothing else of
/// voxguard's), with the audit key unless `with_key` is false.
fn verify(args: &[&str], vars: &[(&str, &str)], with_key: bool) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxguard"));
    command
        .args(["audit", "verify"])
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("VOXGUARD_AUDIT_KEY")
        .env_remove("VOXGUARD_DATABASE_URL")
        .env_remove("VOXGUARD_DATABASE_SCHEMA")
        .envs(vars.iter().copied());
    if with_key {
        command.env("VOXGUARD_AUDIT_KEY", key_b64());
    }
    let output = command.output().expect("run voxguard");
    let run = Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    for secret in [PASSWORD, &key_b64()[..16]] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{run:?}"
        );
    }
    run
}

/// A migrated schema holding a closed log of 25 records, checkpointed every 10.
async fn written(label: &str) -> Option<PgDatabase> {
    let db = testing::database(label).await?;
    let key = AuditKey::from_bytes(KEY_BYTES.to_vec()).unwrap();
    let log = PgAuditLog::open(db.clone(), Durability::Normal, Some(key), 10)
        .await
        .unwrap();
    for i in 0..25 {
        log.append(event(i)).await.unwrap();
    }
    log.close().await.unwrap();
    Some(db)
}

#[tokio::test]
async fn postgres_log_is_verified_by_url_or_environment() {
    let Some(db) = written("cli_audit_verify").await else {
        return;
    };
    let url = url_with_password();
    let schema = db.schema();
    let expected = "OK: 25 records verified (last seq 25), 2 checkpoints checked\n";

    let run = verify(
        &["--database-url", &url, "--database-schema", schema],
        &[],
        true,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, expected);
    assert!(run.stderr.is_empty(), "{run:?}");

    // The same from the environment, the runtime's own variables.
    let env = [
        ("VOXGUARD_DATABASE_URL", url.as_str()),
        ("VOXGUARD_DATABASE_SCHEMA", schema),
    ];
    let run = verify(&[], &env, true);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, expected);
    let run = verify(&["--json"], &env, true);
    assert_eq!(run.code, 0, "{run:?}");
    let value: Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
    assert_eq!(
        value,
        json!({"ok": true, "records": 25, "last_seq": 25, "checkpoints_checked": 2})
    );
    // --database-schema wins over the variable.
    let run = verify(
        &["--database-schema", schema],
        &[
            ("VOXGUARD_DATABASE_URL", url.as_str()),
            ("VOXGUARD_DATABASE_SCHEMA", "some_other_schema"),
        ],
        true,
    );
    assert_eq!(run.code, 0, "{run:?}");

    // Without the key: verified, with the warning.
    let run = verify(&[], &env, false);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("checkpoints NOT checked"), "{run:?}");

    // A deleted row, then a cut-off tail.
    sqlx::query("DELETE FROM audit_log WHERE seq = 13")
        .execute(db.pool())
        .await
        .unwrap();
    let run = verify(&[], &env, true);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.starts_with("BROKEN at seq 13: "), "{run:?}");
    assert!(run.stdout.trim_end().ends_with("(missing)"), "{run:?}");
    let run = verify(&["--from", "14"], &env, true);
    assert_eq!(run.code, 0, "{run:?}");
    sqlx::query("DELETE FROM audit_log WHERE seq > 15")
        .execute(db.pool())
        .await
        .unwrap();
    let run = verify(&["--from", "14", "--json"], &env, true);
    assert_eq!(run.code, 1, "{run:?}");
    let value: Value = serde_json::from_str(run.stdout.trim_end()).unwrap();
    assert_eq!(value["problem"], "truncated", "{value}");
    assert_eq!(value["seq"], 16, "{value}");
    db.drop_schema().await.unwrap();
}

#[tokio::test]
async fn postgres_usage_errors_never_show_the_url() {
    let Some(db) = testing::database("cli_audit_usage").await else {
        return;
    };
    let url = url_with_password();
    // A schema that does not exist (and is not created), one without audit tables, a bad
    // schema name, an unreachable server.
    let missing = testing::unique_schema("cli_missing");
    let bare = PgDatabase::connect(&std::env::var(testing::URL_VAR).unwrap(), &missing, 1)
        .await
        .unwrap();
    bare.drop_schema().await.unwrap();
    for (args, needle) in [
        (
            vec!["--database-url", &url, "--database-schema", &missing],
            "schema",
        ),
        (
            vec!["--database-url", &url, "--database-schema", "Bad;Name"],
            "schema",
        ),
        (
            vec![
                "--database-url",
                "postgres://voxguard:pw-never-printed@127.0.0.1:1/voxguard",
            ],
            "PostgreSQL",
        ),
        (vec!["--database-url", ""], "empty"),
    ] {
        let run = verify(&args, &[], true);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert!(run.stderr.contains(needle), "{needle}: {run:?}");
    }
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
    )
    .bind(&missing)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(exists, 0, "verification created a schema");
    // An unmigrated schema (exists, no tables).
    let run = verify(
        &["--database-url", &url, "--database-schema", db.schema()],
        &[],
        true,
    );
    assert_eq!(run.code, 0, "migrated: {run:?}");
    sqlx::query("DROP TABLE audit_log")
        .execute(db.pool())
        .await
        .unwrap();
    let run = verify(
        &["--database-url", &url, "--database-schema", db.schema()],
        &[],
        true,
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no voxguard audit tables"), "{run:?}");
    // Two logs named at once; a schema without a database.
    for args in [
        &["--database-url", url.as_str(), "--db", "x.db"][..],
        &["--database-schema", "public", "--jsonl", "x.jsonl"][..],
        &["--database-schema", "public"][..],
    ] {
        let run = verify(args, &[], true);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
    }
    db.drop_schema().await.unwrap();
}
