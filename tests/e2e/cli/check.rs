//! `voxguard check`: the hardening checklist on a hardened and a weak env file, against the
//! reference bank agent and a deliberately weak agent served here with axum (`--url`), the
//! command-line secret search (`--pid`), and the exit codes of unusable inputs. Every run
//! asserts that no secret value reaches stdout or stderr.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{voxguard, RefAgent, Run};

/// A fresh value from `voxguard keys generate KIND`.
async fn generate(kind: &str) -> String {
    let run = voxguard(&["keys", "generate", kind], &[], None).await;
    assert_eq!(run.code, 0, "{run:#?}");
    run.stdout.trim().to_string()
}

/// Write `vars` as a dotenv file (single-quoted values, a comment line), mode 0600.
fn write_env(dir: &Path, vars: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("# written by the check e2e test\n");
    for (name, value) in vars {
        text.push_str(&format!("{name}='{value}'\n"));
    }
    let path = dir.join("agent.env");
    std::fs::write(&path, text).expect("write env file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// The items of a `--json` run, by id → (status, detail).
fn items(run: &Run) -> BTreeMap<String, (String, String)> {
    run.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let text = |key: &str| item[key].as_str().unwrap_or_default().to_string();
            (text("id"), (text("status"), text("detail")))
        })
        .collect()
}

/// Panic when any of `secrets` appears in the run's output.
fn assert_no_secret(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret value was printed: {run:#?}"
        );
    }
}

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ENV_ITEMS: [&str; 16] = [
    "production",
    "server_config",
    "https",
    "basic_auth",
    "keys.token",
    "keys.audit",
    "keys.records",
    "keys.signing",
    "credentials.emergency",
    "credentials.metrics",
    "credentials.distinct",
    "credentials.operators",
    "retention",
    "compliance",
    "data_dir",
    "cmdline",
];

#[tokio::test]
async fn a_hardened_env_file_passes_every_item() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("self-signed cert");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (token, audit, records) = (
        generate("token").await,
        generate("audit").await,
        generate("records").await,
    );
    let (platform, admin, metrics, signing) = (
        generate("password").await,
        generate("password").await,
        generate("password").await,
        generate("password").await,
    );
    let data_str = data.to_str().expect("utf-8 path");
    let vars = [
        ("VOXGUARD_ENV", "production"),
        ("SWML_SSL_ENABLED", "true"),
        ("SWML_SSL_CERT_PATH", cert.to_str().expect("utf-8")),
        ("SWML_SSL_KEY_PATH", key.to_str().expect("utf-8")),
        ("SWML_BASIC_AUTH_USER", "platform"),
        ("SWML_BASIC_AUTH_PASSWORD", platform.as_str()),
        ("VOXGUARD_ADMIN_USER", "emergency"),
        ("VOXGUARD_ADMIN_PASSWORD", admin.as_str()),
        ("VOXGUARD_METRICS_USER", "prometheus"),
        ("VOXGUARD_METRICS_PASSWORD", metrics.as_str()),
        ("VOXGUARD_TOKEN_KEY", token.as_str()),
        ("VOXGUARD_AUDIT_KEY", audit.as_str()),
        ("VOXGUARD_RECORDS_KEY", records.as_str()),
        ("SIGNALWIRE_SIGNING_KEY", signing.as_str()),
        ("VOXGUARD_RETENTION_TRANSCRIPT_DAYS", "14"),
        ("VOXGUARD_COMPLIANCE", "hipaa,pci"),
        ("VOXGUARD_DATA_DIR", data_str),
    ];
    // The records API's first admin, made the documented way (creates records.db 0600).
    let added = voxguard(&["users", "add", "alice", "--role", "admin"], &vars, None).await;
    assert_eq!(added.code, 0, "{added:#?}");
    let env_file = write_env(dir.path(), &vars);
    let env_arg = env_file.to_str().expect("utf-8");

    let run = voxguard(&["check", "--env-file", env_arg, "--json"], &[], None).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let found = items(&run);
    for id in ENV_ITEMS {
        let (status, detail) = found
            .get(id)
            .unwrap_or_else(|| panic!("no item {id}: {run:#?}"));
        assert_eq!(status, "pass", "{id}: {detail}");
    }
    assert_eq!(found.len(), ENV_ITEMS.len(), "no tools items without --url");
    assert!(found["retention"].1.contains("transcript 14d"), "{found:?}");
    assert_eq!(run.json()["summary"]["fail"], 0);
    let secrets = [
        &token, &audit, &records, &platform, &admin, &metrics, &signing,
    ];
    assert_no_secret(&run, &secrets.map(String::as_str));

    // The table: one row per item and the summary line.
    let table = voxguard(&["check", "--env-file", env_arg], &[], None).await;
    assert_eq!(table.code, 0, "{table:#?}");
    assert!(table.stdout.starts_with("ITEM"), "{}", table.stdout);
    assert!(
        table.stdout.contains("16 passed, 0 warned, 0 failed"),
        "{}",
        table.stdout
    );
    assert_no_secret(&table, &secrets.map(String::as_str));
}

