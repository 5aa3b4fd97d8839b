//! End-to-end tests of `voxguard users` and `voxguard records`: a data directory is filled
//! through the library (records stored with `Records::store`, expired rows and sessions written
//! to the stores directly), then the compiled binary is run on it; stdout, stderr, exit codes,
//! the stores' contents afterwards and the audit trail (verified with `voxguard audit verify`,
//! and read for the CLI's events) are asserted.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use voxguard::store::{
    OperatorStore as _, RecordMeta, RecordStore as _, SessionStore as _, SqliteRecordStore,
    SqliteStore, StoredRecord, DEFAULT_SESSION_TTL,
};
use voxguard::{Compliance, RecordKind, Records, RecordsConfig};

/// The records key the data directory is written with (an operator would export it).
fn records_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([0x42u8; 32])
}

/// Another records key, for the rotation.
fn new_records_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([0x17u8; 48])
}

/// The audit key that signs the trail's checkpoints.
fn audit_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([0x5Au8; 32])
}

/// The phrase of pat_001's transcript, looked for after its deletion.
const PHRASE: &str = "the blue inhaler makes me cough at night";

/// What one run of the binary produced.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim_end()).unwrap_or_else(|err| panic!("{err}: {self:?}"))
    }
}

/// Run `voxguard args` with only the `VOXGUARD_*` variables of `vars` (the records key, the
/// audit key and `USER=tester` unless `vars` overrides them; a value of `None` unsets one).
fn voxguard_with(cwd: &Path, args: &[&str], vars: &[(&str, Option<&str>)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxguard"));
    command.args(args).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("VOXGUARD_") {
            command.env_remove(name);
        }
    }
    let defaults = [
        ("VOXGUARD_RECORDS_KEY", records_key()),
        ("VOXGUARD_AUDIT_KEY", audit_key()),
        ("VOXGUARD_AUDIT_CHECKPOINT_EVERY", "3".to_string()),
        ("USER", "tester".to_string()),
    ];
    for (name, value) in &defaults {
        command.env(name, value);
    }
    for (name, value) in vars {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let output = command.output().expect("run voxguard");
    let run = Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    // Whatever happened, no key shows.
    for key in [records_key(), new_records_key(), audit_key()] {
        assert!(
            !run.stdout.contains(&key[..16]) && !run.stderr.contains(&key[..16]),
            "{run:?}"
        );
    }
    run
}

/// `voxguard args --data-dir dir` with the default variables.
fn voxguard(dir: &Path, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir.to_str().unwrap()]);
    voxguard_with(&std::env::temp_dir(), &all, &[])
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, 0, "{run:?}");
}

fn assert_usage(run: &Run, needle: &str) {
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.contains(needle), "{needle:?}: {run:?}");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What [`seed`] stored.
struct Seeded {
    /// pat_001's transcript and summary (call-1).
    transcript: RecordMeta,
    summary: RecordMeta,
    /// The tool log of call-1 before verification (subject `call:call-1`).
    tool_log: RecordMeta,
    /// pat_002's summary (call-2).
    other: RecordMeta,
}

