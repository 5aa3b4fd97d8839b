//! End-to-end tests of `voxguard migrate` against a real PostgreSQL server: the compiled
//! binary, its output and exit code, and what it leaves in the database. Skipped (saying so on
//! stderr) when `VOXGUARD_TEST_POSTGRES_URL` is not set.

use std::process::Command;

use voxguard_store::postgres::{testing, PgDatabase};

/// A password put into the URL; the test server trusts local connections, so it is ignored
/// there, but it must never be printed.
const PASSWORD: &str = "pw-never-printed";

/// The test server's URL with [`PASSWORD`] in it, or `None` (after saying so) to skip.
fn url_with_password(test: &str) -> Option<String> {
    let Some(url) = std::env::var(testing::URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped {test}: {} is not set", testing::URL_VAR);
        return None;
    };
    let mut url = url::Url::parse(&url).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    Some(url.to_string())
}

/// Run `voxguard migrate` with `args`; (exit code, stdout, stderr), checked for the password.
fn migrate(url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_voxguard"))
        .arg("migrate")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("VOXGUARD_DATABASE_SCHEMA")
        .env("VOXGUARD_DATABASE_URL", url)
        .output()
        .expect("run voxguard");
    let run = (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(
        !run.1.contains(PASSWORD) && !run.2.contains(PASSWORD),
        "{run:?}"
    );
    run
}

/// Whether `schema` exists in the test database.
async fn schema_exists(schema: &str) -> bool {
    let url = std::env::var(testing::URL_VAR).unwrap();
    let db = PgDatabase::connect(&url, "public", 1).await.unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(db.pool())
            .await
            .unwrap();
    db.pool().close().await;
    exists
}

/// `--status` only looks: on a schema that does not exist (a typo, or before the first
/// rollout) it reports every migration pending and creates nothing — not even the schema.
#[tokio::test]
async fn status_changes_nothing_not_even_the_schema() {
    let Some(url) = url_with_password("migrate status") else {
        return;
    };
    let schema = testing::unique_schema("migrate_status");
    let (code, stdout, stderr) = migrate(&url, &["--status", "--database-schema", &schema]);
    let created = schema_exists(&schema).await;
    if created {
        let db = PgDatabase::connect(&std::env::var(testing::URL_VAR).unwrap(), &schema, 1)
            .await
            .unwrap();
        db.drop_schema().await.unwrap();
    }
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("pending"), "{stdout}");
    assert!(
        !created,
        "voxguard migrate --status created schema {schema}"
    );
}

/// Without `--status` the schema is created and migrated, and a second run applies nothing.
#[tokio::test]
async fn migrate_applies_every_migration_once() {
    let Some(url) = url_with_password("migrate apply") else {
        return;
    };
    let schema = testing::unique_schema("migrate_apply");
    let (code, stdout, stderr) = migrate(&url, &["--database-schema", &schema]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("applied now"), "{stdout}");
    let (code, stdout, _) = migrate(&url, &["--database-schema", &schema]);
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to apply"), "{stdout}");
    let db = PgDatabase::connect(&std::env::var(testing::URL_VAR).unwrap(), &schema, 1)
        .await
        .unwrap();
    db.drop_schema().await.unwrap();
}