#[tokio::test]
async fn a_weak_env_file_fails_the_expected_items_without_showing_a_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let weak = format!("weak-{:08x}", rand::random::<u32>());
    let bad_key = format!("not-a-key-{:08x}!!", rand::random::<u32>());
    let env_file = write_env(
        dir.path(),
        &[
            ("VOXGUARD_ENV", "development"),
            ("SWML_BASIC_AUTH_USER", "ops"),
            ("SWML_BASIC_AUTH_PASSWORD", &weak),
            ("VOXGUARD_ADMIN_USER", "admin"),
            ("VOXGUARD_ADMIN_PASSWORD", &weak),
            ("VOXGUARD_TOKEN_KEY", &bad_key),
            ("VOXGUARD_RETENTION_TRANSCRIPT_DAYS", "0"),
            ("VOXGUARD_COMPLIANCE", "hipaa"),
            ("VOXGUARD_DATA_DIR", data.to_str().expect("utf-8")),
        ],
    );
    let env_arg = env_file.to_str().expect("utf-8");
    let run = voxguard(&["check", "--env-file", env_arg, "--json"], &[], None).await;
    assert_eq!(run.code, 1, "{run:#?}");
    let found = items(&run);
    for id in [
        "production",
        "server_config",
        "https",
        "basic_auth",
        "keys.token",
        "keys.audit",
        "keys.records",
        "keys.signing",
        "credentials.emergency",
        "credentials.distinct",
        "retention",
        "compliance",
        "data_dir",
    ] {
        assert_eq!(found[id].0, "fail", "{id}: {:?}", found[id]);
    }
    assert!(found["keys.token"].1.contains("malformed"), "{found:?}");
    assert!(found["data_dir"].1.contains("0755"), "{found:?}");
    assert!(
        found["credentials.distinct"]
            .1
            .contains("SWML_BASIC_AUTH_PASSWORD")
            && found["credentials.distinct"]
                .1
                .contains("VOXGUARD_ADMIN_PASSWORD"),
        "{found:?}"
    );
    // Every failure says how to fix it.
    for item in run.json()["items"].as_array().expect("items") {
        if item["status"] != "pass" {
            assert!(
                item["fix"].as_str().is_some_and(|f| !f.is_empty()),
                "{item}"
            );
        }
    }
    assert_no_secret(&run, &[&weak, &bad_key]);
    let table = voxguard(&["check", "--env-file", env_arg], &[], None).await;
    assert_eq!(table.code, 1);
    assert!(
        table.stdout.contains("fix: set VOXGUARD_ENV=production"),
        "{}",
        table.stdout
    );
    assert_no_secret(&table, &[&weak, &bad_key]);
}

#[tokio::test]
async fn url_reads_the_bank_agents_tools_and_an_unreachable_url_exits_4() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    let run = voxguard(&["check", "--url", &bank.base, "--json"], &bank.env(), None).await;
    assert_eq!(
        run.code, 1,
        "the test environment is not hardened: {run:#?}"
    );
    let found = items(&run);
    assert_eq!(found["tools.token"].0, "pass", "{found:?}");
    assert!(
        found["tools.token"].1.contains("5 webhook function(s)"),
        "{found:?}"
    );
    assert_eq!(found["tools.confirmation"].0, "pass", "{found:?}");
    assert!(
        found["tools.confirmation"].1.contains("transfer_funds"),
        "{found:?}"
    );
    // admin_action is gated by a role on the server, which SWML cannot show.
    assert_eq!(found["tools.verification"].0, "warn", "{found:?}");
    assert_eq!(found["tools.rate_limits"].0, "warn", "{found:?}");
    // Plain-http webhooks carry the credentials in clear.
    assert_eq!(found["https"].0, "fail", "{found:?}");
    assert_no_secret(&run, &[bank.password]);

    drop(bank);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let gone = voxguard(
        &["check", "--url", &format!("http://127.0.0.1:{port}/")],
        &[],
        None,
    )
    .await;
    assert_eq!(gone.code, 4, "{gone:#?}");
    assert!(gone.stderr.contains("cannot reach"), "{}", gone.stderr);
}