/// Fill `dir`: records of two patients through the library (under [`records_key`]), two
/// expired rows, and a session for each call.
async fn seed(dir: &Path) -> Seeded {
    let store = SqliteRecordStore::open_in_dir(dir).await.unwrap();
    let config = RecordsConfig::new(Arc::new(store.clone()), &records_key(), None).unwrap();
    let records = Records::open(config, None, Compliance::NONE);
    let tool_log = records
        .store(
            "clinic",
            "call-1",
            None,
            RecordKind::ToolLog,
            &json!({"function": "get_appointments", "outcome": "ok"}),
        )
        .await
        .unwrap();
    let transcript = records
        .store(
            "clinic",
            "call-1",
            Some("pat_001"),
            RecordKind::Transcript,
            &json!({"call_log": [{"role": "user", "content": PHRASE}]}),
        )
        .await
        .unwrap();
    let summary = records
        .store(
            "clinic",
            "call-1",
            Some("pat_001"),
            RecordKind::Summary,
            &json!({"summary": "refill requested"}),
        )
        .await
        .unwrap();
    let other = records
        .store(
            "clinic",
            "call-2",
            Some("pat_002"),
            RecordKind::Summary,
            &json!({"summary": "appointment moved"}),
        )
        .await
        .unwrap();
    // Two rows past their retention (their bodies are never read).
    for (id, kind) in [
        ("rec_expiredtranscript", "transcript"),
        ("rec_expiredtoollog", "tool_log"),
    ] {
        store
            .put_record(&StoredRecord {
                meta: RecordMeta {
                    id: id.into(),
                    agent: "clinic".into(),
                    call_id: "call-0".into(),
                    subject: "pat_003".into(),
                    kind: kind.into(),
                    created_at: 1_000,
                    expires_at: 2_000,
                    size: 4,
                    key_id: "none".into(),
                },
                body: vec![0; 40],
            })
            .await
            .unwrap();
    }
    drop(records);
    store.close().await;

    let sessions = SqliteStore::open_in_dir(dir, DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    for call in ["call-1", "call-2"] {
        sessions
            .set(
                &format!("clinic/{call}/r1"),
                "verified",
                &json!(true),
                now(),
            )
            .await
            .unwrap();
    }
    sessions.close().await;
    Seeded {
        transcript,
        summary,
        tool_log,
        other,
    }
}

/// Every event of the audit trail in `dir`, in order.
async fn audit_events(dir: &Path) -> Vec<Value> {
    let mut conn: SqliteConnection = SqliteConnectOptions::new()
        .filename(dir.join("audit.db"))
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let rows = sqlx::query("SELECT event FROM audit_log ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows.iter()
        .map(|row| serde_json::from_str(row.get::<&str, _>("event")).unwrap())
        .collect()
}

/// `voxguard audit verify` passes on `dir`'s trail, checkpoints included.
fn assert_audit_verifies(dir: &Path) {
    let run = voxguard_with(
        &std::env::temp_dir(),
        &["audit", "verify", "--dir", dir.to_str().unwrap()],
        &[],
    );
    assert_ok(&run);
    assert!(run.stdout.starts_with("OK: "), "{run:?}");
    assert!(!run.stdout.contains(" 0 checkpoints"), "{run:?}");
}

/// The events of `kind` written by the CLI as `cli:tester`, role `local-admin`.
fn cli_events<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["kind"] == kind)
        .inspect(|event| {
            assert_eq!(event["operator"], "cli:tester", "{event}");
            assert_eq!(event["role"], "local-admin", "{event}");
        })
        .collect()
}

#[tokio::test]
async fn every_command_requires_the_records_key_and_creates_nothing_without_it() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let dir_arg = dir.to_str().unwrap();
    let commands: &[&[&str]] = &[
        &["users", "add", "alice", "--role", "admin"],
        &["users", "list"],
        &["users", "remove", "alice"],
        &["users", "set-role", "alice", "auditor"],
        &["records", "list"],
        &["records", "show", "rec_x", "--purpose", "care"],
        &["records", "export", "rec_x", "--purpose", "care"],
        &["records", "purge", "--dry-run"],
        &["records", "purge"],
        &["records", "delete-subject", "pat_001", "--yes"],
        &["records", "rotate-key"],
    ];
    for unset in [None, Some("   ")] {
        for args in commands {
            let mut all = args.to_vec();
            all.extend(["--data-dir", dir_arg, "--json"]);
            let run = voxguard_with(parent.path(), &all, &[("VOXGUARD_RECORDS_KEY", unset)]);
            assert_usage(&run, "VOXGUARD_RECORDS_KEY is not set");
            assert!(run.stderr.contains("never generates one"), "{run:?}");
        }
    }
    // Nothing was created, not even the directory.
    assert!(!dir.exists());
}

#[tokio::test]
async fn configuration_problems_are_usage_errors() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");

    // No records database yet: only `users add` may create one.
    for args in [&["records", "list"][..], &["users", "list"][..]] {
        let run = voxguard(&dir, args);
        assert_usage(&run, "there is no records database");
        assert!(run.stderr.contains(dir.to_str().unwrap()), "{run:?}");
    }
    assert!(!dir.exists());
    assert_ok(&voxguard(
        &dir,
        &["users", "add", "root", "--role", "admin"],
    ));
    assert!(dir.join("records.db").is_file() && dir.join("audit.db").is_file());

    let data = ["--data-dir", dir.to_str().unwrap()];
    let cwd = std::env::temp_dir();
    let run_with = |vars: &[(&str, Option<&str>)]| {
        let mut args = vec!["records", "list"];
        args.extend(data);
        voxguard_with(&cwd, &args, vars)
    };
    assert_usage(
        &run_with(&[("VOXGUARD_RECORDS", Some("off"))]),
        "VOXGUARD_RECORDS=off",
    );
    let run = run_with(&[("VOXGUARD_RECORDS_KEY", Some("not base64 at all!"))]);
    assert_usage(&run, "VOXGUARD_RECORDS_KEY");
    assert!(!run.stderr.contains("not base64 at all"), "{run:?}");
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    assert_usage(
        &run_with(&[("VOXGUARD_RECORDS_KEY", Some(&short))]),
        "at least 32 bytes",
    );
    assert_usage(
        &run_with(&[("VOXGUARD_COMPLIANCE", Some("hippa"))]),
        "VOXGUARD_COMPLIANCE",
    );
    assert_usage(
        &run_with(&[("VOXGUARD_ENV", Some("staging"))]),
        "VOXGUARD_ENV",
    );
    // Production requires a signed audit trail too.
    assert_usage(
        &run_with(&[
            ("VOXGUARD_ENV", Some("production")),
            ("VOXGUARD_AUDIT_KEY", None),
        ]),
        "VOXGUARD_AUDIT_KEY",
    );
    // Without an audit key (development) the command works and says what is not signed.
    let run = run_with(&[("VOXGUARD_AUDIT_KEY", None)]);
    assert_ok(&run);
    assert!(
        run.stderr.contains("VOXGUARD_AUDIT_KEY is not set"),
        "{run:?}"
    );

    // VOXGUARD_DATA_DIR names the directory when --data-dir is absent.
    let run = voxguard_with(
        &cwd,
        &["users", "list", "--json"],
        &[("VOXGUARD_DATA_DIR", Some(dir.to_str().unwrap()))],
    );
    assert_ok(&run);
    assert_eq!(run.json()["operators"][0]["name"], "root");
}

