//! No sensitive value reaches a log line (DESIGN.md invariant 5, issue 4 item 8): the real
//! bank agent binary runs a whole session at `RUST_LOG=debug` — credentials refused, wrong PINs,
//! the right PIN, a balance, a confirmed transfer, card numbers where an account number belongs,
//! tokens used where they do not belong — in the text and in the JSON log format, and everything
//! it printed (stderr and stdout) is scanned for every secret the session involved.

use std::path::Path;
use std::process::Command;

use crate::util::bank_process::*;
use crate::util::token_for;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CALLER: &str = "+15551234567";
const RIGHT_PIN: &str = "4321";
const WRONG_PINS: [&str; 2] = ["9999", "1357"];
const CARD: &str = "4111111111111111";
const CARD_DASHED: &str = "4111-1111-1111-1111";
const CARD_SPACED: &str = "4111 1111 1111 1111";
/// A wrong password tried with the right user name.
const WRONG_PASSWORD: &str = "guessed-Password-7f3a9c";
/// A bearer token sent where Basic credentials belong.
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLXNlY3JldA";

/// A bank agent child process whose stdout and stderr are both kept in full.
struct Bank {
    child: ChildGuard,
    base: reqwest::Url,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Bank {
    /// Start the bank agent on `dir` with `vars` (applied after the kit's defaults, so
    /// `RUST_LOG` here overrides the kit's `warn`) and wait for its "listening" line.
    async fn start(dir: &Path, vars: &[(&str, &str)]) -> Self {
        let agent = spawn_announced(bank_agent_command(dir, vars), "bank agent").await;
        Self {
            child: agent.child,
            base: reqwest::Url::parse(&agent.base).expect("announced URL"),
            stdout: agent.stdout,
            stderr: agent.stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        self.base.join(path).expect("join").to_string()
    }

    /// SIGTERM, wait for the exit; everything the process wrote (stdout, stderr).
    async fn terminate(mut self) -> (String, String) {
        let pid = self.child.0.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(kill.success(), "kill -TERM {pid}");
        let status = wait_for_exit(&mut self.child.0)
            .await
            .expect("the bank agent exits after SIGTERM");
        let stdout = self.stdout.join().unwrap_or_default();
        let stderr = self.stderr.join().unwrap_or_default();
        assert!(
            status.success(),
            "exit status {status:?}; stderr:\n{stderr}"
        );
        (stdout, stderr)
    }
}

/// Every `__token=` value anywhere in the SWML document.
fn minted_tokens(swml: &Value) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => {
                for (i, _) in text.match_indices("__token=") {
                    let token: String = text[i + "__token=".len()..]
                        .chars()
                        .take_while(|c| !matches!(c, '&' | '#' | '"' | ' '))
                        .collect();
                    if !token.is_empty() {
                        out.push(token);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(swml, &mut out);
    out.sort();
    out.dedup();
    out
}

/// The words of a log: runs of letters, digits and dots, without leading or trailing dots (so
/// `12.4321` in a duration or `30.543211Z` in a timestamp are one word each, while `pin=4321`,
/// `"pin":"4321"` and `PIN is 4321.` all contain the word `4321`).
fn words(log: &str) -> impl Iterator<Item = &str> {
    log.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .map(|word| word.trim_matches('.'))
        .filter(|word| !word.is_empty())
}

/// Drive a whole session against `bank` and return the secrets it involved.
async fn run_session(bank: &Bank) -> Vec<String> {
    let client = reqwest::Client::new();
    // PINs are looked for as words (see `words`): four digits also occur inside timestamps,
    // durations and request ids.
    let mut secrets: Vec<String> = [
        CARD,
        CARD_DASHED,
        CARD_SPACED,
        BANK_PASSWORD,
        WRONG_PASSWORD,
        BEARER,
    ]
    .map(String::from)
    .to_vec();
    for (user, password) in [(BANK_USER, BANK_PASSWORD), (BANK_USER, WRONG_PASSWORD)] {
        secrets.push(BASE64.encode(format!("{user}:{password}")));
    }

    // Credentials refused: none, a wrong password, a bearer token, garbage.
    let wrong_basic = format!(
        "Basic {}",
        BASE64.encode(format!("{BANK_USER}:{WRONG_PASSWORD}"))
    );
    let bad_headers = [
        None,
        Some(wrong_basic.clone()),
        Some(format!("Bearer {BEARER}")),
        Some(format!("Basic {WRONG_PASSWORD}")),
        Some(WRONG_PASSWORD.to_string()),
    ];
    for header in &bad_headers {
        let mut request = client
            .post(bank.url("/"))
            .json(&json!({"call_id": "intruder"}));
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
    }

    // Secrets in the request path, which the auth-failure and access log lines record
    // (only the query string is left out of them).
    let secret_paths = [
        format!("/cards/{CARD}"),
        format!("/cards/{CARD_DASHED}"),
        format!("/verify/pin={}", WRONG_PINS[0]),
        format!("/login/password={WRONG_PASSWORD}"),
    ];
    for path in &secret_paths {
        let response = client.get(bank.url(path)).send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        let response = client
            .get(bank.url(path))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .send()
            .await
            .expect("request");
        assert!(response.status().is_client_error(), "{path}");
    }

    // The SWML for the call; every token minted in it is a secret.
    let call_id = "log-redaction-call-1";
    let response = client
        .post(bank.url("/"))
        .basic_auth(BANK_USER, Some(BANK_PASSWORD))
        .json(&json!({ "call_id": call_id, "call": { "from": CALLER } }))
        .send()
        .await
        .expect("SWML fetch");
    assert_eq!(response.status(), StatusCode::OK);
    let swml: Value = response.json().await.expect("SWML JSON");
    let tokens = minted_tokens(&swml);
    assert!(tokens.len() >= 4, "tokens in the SWML: {swml}");
    secrets.extend(tokens);

    let swaig = |function: &str, args: Value| {
        let token = token_for(&swml, function).expect("token in SWML");
        let request = client
            .post(bank.url(&format!("/swaig?__token={token}")))
            .basic_auth(BANK_USER, Some(BANK_PASSWORD))
            .json(&json!({
                "function": function,
                "call_id": call_id,
                "caller_id_num": CALLER,
                "argument": { "parsed": [args], "raw": args.to_string() },
            }));
        async move {
            let response = request.send().await.expect("SWAIG call");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };

    // A function token with bad credentials: refused before anything else.
    let token = token_for(&swml, "verify_pin").expect("token");
    let response = client
        .post(bank.url(&format!("/swaig?__token={token}")))
        .header("Authorization", &wrong_basic)
        .json(&json!({
            "function": "verify_pin",
            "call_id": call_id,
            "caller_id_num": CALLER,
            "argument": { "parsed": [{"pin": RIGHT_PIN}], "raw": "" },
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A function token in the path instead of the query.
    let response = client
        .post(bank.url(&format!("/swaig/__token={token}")))
        .basic_auth(BANK_USER, Some(BANK_PASSWORD))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert!(response.status().is_client_error());

    // A token used for another function: refused.
    let response = client
        .post(bank.url(&format!("/swaig?__token={token}")))
        .basic_auth(BANK_USER, Some(BANK_PASSWORD))
        .json(&json!({
            "function": "get_balance",
            "call_id": call_id,
            "caller_id_num": CALLER,
            "argument": { "parsed": [{}], "raw": "" },
        }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Before verification: no balance.
    let (status, body) = swaig("get_balance", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"], "verification_required", "{body}");

    // Two wrong PINs, a card number where the PIN belongs, then the right PIN.
    for pin in WRONG_PINS {
        let (status, body) = swaig("verify_pin", json!({ "pin": pin })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body["response"]
                .as_str()
                .is_some_and(|s| s.contains("didn't match")),
            "{body}"
        );
    }
    let (status, body) = swaig("verify_pin", json!({ "pin": CARD })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["error"], "invalid_argument", "{body}");
    let (status, body) = swaig("verify_pin", json!({ "pin": RIGHT_PIN })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["response"]
            .as_str()
            .is_some_and(|s| s.contains("verified")),
        "{body}"
    );

    let (status, body) = swaig("get_balance", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["response"]
            .as_str()
            .is_some_and(|s| s.contains("$150.00")),
        "{body}"
    );

    // A transfer read back, then confirmed.
    let transfer = json!({"amount": 25, "to_account": "1111117890"});
    let (status, body) = swaig("transfer_funds", transfer.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["error"], "confirmation_required", "{body}");
    let mut confirmed = transfer;
    confirmed["confirmed"] = json!(true);
    let (status, body) = swaig("transfer_funds", confirmed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["response"]
            .as_str()
            .is_some_and(|s| s.starts_with("Transferred $25.00")),
        "{body}"
    );

    // Card numbers where an account number belongs: refused by validation.
    for card in [CARD, CARD_DASHED, CARD_SPACED] {
        for args in [
            json!({"amount": 10, "to_account": card}),
            json!({"amount": 10, "to_account": card, "confirmed": true}),
        ] {
            let (status, body) = swaig("transfer_funds", args).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["error"], "invalid_argument", "{body}");
        }
    }
    // And in fields the tool does not declare (which its handler never sees).
    let (status, body) = swaig(
        "get_balance",
        json!({ "card_number": CARD, "note": format!("my card is {CARD_SPACED}") }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    secrets
}

/// Run the session with `RUST_LOG=debug` and `extra` settings; scan everything printed.
async fn session_leaves_no_secret_in_the_log(extra: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vars = vec![
        ("SWML_BASIC_AUTH_USER", BANK_USER),
        ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
        ("RUST_LOG", "debug"),
    ];
    vars.extend_from_slice(extra);
    let bank = Bank::start(dir.path(), &vars).await;
    let secrets = run_session(&bank).await;
    let (stdout, stderr) = bank.terminate().await;
    let log = format!("{stdout}\n{stderr}");

    // The scan means something: the session was logged, at debug level, in detail.
    for expected in [
        "voxguard listening",
        "auth_failed",
        "token_refused",
        "arguments refused",
        "caller verified",
        "verification event",
        "voxguard::access",
    ] {
        assert!(
            log.contains(expected),
            "{expected:?} is not in the log:\n{log}"
        );
    }
    assert!(log.contains("DEBUG"), "debug lines are logged:\n{log}");
    // The card numbers in request paths were logged, masked by the log writer.
    assert!(log.contains("/cards/****1111"), "masked paths:\n{log}");

    let lines_with = |found: &dyn Fn(&str) -> bool| -> Vec<&str> {
        log.lines().filter(|line| found(line)).collect()
    };
    for secret in &secrets {
        let leaks = lines_with(&|line| line.contains(secret.as_str()));
        assert!(leaks.is_empty(), "{secret:?} is in the log:\n{leaks:#?}");
    }
    let leaks = lines_with(&|line| {
        let squeezed: String = line.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        squeezed.contains(CARD)
    });
    assert!(
        leaks.is_empty(),
        "the card number is in the log (with separators):\n{leaks:#?}"
    );
    for pin in [RIGHT_PIN, WRONG_PINS[0], WRONG_PINS[1]] {
        let leaks = lines_with(&|line| words(line).any(|word| word == pin));
        assert!(leaks.is_empty(), "PIN {pin} is in the log:\n{leaks:#?}");
    }
    let leaks = lines_with(&|line| line.contains(&CALLER[1..]));
    assert!(
        leaks.is_empty(),
        "the caller's full number is in the log:\n{leaks:#?}"
    );
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_of_a_bank_session_has_no_secrets() {
    session_leaves_no_secret_in_the_log(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_of_a_bank_session_has_no_secrets() {
    let stderr = session_leaves_no_secret_in_the_log(&[("VOXGUARD_LOG_FORMAT", "json")]).await;
    // Redaction keeps every line a JSON object, so log shippers can still parse them.
    for line in stderr.lines().filter(|line| !line.trim().is_empty()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        assert!(value["fields"].is_object(), "{line}");
    }
}

/// Issue 9, item 1: an anonymous request with a 58 KB path of `pin:` values is refused, and its
/// log line is cut to the path cap (with the marker) before redaction ever sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_megapath_makes_one_bounded_log_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bank = Bank::start(
        dir.path(),
        &[
            ("SWML_BASIC_AUTH_USER", BANK_USER),
            ("SWML_BASIC_AUTH_PASSWORD", BANK_PASSWORD),
        ],
    )
    .await;
    let path = format!("/swaig/{}", "pin:7531;".repeat(6_500));
    let response = reqwest::Client::new()
        .get(bank.url(&path))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (stdout, stderr) = bank.terminate().await;
    let log = format!("{stdout}\n{stderr}");
    let refused: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("auth_failed"))
        .collect();
    assert!(!refused.is_empty(), "the refusal is logged:\n{log}");
    for line in &refused {
        assert!(line.len() < 2_048, "{} bytes: {line}", line.len());
        assert!(line.contains("[truncated"), "the cut is marked: {line}");
    }
    assert!(!log.contains("7531"), "no PIN in the log");
    assert!(
        log.lines().all(|line| line.len() <= 16 * 1024 + 64),
        "every line is bounded"
    );
}

#[test]
fn words_split_the_way_a_leak_would_show() {
    let log = r#"pin=4321 "pin":"9999" PIN is 1357. took 12.4321 ms at 10:30:17.543210Z id 4321ab"#;
    let found: Vec<&str> = words(log).collect();
    for pin in ["4321", "9999", "1357"] {
        assert!(found.contains(&pin), "{pin} in {found:?}");
    }
    assert_eq!(words("took 12.4321 ms, 30.543210Z, 4321ab").count(), 5);
    assert!(!words("took 12.4321 ms, 30.543210Z, 4321ab").any(|w| w == "4321"));
}