/// An agent whose `send_money` has no token, no verification gate and no confirmation.
async fn weak_agent() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hook = format!("http://weak:weak-webhook-secret@127.0.0.1:{port}/swaig");
    let document = json!({"version": "1.0.0", "sections": {"main": [{"answer": {}}, {"ai": {
        "prompt": {"text": "You are a weak agent."},
        "SWAIG": {"functions": [
            {"function": "lookup_order", "description": "Look up an order",
             "web_hook_url": format!("{hook}?__token=abc.def.ghi"),
             "parameters": {"type": "object", "properties": {"order": {"type": "string"}}}},
            {"function": "send_money", "description": "Send money to another account",
             "web_hook_url": hook,
             "parameters": {"type": "object", "properties": {
                "amount": {"type": "number"}, "to": {"type": "string"}}}},
        ]}
    }}]}});
    let swml = move || {
        let document = document.clone();
        async move { axum::Json::<Value>(document) }
    };
    let app = axum::Router::new().route("/", axum::routing::get(swml.clone()).post(swml));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/"), server)
}

#[tokio::test]
async fn url_against_a_weak_agent_names_the_unprotected_function() {
    let (url, server) = weak_agent().await;
    let run = voxguard(&["check", "--url", &url, "--json"], &[], None).await;
    server.abort();
    assert_eq!(run.code, 1, "{run:#?}");
    let found = items(&run);
    let (status, detail) = &found["tools.token"];
    assert_eq!(status, "fail", "{found:?}");
    assert!(
        detail.contains("send_money") && !detail.contains("lookup_order"),
        "{detail}"
    );
    assert_eq!(found["tools.verification"].0, "fail", "{found:?}");
    assert_eq!(found["tools.confirmation"].0, "fail", "{found:?}");
    assert!(
        found["tools.confirmation"].1.contains("send_money"),
        "{found:?}"
    );
    assert_no_secret(&run, &["weak-webhook-secret", "abc.def.ghi"]);
}

#[tokio::test]
async fn pid_finds_a_secret_on_a_command_line_by_variable_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = generate("token").await;
    let env_file = write_env(dir.path(), &[("VOXGUARD_TOKEN_KEY", &token)]);
    let env_arg = env_file.to_str().expect("utf-8");
    // `sh -c 'read line' KEY`: the shell itself waits on its stdin (no child process that
    // would outlive it), with the key as its $0 on the command line.
    let child = Killed(
        std::process::Command::new("sh")
            .args(["-c", "read line", &token])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sh"),
    );
    let pid = child.0.id().to_string();
    let run = voxguard(
        &["check", "--env-file", env_arg, "--pid", &pid, "--json"],
        &[],
        None,
    )
    .await;
    drop(child);
    assert_eq!(run.code, 1, "{run:#?}");
    let (status, detail) = &items(&run)["cmdline"];
    assert_eq!(status, "fail");
    assert!(
        detail.contains(&format!("pid {pid}")) && detail.contains("VOXGUARD_TOKEN_KEY"),
        "{detail}"
    );
    assert_no_secret(&run, &[&token]);

    // A process that is not there is a usage error.
    let none = voxguard(
        &["check", "--env-file", env_arg, "--pid", "999999999"],
        &[],
        None,
    )
    .await;
    assert_eq!(none.code, 2, "{none:#?}");
    assert!(none.stderr.contains("no process"), "{}", none.stderr);
}

#[tokio::test]
async fn an_unreadable_env_file_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.env");
    let run = voxguard(
        &["check", "--env-file", missing.to_str().expect("utf-8")],
        &[],
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("cannot read the env file"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());

    let secret = format!("hunter-{:08x}", rand::random::<u32>());
    let bad = dir.path().join("bad.env");
    std::fs::write(
        &bad,
        format!("GOOD=1\nthis line {secret} is not a variable\n"),
    )
    .expect("write");
    let run = voxguard(
        &["check", "--env-file", bad.to_str().expect("utf-8")],
        &[],
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("KEY=VALUE"), "{}", run.stderr);
    assert_no_secret(&run, &[&secret]);
}