#[tokio::test]
async fn users_are_added_listed_changed_and_removed_with_every_change_audited() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // The first admin bootstraps a new data directory; its token is printed once.
    let run = voxguard(dir, &["users", "add", "alice", "--role", "admin"]);
    assert_ok(&run);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert_eq!(lines[0], "Added operator alice with the role admin.");
    assert!(lines[1].contains("shown only once"), "{run:?}");
    let token = lines[2];
    assert!(token.starts_with("vgo_") && token.len() == 47, "{run:?}");

    // With --password, --json: a password instead.
    let run = voxguard(
        dir,
        &[
            "users",
            "add",
            "bob",
            "--role",
            "auditor",
            "--password",
            "--json",
        ],
    );
    assert_ok(&run);
    let added = run.json();
    assert_eq!(added["shown_once"], true);
    assert_eq!(added["operator"]["name"], "bob");
    assert_eq!(added["operator"]["role"], "auditor");
    assert!(added.get("token").is_none());
    let password = added["password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 24);

    // What was printed is what the API will accept: the stored hashes match.
    let store = SqliteRecordStore::open_in_dir(dir).await.unwrap();
    let alice = store.operator("alice").await.unwrap().unwrap();
    assert_eq!(
        alice.token_hash.as_deref(),
        Some(voxguard::guard::records::operator_token_hash(token).as_str())
    );
    assert!(alice.password_hash.is_none());
    let bob = store.operator("bob").await.unwrap().unwrap();
    let vault = voxguard::guard::PinVault::default();
    let hash = voxguard::guard::SecretHash::from_phc(bob.password_hash.clone().unwrap()).unwrap();
    assert!(vault.verify(&hash, &password));
    assert!(!vault.verify(&hash, "not-the-password"));
    store.close().await;

    // The listing never shows a credential or a hash.
    for json in [false, true] {
        let mut args = vec!["users", "list"];
        if json {
            args.push("--json");
        }
        let run = voxguard(dir, &args);
        assert_ok(&run);
        assert!(!run.stdout.contains(token) && !run.stdout.contains(&password));
        assert!(
            !run.stdout.contains("argon2")
                && !run.stdout.contains(&alice.token_hash.clone().unwrap())
        );
        if json {
            let operators = run.json()["operators"].clone();
            assert_eq!(operators.as_array().unwrap().len(), 2);
            assert_eq!(operators[0]["name"], "alice");
            assert_eq!(operators[0]["role"], "admin");
            assert!(operators[0]["created_at"].as_u64().unwrap() > 1_700_000_000);
            assert_eq!(operators[0].as_object().unwrap().len(), 3);
        } else {
            let lines: Vec<&str> = run.stdout.lines().collect();
            assert!(
                lines[0].starts_with("NAME") && lines[0].contains("ROLE"),
                "{run:?}"
            );
            assert!(lines[1].starts_with("alice  admin"), "{run:?}");
            assert!(lines[2].starts_with("bob    auditor"), "{run:?}");
        }
    }

    // Refusals: exit 2 with the library's sentence, nothing changed.
    assert_usage(
        &voxguard(dir, &["users", "add", "bob", "--role", "admin"]),
        "already exists",
    );
    assert_usage(
        &voxguard(dir, &["users", "add", "bad name!", "--role", "admin"]),
        "1 to 64 characters",
    );
    assert_usage(
        &voxguard(dir, &["users", "add", "carol", "--role", "janitor"]),
        "there is no role",
    );
    assert_usage(
        &voxguard(dir, &["users", "set-role", "bob", "janitor"]),
        "there is no role",
    );
    assert_usage(
        &voxguard(dir, &["users", "remove", "nobody"]),
        "there is no operator",
    );
    // The last admin can be neither removed nor demoted.
    assert_usage(&voxguard(dir, &["users", "remove", "alice"]), "last admin");
    assert_usage(
        &voxguard(dir, &["users", "set-role", "alice", "auditor"]),
        "last admin",
    );

    let run = voxguard(dir, &["users", "set-role", "bob", "admin"]);
    assert_ok(&run);
    assert_eq!(run.stdout, "Operator bob now has the role admin.\n");
    // With a second admin, the first can go.
    let run = voxguard(dir, &["users", "remove", "alice", "--json"]);
    assert_ok(&run);
    assert_eq!(run.json(), json!({"removed": "alice"}));
    let run = voxguard(dir, &["users", "list", "--json"]);
    let names: Vec<String> = run.json()["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["bob"]);

    // The trail verifies and holds each change, by cli:tester, without a secret.
    assert_audit_verifies(dir);
    let events = audit_events(dir).await;
    let changes: Vec<(String, String, String)> = cli_events(&events, "operator_changed")
        .iter()
        .map(|event| {
            (
                event["function"].as_str().unwrap().to_owned(),
                event["arguments"]["operator"].as_str().unwrap().to_owned(),
                event["arguments"]["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("add", "alice", "admin"),
        ("add", "bob", "auditor"),
        ("set_role", "bob", "admin"),
        ("remove", "alice", "admin"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(changes, expected);
    assert_eq!(cli_events(&events, "record_accessed").len(), 3); // the three listings
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains(token) && !trail.contains(&password));
}

#[tokio::test]
async fn records_are_listed_shown_and_exported_with_each_access_audited() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let seeded = seed(dir).await;

    // Listing: metadata only, filtered, paged.
    let run = voxguard(dir, &["records", "list", "--subject", "pat_001", "--json"]);
    assert_ok(&run);
    let listed = run.json();
    let ids: Vec<&str> = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&seeded.transcript.id.as_str()) && ids.contains(&seeded.summary.id.as_str())
    );
    assert_eq!(listed["next"], Value::Null);
    assert!(!run.stdout.contains(PHRASE) && !run.stdout.contains("refill requested"));
    assert_eq!(listed["records"][0]["agent"], "clinic");

    let run = voxguard(
        dir,
        &[
            "records",
            "list",
            "--kind",
            "summary",
            "--call-id",
            "call-2",
        ],
    );
    assert_ok(&run);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SUBJECT"),
        "{run:?}"
    );
    assert!(lines[1].starts_with(&seeded.other.id), "{run:?}");
    assert!(
        lines[1].contains("pat_002") && lines[1].contains("summary"),
        "{run:?}"
    );

    // Pages: 4 live records (the 2 expired ones are past retention: not listed, as good as
    // purged), 3 at a time.
    let run = voxguard(dir, &["records", "list", "--limit", "3", "--json"]);
    let first = run.json();
    assert_eq!(first["records"].as_array().unwrap().len(), 3);
    let next = first["next"].as_str().unwrap().to_owned();
    let run = voxguard(
        dir,
        &[
            "records", "list", "--limit", "3", "--after", &next, "--json",
        ],
    );
    assert_eq!(run.json()["records"].as_array().unwrap().len(), 1);
    assert_eq!(run.json()["next"], Value::Null);
    let run = voxguard(dir, &["records", "list", "--limit", "3"]);
    assert!(
        run.stdout.ends_with(&format!("add --after {next}\n")),
        "{run:?}"
    );
    assert_usage(
        &voxguard(dir, &["records", "list", "--after", "rec_nosuchrecord"]),
        "--after",
    );
    // Times: the seeded expired rows were created in 1970 (and are not listed); the others now.
    let run = voxguard(dir, &["records", "list", "--to", "1970-01-01", "--json"]);
    assert_eq!(run.json()["records"].as_array().unwrap().len(), 0);
    let run = voxguard(dir, &["records", "list", "--from", "2000-01-01", "--json"]);
    assert_eq!(run.json()["records"].as_array().unwrap().len(), 4);
    for bad in [
        &["records", "list", "--kind", "video"][..],
        &["records", "list", "--from", "last week"][..],
        &["records", "list", "--limit", "0"][..],
        &["records", "list", "--limit", "1001"][..],
    ] {
        assert_eq!(voxguard(dir, bad).code, 2, "{bad:?}");
    }

    // Show: the content, for a purpose.
    let run = voxguard(
        dir,
        &[
            "records",
            "show",
            &seeded.transcript.id,
            "--purpose",
            "care follow-up",
        ],
    );
    assert_ok(&run);
    assert!(
        run.stdout
            .starts_with(&format!("id       {}\n", seeded.transcript.id)),
        "{run:?}"
    );
    assert!(run.stdout.contains("subject  pat_001\n"), "{run:?}");
    assert!(run.stdout.contains(PHRASE), "{run:?}");
    let run = voxguard(
        dir,
        &[
            "records",
            "show",
            &seeded.summary.id,
            "--purpose",
            "care",
            "--json",
        ],
    );
    assert_eq!(
        run.json()["content"],
        json!({"summary": "refill requested"})
    );
    assert_eq!(run.json()["record"]["kind"], "summary");
    // A purpose is required; unknown and expired records are "no record".
    for args in [
        &["records", "show", &seeded.summary.id][..],
        &["records", "show", &seeded.summary.id, "--purpose", "  "][..],
    ] {
        let run = voxguard(dir, args);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(!run.stdout.contains("refill"), "{run:?}");
    }
    for id in ["rec_nosuchrecord", "rec_expiredtranscript"] {
        assert_usage(
            &voxguard(dir, &["records", "show", id, "--purpose", "care"]),
            "no record with that id",
        );
    }

    // Export one record to stdout, and a subject's records to a private file.
    let run = voxguard(
        dir,
        &[
            "records",
            "export",
            &seeded.summary.id,
            "--purpose",
            "patient request",
        ],
    );
    assert_ok(&run);
    let document = run.json();
    assert_eq!(document["record"]["id"], seeded.summary.id.as_str());
    assert_eq!(document["content"]["summary"], "refill requested");
    assert!(document["exported_at"].as_u64().unwrap() >= seeded.summary.created_at);

    let out = dir.join("pat_001-export.json");
    let out_arg = out.to_str().unwrap();
    let run = voxguard(
        dir,
        &[
            "records",
            "export",
            "--subject",
            "pat_001",
            "--purpose",
            "access request 7",
            "--out",
            out_arg,
        ],
    );
    assert_ok(&run);
    assert!(run.stdout.starts_with("Exported 2 records to "), "{run:?}");
    assert!(!run.stdout.contains(PHRASE), "{run:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let exported: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(exported["subject"], "pat_001");
    assert_eq!(exported["records"].as_array().unwrap().len(), 2);
    assert!(exported.to_string().contains(PHRASE));
    // Never over an existing file; neither or both of id and --subject is a usage error.
    let before = std::fs::read(&out).unwrap();
    assert_usage(
        &voxguard(
            dir,
            &[
                "records",
                "export",
                "--subject",
                "pat_002",
                "--purpose",
                "x",
                "--out",
                out_arg,
            ],
        ),
        "already exists",
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert_eq!(
        voxguard(dir, &["records", "export", "--purpose", "x"]).code,
        2
    );
    assert_eq!(
        voxguard(
            dir,
            &[
                "records",
                "export",
                &seeded.summary.id,
                "--subject",
                "pat_001",
                "--purpose",
                "x"
            ]
        )
        .code,
        2
    );

    // The trail verifies and holds each access: by cli:tester, with the purpose, the subject
    // masked, and no content.
    assert_audit_verifies(dir);
    let events = audit_events(dir).await;
    let reads: Vec<&Value> = cli_events(&events, "record_accessed")
        .into_iter()
        .filter(|event| event.get("record").is_some())
        .collect();
    assert_eq!(reads.len(), 2, "{events:#?}");
    assert_eq!(reads[0]["record"], seeded.transcript.id.as_str());
    assert_eq!(reads[0]["purpose"], "care follow-up");
    assert!(reads[0]["subject"].as_str().unwrap().starts_with("sub_"));
    let exports = cli_events(&events, "record_exported");
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0]["purpose"], "patient request");
    assert_eq!(exports[1]["purpose"], "access request 7");
    assert_eq!(exports[1]["arguments"]["records"], 2);
    let listings = cli_events(&events, "record_accessed")
        .into_iter()
        .filter(|event| event["function"] == "list")
        .count();
    assert!(listings >= 8, "{listings}");
    let trail = serde_json::to_string(&events).unwrap();
    assert!(
        !trail.contains("pat_001") && !trail.contains(PHRASE),
        "{trail}"
    );
}

#[tokio::test]
async fn purge_dry_run_counts_and_purge_deletes_only_expired_records() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    seed(dir).await;

    let run = voxguard(dir, &["records", "purge", "--dry-run"]);
    assert_ok(&run);
    assert_eq!(
        run.stdout,
        "Dry run: 2 records past retention would be purged (summary 0, transcript 1, tool_log 1, recording 0, payment 0); nothing was deleted.\n"
    );
    // Expired records are not listed even before the purge deletes them.
    let run = voxguard(dir, &["records", "list", "--json"]);
    assert_eq!(run.json()["records"].as_array().unwrap().len(), 4);

    let run = voxguard(dir, &["records", "purge", "--json"]);
    assert_ok(&run);
    assert_eq!(
        run.json(),
        json!({"dry_run": false, "total": 2, "records": {
            "summary": 0, "transcript": 1, "tool_log": 1, "recording": 0, "payment": 0}})
    );
    let run = voxguard(dir, &["records", "list", "--json"]);
    let left: Vec<String> = run.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|id| !id.starts_with("rec_expired")));
    let run = voxguard(dir, &["records", "purge", "--dry-run", "--json"]);
    assert_eq!(run.json()["total"], 0);
    let run = voxguard(dir, &["records", "purge"]);
    assert_eq!(
        run.stdout,
        "No record is past its retention; nothing was purged.\n"
    );

    // Each real run is one event with the counts; the dry runs write none.
    assert_audit_verifies(dir);
    let events = audit_events(dir).await;
    let purges = cli_events(&events, "records_purged");
    assert_eq!(purges.len(), 2);
    assert_eq!(
        purges[0]["arguments"],
        json!({"transcript": 1, "tool_log": 1})
    );
}

