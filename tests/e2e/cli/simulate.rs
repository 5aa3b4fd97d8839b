//! `voxguard simulate` against the reference agents: the shipped scripts under
//! examples/calls/ pass (serially and with --parallel), a wrong expectation fails with a diff
//! naming what was expected and what came back, --junit counts tests and failures, an invalid
//! script is a usage error naming the file, and an agent that cannot be used is exit 4.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{voxguard, RefAgent};

/// A shipped script, by absolute path.
fn shipped(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/calls")
        .join(name)
        .display()
        .to_string()
}

/// Write `text` as `name` in `dir`.
fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the script");
    path
}

/// (file, name, ok, verdict of each step) of every call of a `--json` run.
fn verdicts(json: &Value) -> Vec<(String, String, bool, Vec<String>)> {
    json["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|call| {
            (
                call["file"].as_str().unwrap_or_default().to_string(),
                call["name"].as_str().unwrap_or_default().to_string(),
                call["ok"] == true,
                call["steps"]
                    .as_array()
                    .expect("steps")
                    .iter()
                    .map(|s| s["verdict"].as_str().unwrap_or_default().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_shipped_scripts_pass_against_the_reference_agents() {
    let (bank, clinic, shop) = tokio::join!(
        RefAgent::start("bank_agent", &[]),
        RefAgent::start("clinic_agent", &[]),
        RefAgent::start("shop_agent", &[]),
    );
    for (agent, file, calls) in [
        (&bank, "bank.yaml", 5),
        (&clinic, "clinic.yaml", 3),
        (&shop, "shop.yaml", 2),
    ] {
        let run = voxguard(
            &["simulate", &agent.base, &shipped(file)],
            &agent.env(),
            None,
        )
        .await;
        assert_eq!(run.code, 0, "{file}: {run:#?}");
        assert_eq!(
            run.stdout
                .lines()
                .filter(|l| l.starts_with("PASS "))
                .count(),
            calls,
            "{file}: {}",
            run.stdout
        );
        assert!(
            run.stdout
                .contains(&format!("{calls} calls: {calls} passed, 0 failed")),
            "{}",
            run.stdout
        );
        assert!(!run.stdout.contains(agent.password), "password masked");
    }

    // --json: every call and step passed, the pay action of the shop came back, no secret.
    let run = voxguard(
        &["simulate", &shop.base, &shipped("shop.yaml"), "--json"],
        &shop.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{run:#?}");
    let json = run.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["totals"]["steps_passed"], json["totals"]["steps"]);
    let checkout = &json["calls"][0]["steps"][2];
    assert_eq!(checkout["function"], "checkout");
    assert_eq!(checkout["actions"][0]["kind"], "pay");
    assert!(!run.stdout.contains(shop.password), "password masked");
    assert!(!run.stdout.contains("__token="), "no token shown");

    // --parallel: the same verdicts, in the same order.
    let serial = voxguard(
        &["simulate", &bank.base, &shipped("bank.yaml"), "--json"],
        &bank.env(),
        None,
    )
    .await;
    let parallel = voxguard(
        &[
            "simulate",
            &bank.base,
            &shipped("bank.yaml"),
            "--json",
            "--parallel",
            "4",
        ],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(serial.code, 0, "{serial:#?}");
    assert_eq!(parallel.code, 0, "{parallel:#?}");
    assert_eq!(verdicts(&serial.json()), verdicts(&parallel.json()));
}

/// A script whose expectations are wrong in three ways, and one that names a function the
/// agent does not have.
const WRONG: &str = r#"
calls:
  - name: balance with wrong expectations
    caller: "+15551234567"
    steps:
      - call: verify_pin
        args: {pin: "4321"}
        expect: {action: toggle_functions}
      - call: get_balance
        expect:
          response_contains: "$999.00"
          refused: verification_required
          action: connect
      - call: get_balance
  - name: a department transfer that passes
    caller: "+15550000003"
    steps:
      - call: transfer_to_department
        args: {department: billing}
        expect: {action: connect, response_contains: billing}
  - name: no such function
    caller: "+15550000004"
    steps:
      - call: close_account
"#;

#[tokio::test]
async fn a_wrong_expectation_fails_with_a_diff_and_a_junit_report() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = script(dir.path(), "wrong.yaml", WRONG);
    let wrong = wrong.to_str().expect("utf-8 path");
    let junit = dir.path().join("report.xml");
    let junit_arg = junit.to_str().expect("utf-8 path");

    let run = voxguard(
        &["simulate", &bank.base, wrong, "--junit", junit_arg],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{run:#?}");
    let out = &run.stdout;
    // The diff: expected and what came back, for each failed expectation.
    for line in [
        "FAIL  ",
        "step 2  get_balance {}  failed",
        "- expected: refused: verification_required",
        "+ got:      not refused (HTTP 200)",
        "- expected: response containing \"$999.00\"",
        "+ got:      \"Your balance is $150.00.\"",
        "- expected: action connect",
        "+ got:      no actions",
        "1 later step skipped",
        "PASS  ",
        "- expected: a function \"close_account\" in the SWML",
        "+ got:      the SWML renders: verify_pin, get_balance, transfer_funds, admin_action, transfer_to_department",
        "3 calls: 1 passed, 2 failed",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let order: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
        .map(|l| &l[..4])
        .collect();
    assert_eq!(order, ["FAIL", "PASS", "FAIL"]);

    // JUnit: one testsuite per call, one testcase per step: 5 tests, 2 failures, 1 skipped.
    let xml = std::fs::read_to_string(&junit).expect("the report was written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(
            "<testsuites name=\"voxguard simulate\" tests=\"5\" failures=\"2\" errors=\"0\" skipped=\"1\""
        ),
        "{xml}"
    );
    assert_eq!(xml.matches("<testsuite ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 5, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
    assert_eq!(xml.matches("<skipped ").count(), 1, "{xml}");
    assert!(
        xml.contains("expected response containing &quot;$999.00&quot;"),
        "the failure message is escaped: {xml}"
    );
    assert!(!xml.contains(bank.password));

    // --parallel: the same verdicts in the same order.
    let serial = voxguard(
        &["simulate", &bank.base, wrong, "--json"],
        &bank.env(),
        None,
    )
    .await;
    let parallel = voxguard(
        &["simulate", &bank.base, wrong, "--json", "--parallel", "3"],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!((serial.code, parallel.code), (1, 1));
    let verdicts_serial = verdicts(&serial.json());
    assert_eq!(verdicts_serial, verdicts(&parallel.json()));
    assert_eq!(
        verdicts_serial
            .iter()
            .map(|(_, _, ok, steps)| (*ok, steps.join(",")))
            .collect::<Vec<_>>(),
        [
            (false, "passed,failed,skipped".to_string()),
            (true, "passed".to_string()),
            (false, "failed".to_string()),
        ]
    );
    let mismatch = &serial.json()["calls"][0]["steps"][1]["mismatches"][0];
    assert_eq!(mismatch["expectation"], "refused");
    assert_eq!(mismatch["actual"], "not refused (HTTP 200)");
}

#[tokio::test]
async fn invalid_scripts_are_usage_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unknown_key = script(
        dir.path(),
        "typo.yaml",
        "name: n\ncaller: \"+15551234567\"\nsteps:\n  - call: get_balance\n    expect: {respons_contains: x}\n",
    );
    let bad_yaml = script(
        dir.path(),
        "broken.yaml",
        "name: [unclosed\ncaller: \"+1\"\n",
    );
    let no_steps = script(
        dir.path(),
        "empty.yaml",
        "name: n\ncaller: \"+1\"\nsteps: []\n",
    );
    let good = script(
        dir.path(),
        "good.yaml",
        "name: n\ncaller: \"+1\"\nsteps: [{call: f}]\n",
    );
    let missing = dir.path().join("missing.yaml");
    // The agent is not even there: scripts are read before anything is sent.
    let url = "http://127.0.0.1:9/";
    for (path, words) in [
        (&unknown_key, vec!["typo.yaml", "respons_contains", "line"]),
        (&bad_yaml, vec!["broken.yaml", "YAML"]),
        (&no_steps, vec!["empty.yaml", "steps"]),
        (&missing, vec!["missing.yaml", "cannot read"]),
    ] {
        let run = voxguard(
            &[
                "simulate",
                url,
                good.to_str().expect("utf-8"),
                path.to_str().expect("utf-8"),
            ],
            &[],
            None,
        )
        .await;
        assert_eq!(run.code, 2, "{run:#?}");
        for word in words {
            assert!(run.stderr.contains(word), "{word:?} in {}", run.stderr);
        }
        assert!(run.stdout.is_empty(), "{run:#?}");
    }
    // A report that cannot be written is found before any call.
    let nowhere = dir.path().join("no-such-dir").join("report.xml");
    let run = voxguard(
        &[
            "simulate",
            url,
            good.to_str().expect("utf-8"),
            "--junit",
            nowhere.to_str().expect("utf-8"),
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("cannot write --junit"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn an_agent_that_cannot_be_used_is_exit_4() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let junit = dir.path().join("report.xml");
    let file = shipped("bank.yaml");

    // Wrong credentials: the SWML fetch answers 401.
    let run = voxguard(
        &[
            "simulate",
            &bank.base,
            &file,
            "--junit",
            junit.to_str().expect("utf-8"),
        ],
        &[
            ("SWML_BASIC_AUTH_USER", bank.user),
            ("SWML_BASIC_AUTH_PASSWORD", "not-the-password"),
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    assert!(!run.stderr.contains("not-the-password"));
    let xml = std::fs::read_to_string(&junit).expect("the report was written");
    assert!(xml.contains("errors=\"1\""), "{xml}");
    assert_eq!(xml.matches("<error ").count(), 1, "{xml}");

    // Nothing listens: unreachable.
    let run = voxguard(
        &["simulate", "http://127.0.0.1:9/", &file],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("cannot reach"), "{}", run.stderr);
}

/// The secret token the foreign agent puts in its webhook URL (and leaks in an answer).
const FOREIGN_TOKEN: &str = "tok-SECRET-0123456789";

/// A small agent that is not ours: no credentials, one token for everything, a `remember`
/// function that sets global data, a `recall` function that answers with what the platform
/// sent back of it, a `leak` function that answers with its own token, and a `data_map`
/// function with no webhook. Returns its base URL.
async fn foreign_agent() -> String {
    use axum::routing::post;
    use axum::Json;
    use serde_json::json;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    let hook = format!("{base}swaig?__token={FOREIGN_TOKEN}");
    let swml = json!({"version": "1.0.0", "sections": {"main": [{"answer": {}}, {"ai": {
        "prompt": {"text": "test"},
        "global_data": {"start": "yes"},
        "SWAIG": {"functions": [
            {"function": "remember", "description": "r", "web_hook_url": hook},
            {"function": "recall", "description": "r", "web_hook_url": hook},
            {"function": "leak", "description": "l", "web_hook_url": hook},
            {"function": "platform_only", "description": "p", "data_map": {"webhooks": []}},
        ]}
    }}]}});
    let app = axum::Router::new()
        .route("/", post(move || async move { Json(swml) }))
        .route(
            "/swaig",
            post(|Json(body): Json<Value>| async move {
                let data = &body["global_data"];
                Json(match body["function"].as_str() {
                    Some("remember") => json!({"response": "remembered",
                        "action": [{"set_global_data": {"color": "blue"}}]}),
                    Some("recall") => json!({"response": format!(
                        "start={} extra={} color={} caller={}",
                        data["start"], data["extra"], data["color"], body["caller_id_num"]
                    )}),
                    Some("leak") => json!({"response": format!("my token is {FOREIGN_TOKEN}")}),
                    _ => json!({"error": "unknown_function"}),
                })
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test]
async fn any_agent_global_data_follows_the_answers_and_secrets_stay_masked() {
    let base = foreign_agent().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "foreign.yaml",
        r#"
calls:
  - name: global data follows the answers
    caller: "+15550001111"
    global_data: {extra: 1}
    steps:
      - call: recall
        expect: {response_contains: 'start="yes" extra=1 color=null caller="+15550001111"'}
      - call: remember
        expect: {action: set_global_data}
      - call: recall
        expect: {response_contains: 'color="blue"'}
      - call: leak
        # Compared with the answer as it came; only what is printed is masked.
        expect: {response_contains: "my token is tok-"}
  - name: a function the platform runs itself
    caller: "+15550001111"
    steps:
      - call: platform_only
"#,
    );
    let path = path.to_str().expect("utf-8");
    let run = voxguard(&["simulate", &base, path, "--json"], &[], None).await;
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(!run.stdout.contains(FOREIGN_TOKEN), "{}", run.stdout);
    assert!(run.stdout.contains("my token is ****"), "{}", run.stdout);
    let json = run.json();
    assert_eq!(json["calls"][0]["ok"], true, "{json}");
    let mismatch = &json["calls"][1]["steps"][0]["mismatches"][0];
    assert_eq!(mismatch["expectation"], "function", "{json}");
    assert!(
        mismatch["actual"]
            .as_str()
            .is_some_and(|a| a.contains("no webhook URL")),
        "{json}"
    );

    // --show-secrets shows what the agent answered.
    let shown = voxguard(
        &["simulate", &base, path, "--show-secrets", "-v"],
        &[],
        None,
    )
    .await;
    assert!(shown.stdout.contains(FOREIGN_TOKEN), "{shown:#?}");
}

/// The password given with `--password` to the hostile agent: a quote and a backslash, which
/// `{:?}` quoting escapes.
const HOSTILE_PASSWORD: &str = "p\"w\\x-SECRETPASSWORD-1234";
/// The token in the hostile agent's webhook URL.
const HOSTILE_TOKEN: &str = "TOK-hostile-0123456789";
/// The webhook password, rendered percent-encoded (`h%40ok%23PW-9876`).
const HOOK_PASSWORD: &str = "h@ok#PW-9876";

/// An agent that is not ours and answers with everything a report must not print: our
/// password and its token echoed, a refusal reason with terminal escapes and the password,
/// its webhook password decoded, an HTML page with 200, `{"hangup": false}`, and a policy
/// refusal with 200. Returns its base URL.
async fn hostile_agent() -> String {
    use axum::http::header;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use axum::Json;
    use serde_json::json;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}/");
    let hook = format!("http://hook:h%40ok%23PW-9876@{addr}/swaig?__token={HOSTILE_TOKEN}");
    let names = [
        "echo",
        "escape",
        "hook",
        "html",
        "hangup",
        "policy",
        "malformed",
    ];
    let functions: Vec<Value> = names
        .iter()
        .map(|name| json!({"function": name, "description": "d", "web_hook_url": hook}))
        .collect();
    let swml = json!({"version": "1.0.0", "sections": {"main": [{"ai": {
        "prompt": {"text": "test"}, "SWAIG": {"functions": functions}
    }}]}});
    let app = axum::Router::new()
        .route("/", post(move || async move { Json(swml) }))
        .route(
            "/swaig",
            post(|Json(body): Json<Value>| async move {
                let answer = match body["function"].as_str() {
                    Some("echo") => json!({"response": format!(
                        "your password is {HOSTILE_PASSWORD} and token {HOSTILE_TOKEN}"
                    )}),
                    Some("escape") => json!({"error": format!(
                        "\u{1b}]0;pwned\u{7}\u{1b}[31mRED {HOSTILE_PASSWORD}"
                    )}),
                    Some("hook") => json!({"response": format!("hook password {HOOK_PASSWORD}")}),
                    Some("html") => {
                        return (
                            [(header::CONTENT_TYPE, "text/html")],
                            "<html>SECRET-HTML-BODY</html>",
                        )
                            .into_response()
                    }
                    Some("hangup") => json!({"response": "bye", "action": [{"hangup": false}]}),
                    Some("policy") => {
                        json!({"error": "verification_required", "response": "Verify first."})
                    }
                    _ => json!({"error": {"code": 7}}),
                };
                Json(answer).into_response()
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test]
async fn a_hostile_agent_cannot_leak_secrets_or_pass_without_a_swaig_answer() {
    let base = hostile_agent().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = script(
        dir.path(),
        "hostile.yaml",
        &format!(
            r#"
calls:
  - name: echo
    caller: "+15550002222"
    steps: [{{call: echo, expect: {{response_contains: nothing}}}}]
  - name: escape
    caller: "+15550002222"
    steps: [{{call: escape}}]
  - name: hook
    caller: "+15550002222"
    steps: [{{call: hook, expect: {{response_contains: nothing}}}}]
  - name: html
    caller: "+15550002222"
    steps: [{{call: html}}]
  - name: hangup
    caller: "+15550002222"
    steps: [{{call: hangup, args: {{note: '{}'}}, expect: {{action: hangup}}}}]
  - name: policy
    caller: "+15550002222"
    steps: [{{call: policy, expect: {{status: 200}}}}]
  - name: malformed
    caller: "+15550002222"
    steps: [{{call: malformed}}]
"#,
            HOSTILE_PASSWORD.replace('\'', "''")
        ),
    );
    let path = path.to_str().expect("utf-8");
    let junit = dir.path().join("report.xml");
    let junit_arg = junit.to_str().expect("utf-8");
    let args = [
        "simulate",
        &base,
        path,
        "--user",
        "ci",
        "--password",
        HOSTILE_PASSWORD,
    ];
    let text = voxguard(
        &[&args[..], &["-v", "--junit", junit_arg]].concat(),
        &[],
        None,
    )
    .await;
    let json = voxguard(&[&args[..], &["--json"]].concat(), &[], None).await;
    let xml = std::fs::read_to_string(&junit).expect("the report was written");
    assert_eq!((text.code, json.code), (1, 1), "{text:#?}\n{json:#?}");
    for (what, out) in [
        ("text", &text.stdout),
        ("json", &json.stdout),
        ("junit", &xml),
    ] {
        for secret in [
            "SECRETPASSWORD",
            HOSTILE_TOKEN,
            "PW-9876",
            "pwned",
            "\u{1b}",
            "SECRET-HTML-BODY",
        ] {
            assert!(!out.contains(secret), "{what} shows {secret:?}:\n{out}");
        }
    }
    let out = &text.stdout;
    for line in [
        "+ got:      \"your password is **** and token ****\"",
        "+ got:      refused (unreadable reason) (HTTP 200)",
        "came back: HTTP 200, refused (unreadable reason)",
        "+ got:      \"hook password ****\"",
        "+ got:      not a SWAIG answer: not JSON, 29 bytes (HTTP 200)",
        "response: (not JSON, 29 bytes)",
        "+ got:      hangup (false)",
        "actions: hangup: false (no effect)",
        "+ got:      refused: verification_required (HTTP 200)",
        "+ got:      refused (malformed error) (HTTP 200)",
        "7 calls: 0 passed, 7 failed",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let json = json.json();
    let escape = &json["calls"][1]["steps"][0]["refusal"];
    assert_eq!(escape["reason"], Value::Null, "{json}");
    assert_eq!(escape["problem"], "unreadable reason", "{json}");
    assert_eq!(json["calls"][3]["steps"][0]["response"], Value::Null);
    assert_eq!(json["calls"][3]["steps"][0]["body"], "not JSON, 29 bytes");
    assert_eq!(json["calls"][4]["steps"][0]["arguments"]["note"], "****");
}