#[tokio::test]
async fn check_changes_nothing_and_reports_an_open_records_db() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let records = generate("records").await;
    let vars = [
        ("VOXGUARD_RECORDS_KEY", records.as_str()),
        ("VOXGUARD_DATA_DIR", data.to_str().expect("utf-8")),
    ];
    let added = voxguard(&["users", "add", "alice", "--role", "admin"], &vars, None).await;
    assert_eq!(added.code, 0, "{added:#?}");
    let db = data.join("records.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    // SQLite's own `-wal`/`-shm` sidecars are left out: when the `users add` process exits in
    // the middle of closing its connections (seen on a loaded machine), a later read-only open
    // may finish SQLite's cleanup of them. They hold no data of their own; every other file,
    // and every mode, must be exactly as before.
    let listing = || {
        let mut all: Vec<(String, u32)> = std::fs::read_dir(&data)
            .expect("list")
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                !name.ends_with("-wal") && !name.ends_with("-shm")
            })
            .map(|e| {
                let mode = e.metadata().expect("stat").permissions().mode() & 0o777;
                (e.file_name().to_string_lossy().into_owned(), mode)
            })
            .collect();
        all.sort();
        all
    };
    let before = listing();
    let env_file = write_env(dir.path(), &vars);
    let run = voxguard(
        &[
            "check",
            "--env-file",
            env_file.to_str().expect("utf-8"),
            "--json",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{run:#?}");
    let found = items(&run);
    assert_eq!(found["data_dir"].0, "fail", "{found:?}");
    assert!(
        found["data_dir"].1.contains("records.db (0644)"),
        "{found:?}"
    );
    assert_eq!(found["credentials.operators"].0, "pass", "{found:?}");
    assert_eq!(listing(), before, "check changed the data directory");
    assert_no_secret(&run, &[&records]);
}

/// An agent that looks protected but is not: a static token, a money tool whose description
/// mentions the PIN, a camelCase money tool, and plain-http URLs outside the webhooks.
async fn deceptive_agent() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hook = format!("https://bank:hook-secret-77@127.0.0.1:{port}/swaig");
    let amount = json!({"type": "object", "properties": {"amount": {"type": "number"}}});
    let document = json!({"version": "1.0.0", "sections": {"main": [
        {"answer": {}},
        {"pay": {"payment_connector_url": "http://pay.example/connector"}},
        {"ai": {
            "prompt": {"text": "You are a bank."},
            "params": {"debug_webhook_url": "http://debug.example/hook"},
            "post_prompt_url": "http://u:pw-secret-99@host:99999/post",
            "SWAIG": {"functions": [
                {"function": "transfer_funds",
                 "description": "Move money to another account; ask for the PIN first",
                 "web_hook_url": format!("{hook}?__token=static.token.value"),
                 "parameters": amount.clone()},
                {"function": "sendMoney", "description": "Send it",
                 "web_hook_url": format!("{hook}?__token=static.token.value2"),
                 "parameters": amount},
                {"function": "lookup", "description": "Look something up",
                 "data_map": {"webhooks": [{"url": "http://api.example/x", "method": "GET"}]}},
            ]}
        }}
    ]}});
    let swml = move || {
        let document = document.clone();
        async move { axum::Json::<Value>(document) }
    };
    let app = axum::Router::new().route("/", axum::routing::get(swml.clone()).post(swml));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/"), server)
}

#[tokio::test]
async fn url_sees_through_a_deceptive_agent() {
    let (url, server) = deceptive_agent().await;
    let run = voxguard(&["check", "--url", &url, "--json"], &[], None).await;
    server.abort();
    assert_eq!(run.code, 1, "{run:#?}");
    let found = items(&run);
    // The same token for two call ids is static.
    assert_eq!(found["tools.token"].0, "fail", "{found:?}");
    assert!(
        found["tools.token"].1.contains("transfer_funds"),
        "{found:?}"
    );
    // A PIN in a description does not make a money tool the gate; camelCase is split.
    for id in ["tools.verification", "tools.confirmation"] {
        assert_eq!(found[id].0, "fail", "{id}: {found:?}");
        assert!(
            found[id].1.contains("transfer_funds") && found[id].1.contains("sendMoney"),
            "{id}: {found:?}"
        );
    }
    assert_eq!(found["tools.rate_limits"].0, "warn", "{found:?}");
    // Plain http anywhere in the document, an unparseable URL included (masked).
    let (status, detail) = &found["https"];
    assert_eq!(status, "fail", "{found:?}");
    for host in [
        "http://pay.example",
        "http://debug.example",
        "http://api.example",
        "host:99999 (not a valid URL)",
    ] {
        assert!(detail.contains(host), "{host}: {detail}");
    }
    assert_no_secret(&run, &["pw-secret-99", "hook-secret-77"]);
}

#[tokio::test]
async fn an_endless_env_file_exits_2() {
    let run = voxguard(&["check", "--env-file", "/dev/zero"], &[], None).await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("larger than"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