#[tokio::test]
async fn delete_subject_needs_yes_and_removes_records_keys_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let seeded = seed(dir).await;

    // Without --yes: refused before anything is opened.
    let run = voxguard(dir, &["records", "delete-subject", "pat_001"]);
    assert_usage(&run, "add --yes");
    assert!(!run.stderr.contains("pat_001"), "{run:?}");
    assert!(!dir.join("audit.db").exists());
    assert_usage(
        &voxguard(dir, &["records", "delete-subject", "", "--yes"]),
        "subject id",
    );

    // With the agent's token key, the subject's attempt counter is found and reset.
    let token_key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let keys =
        voxguard::guard::KeyRing::new(voxguard::guard::TokenKey::from_base64(&token_key).unwrap());
    let row = voxguard::VerificationPolicy::new()
        .attempt_key(&keys, "clinic", "pat_001")
        .unwrap();
    {
        use voxguard::store::AttemptStore as _;
        let sessions = SqliteStore::open_in_dir(dir, DEFAULT_SESSION_TTL)
            .await
            .unwrap();
        let limits = voxguard::store::AttemptLimits::fixed(3, 900);
        sessions.reserve(&row, &limits, now()).await.unwrap();
        sessions.settle(&row, false, &limits, now()).await.unwrap();
        assert_eq!(
            sessions.attempt_status(&row, now()).await.unwrap().failures,
            1
        );
        sessions.close().await;
    }
    let mut all = vec!["records", "delete-subject", "pat_001", "--yes"];
    all.extend(["--data-dir", dir.to_str().unwrap()]);
    let run = voxguard_with(
        &std::env::temp_dir(),
        &all,
        &[("VOXGUARD_TOKEN_KEY", Some(token_key.as_str()))],
    );
    assert_ok(&run);
    assert_eq!(
        run.stdout,
        "Deleted the subject's data:\n  records deleted: 3 (summary 1, tool_log 1, transcript 1)\n  data keys deleted (crypto-shredded): 2\n  call sessions cleared: 1\n  attempt counters reset: 1 agent(s)\n"
    );
    {
        use voxguard::store::AttemptStore as _;
        let sessions = SqliteStore::open_in_dir(dir, DEFAULT_SESSION_TTL)
            .await
            .unwrap();
        assert_eq!(
            sessions.attempt_status(&row, now()).await.unwrap().failures,
            0,
            "counter reset"
        );
        sessions.close().await;
    }
    assert!(!run.stdout.contains("pat_001"));

    // Gone: the subject's records, the call's pre-verification record, the keys, the session.
    for id in [
        &seeded.transcript.id,
        &seeded.summary.id,
        &seeded.tool_log.id,
    ] {
        assert_usage(
            &voxguard(dir, &["records", "show", id, "--purpose", "check"]),
            "no record with that id",
        );
    }
    let store = SqliteRecordStore::open_in_dir(dir).await.unwrap();
    assert!(store.subject_key("pat_001").await.unwrap().is_none());
    assert!(store.subject_key("call:call-1").await.unwrap().is_none());
    assert!(store.subject_key("pat_002").await.unwrap().is_some());
    store.close().await;
    let sessions = SqliteStore::open_in_dir(dir, DEFAULT_SESSION_TTL)
        .await
        .unwrap();
    assert_eq!(
        sessions
            .get("clinic/call-1/r1", "verified", now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        sessions
            .get("clinic/call-2/r1", "verified", now())
            .await
            .unwrap(),
        Some(json!(true))
    );
    sessions.close().await;
    // The other patient is untouched.
    let run = voxguard(
        dir,
        &[
            "records",
            "show",
            &seeded.other.id,
            "--purpose",
            "care",
            "--json",
        ],
    );
    assert_eq!(run.json()["content"]["summary"], "appointment moved");
    // No file of the records database keeps the transcript.
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("records.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("pat_001"),
                "{path:?}"
            );
        }
    }

    // Deleting again deletes nothing, and says so.
    let run = voxguard(
        dir,
        &["records", "delete-subject", "pat_001", "--yes", "--json"],
    );
    assert_ok(&run);
    let report = run.json();
    assert_eq!(report["deleted"]["records"], json!({}));
    assert_eq!(report["deleted"]["keys"], 0);
    assert_eq!(report["attempt_counters_reset"], false);

    // The tombstones: counts and a pseudonym, no personal data.
    assert_audit_verifies(dir);
    let events = audit_events(dir).await;
    let deletions = cli_events(&events, "subject_deleted");
    // Each deletion is on record before it happens ("requested"), then with its counts.
    assert_eq!(deletions.len(), 4);
    assert_eq!(deletions[0]["outcome"], "requested");
    let tombstones: Vec<_> = deletions.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(tombstones.len(), 2);
    assert_eq!(
        tombstones[0]["arguments"],
        json!({"records": {"summary": 1, "tool_log": 1, "transcript": 1}, "keys": 2, "sessions": 1, "attempt_counters": 1})
    );
    assert_eq!(tombstones[0]["subject"], tombstones[1]["subject"]);
    assert!(tombstones[0]["subject"]
        .as_str()
        .unwrap()
        .starts_with("sub_"));
    let trail = serde_json::to_string(&events).unwrap();
    assert!(!trail.contains("pat_001") && !trail.contains(PHRASE));
}

#[tokio::test]
async fn rotate_key_rewraps_data_keys_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let seeded = seed(dir).await;
    let old = records_key();
    let new = new_records_key();
    let show = |vars: &[(&str, Option<&str>)]| {
        voxguard_with(
            &std::env::temp_dir(),
            &[
                "records",
                "show",
                &seeded.other.id,
                "--purpose",
                "check",
                "--json",
                "--data-dir",
                dir.to_str().unwrap(),
            ],
            vars,
        )
    };
    let rotate = |vars: &[(&str, Option<&str>)]| {
        voxguard_with(
            &std::env::temp_dir(),
            &["records", "rotate-key", "--data-dir", dir.to_str().unwrap()],
            vars,
        )
    };

    // The new key alone cannot read what the old one wrapped: a configuration error.
    let run = show(&[("VOXGUARD_RECORDS_KEY", Some(&new))]);
    assert_usage(&run, "VOXGUARD_RECORDS_KEYS_PREVIOUS");
    assert!(!run.stdout.contains("appointment"));
    // Rotating needs the old key.
    assert_usage(
        &rotate(&[("VOXGUARD_RECORDS_KEY", Some(&new))]),
        "VOXGUARD_RECORDS_KEYS_PREVIOUS is not set",
    );

    let both = [
        ("VOXGUARD_RECORDS_KEY", Some(new.as_str())),
        ("VOXGUARD_RECORDS_KEYS_PREVIOUS", Some(old.as_str())),
    ];
    let run = rotate(&both);
    assert_ok(&run);
    // pat_001, pat_002 and call:call-1 have data keys (the expired rows have none).
    assert!(
        run.stdout
            .starts_with("Re-wrapped 3 data keys under the current records key (id "),
        "{run:?}"
    );
    let run = voxguard_with(
        &std::env::temp_dir(),
        &[
            "records",
            "rotate-key",
            "--json",
            "--data-dir",
            dir.to_str().unwrap(),
        ],
        &both,
    );
    assert_ok(&run);
    assert_eq!(run.json()["rewrapped"], 0);
    let key_id = run.json()["key_id"].as_str().unwrap().to_owned();
    assert_eq!(key_id.len(), 16);

    // Now the new key alone reads everything, and the old one alone nothing.
    let run = show(&[("VOXGUARD_RECORDS_KEY", Some(&new))]);
    assert_ok(&run);
    assert_eq!(run.json()["content"]["summary"], "appointment moved");
    assert_eq!(show(&[]).code, 2);

    assert_audit_verifies(dir);
    let events = audit_events(dir).await;
    let rotations = cli_events(&events, "records_key_rotated");
    assert_eq!(rotations.len(), 2);
    assert_eq!(
        rotations[0]["arguments"],
        json!({"rewrapped": 3, "key_id": key_id})
    );
}

#[test]
fn help_lists_the_new_commands_and_their_exit_codes() {
    let cwd = std::env::temp_dir();
    let run = voxguard_with(&cwd, &["--help"], &[]);
    assert_ok(&run);
    assert!(
        run.stdout.contains("users") && run.stdout.contains("records"),
        "{run:?}"
    );
    for (args, needles) in [
        (
            &["users", "--help"][..],
            &["add", "set-role", "VOXGUARD_RECORDS_KEY", "Exit codes:"][..],
        ),
        (
            &["records", "--help"][..],
            &["delete-subject", "rotate-key", "cli:$USER", "Exit codes:"][..],
        ),
        (
            &["records", "delete-subject", "--help"][..],
            &["--yes", "crypto-shredding"][..],
        ),
        (
            &["records", "rotate-key", "--help"][..],
            &["VOXGUARD_RECORDS_KEYS_PREVIOUS"][..],
        ),
        (
            &["records", "list", "--help"][..],
            &[
                "--subject",
                "--call-id",
                "--kind",
                "--from",
                "--to",
                "--limit",
                "--json",
                "--data-dir",
            ][..],
        ),
    ] {
        let run = voxguard_with(&cwd, args, &[]);
        assert_ok(&run);
        for needle in needles {
            assert!(run.stdout.contains(needle), "{needle}: {run:?}");
        }
    }
    for args in [
        &["users"][..],
        &["records"][..],
        &["users", "add", "alice"][..],
        &["records", "show", "rec_x"][..],
        &["records", "purge", "--bogus"][..],
    ] {
        let run = voxguard_with(&cwd, args, &[]);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }
}

/// With `VOXGUARD_DATABASE_URL`, `users` and `records` work on the replicas' PostgreSQL state
/// (no data directory file is made), and `migrate` reports and applies the schema's migrations.
#[tokio::test]
async fn with_a_database_url_users_and_records_work_on_postgres_and_migrate_reports() {
    let Some(url) = std::env::var("VOXGUARD_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("skipped records_cli::postgres: VOXGUARD_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = voxguard::store::postgres::testing::unique_schema("cli_users");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().unwrap();
    let shared = [
        ("VOXGUARD_DATABASE_URL", Some(url.as_str())),
        ("VOXGUARD_DATABASE_SCHEMA", Some(schema.as_str())),
    ];
    // A fresh schema: every migration pending, nothing changed by --status.
    let run = voxguard_with(dir.path(), &["migrate", "--status", "--json"], &shared);
    assert_ok(&run);
    let status = run.json();
    assert!(status["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["applied"] == false));
    assert!(!run.stdout.contains(&url) && !run.stderr.contains(&url));
    let run = voxguard_with(dir.path(), &["migrate"], &shared);
    assert_ok(&run);
    assert!(run.stdout.contains("applied"), "{run:?}");
    let run = voxguard_with(dir.path(), &["migrate", "--status"], &shared);
    assert_ok(&run);
    assert!(run.stdout.contains("up to date"), "{run:?}");

    let run = voxguard_with(
        dir.path(),
        &[
            "users",
            "add",
            "carol",
            "--role",
            "compliance",
            "--data-dir",
            data,
        ],
        &shared,
    );
    assert_ok(&run);
    let run = voxguard_with(
        dir.path(),
        &["users", "list", "--json", "--data-dir", data],
        &shared,
    );
    assert_ok(&run);
    assert!(run.stdout.contains("carol"), "{run:?}");
    // Nothing went to the data directory: the operator is in PostgreSQL.
    assert!(!data_dir.join("records.db").exists());
    let database = voxguard::store::postgres::PgDatabase::connect(&url, &schema, 1)
        .await
        .unwrap();
    let store = voxguard::store::PgRecordStore::new(database.clone());
    let carol = voxguard::store::OperatorStore::operator(&store, "carol")
        .await
        .unwrap()
        .expect("carol is stored on PostgreSQL");
    assert_eq!(carol.role, "compliance");
    // The change is on the shared audit chain, which verifies.
    let run = voxguard_with(dir.path(), &["audit", "verify"], &shared);
    assert_ok(&run);
    database.drop_schema().await.unwrap();
}
