//! `voxguard swml`, `tools`, `exec`, `keys` and `completions` against the reference bank
//! agent: what each prints, that secrets stay masked, and the exit codes and advice of the
//! failures (unreachable, 401, not SWML, unknown function, a refused step).

use super::{voxguard, RefAgent};

#[tokio::test]
async fn swml_prints_the_document_with_secrets_masked() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    let run = voxguard(
        &[
            "swml",
            &bank.base,
            "--call-id",
            "cli-swml-1",
            "--from",
            "+15551234567",
        ],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{run:#?}");
    let doc = run.json();
    assert!(doc["sections"]["main"].is_array(), "{doc}");
    assert!(run.stdout.contains("\n  "), "indented by default");
    assert!(
        !run.stdout.contains(bank.password),
        "the password is masked"
    );
    assert!(run.stdout.contains("__token=****"), "{}", run.stdout);
    assert!(!run.stdout.contains("__token=b"), "no token in clear");

    // --show-secrets shows them as rendered; --json is one line; --get renders too.
    let shown = voxguard(
        &[
            "swml",
            &bank.url_with_credentials(),
            "--show-secrets",
            "--json",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(shown.code, 0, "{shown:#?}");
    assert!(shown.stdout.contains(bank.password));
    assert_eq!(shown.stdout.trim_end().lines().count(), 1);
    let get = voxguard(&["swml", &bank.base, "--get"], &bank.env(), None).await;
    assert_eq!(get.code, 0, "{get:#?}");
}

#[tokio::test]
async fn tools_lists_functions_with_token_and_active_flags() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    let run = voxguard(&["tools", &bank.base], &bank.env(), None).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let line = |name: &str| {
        run.stdout
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {}", run.stdout))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("verify_pin")[1..4], ["yes", "yes", "pin*:string"]);
    assert_eq!(line("get_balance")[1..3], ["no", "yes"]);

    let json = voxguard(&["tools", &bank.base, "--json"], &bank.env(), None)
        .await
        .json();
    let functions = json["functions"].as_array().expect("functions");
    let transfer = functions
        .iter()
        .find(|f| f["function"] == "transfer_funds")
        .expect("transfer_funds");
    assert_eq!(transfer["active"], false);
    assert_eq!(transfer["token"], true);
    assert_eq!(
        transfer["parameters"]["required"],
        serde_json::json!(["amount", "to_account"])
    );
    assert!(!json.to_string().contains(bank.password));
}

#[tokio::test]
async fn exec_plays_a_verified_call_and_decodes_actions() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    let run = voxguard(
        &[
            "exec",
            &bank.base,
            "get_balance",
            "--from",
            "+15551234567",
            "--first",
            r#"verify_pin:{"pin":"4321"}"#,
        ],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains("Your balance is $150.00."),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("toggle_functions → get_balance on"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("note: rendered inactive"),
        "toggled on by the first step: {}",
        run.stdout
    );

    // A transfer decodes its connect action; --arg takes the declared type.
    let json = voxguard(
        &[
            "exec",
            &bank.base,
            "transfer_to_department",
            "--arg",
            "department=sales",
            "--json",
        ],
        &bank.env(),
        None,
    )
    .await
    .json();
    assert_eq!(json["ok"], true, "{json}");
    let action = &json["steps"][0]["actions"][0];
    assert_eq!(action["kind"], "connect", "{json}");
    assert!(
        action["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("connect → +1"),
        "{json}"
    );
}

#[tokio::test]
async fn exec_shows_refusals_and_exits_1() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    // Unverified: get_balance is refused by policy.
    let run = voxguard(
        &[
            "exec",
            &bank.base,
            "get_balance",
            "--from",
            "+15551234567",
            "--json",
        ],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 1, "{run:#?}");
    let json = run.json();
    let step = &json["steps"][0];
    assert_eq!(step["refused"], true);
    // A policy refusal answers 200, so that the AI hears the sentence; the reason says it.
    assert_eq!(step["refusal"]["reason"], "verification_required", "{json}");
    assert!(
        step["note"]
            .as_str()
            .is_some_and(|n| n.contains("inactive")),
        "{json}"
    );
    // Invalid arguments are the agent's validation refusal, shown as text too.
    let text = voxguard(
        &["exec", &bank.base, "verify_pin", "--arg", "pin=12"],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(text.code, 1, "{text:#?}");
    assert!(
        text.stdout.contains("refused: invalid_argument"),
        "{}",
        text.stdout
    );
    // A refused --first step stops the call before the function.
    let first = voxguard(
        &[
            "exec",
            &bank.base,
            "get_balance",
            "--from",
            "+15551234567",
            "--first",
            r#"verify_pin:{"pin":"12"}"#,
            "--json",
        ],
        &bank.env(),
        None,
    )
    .await;
    let json = first.json();
    assert_eq!(first.code, 1);
    assert_eq!(json["steps"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(
        json["steps"][0]["refusal"]["reason"], "invalid_argument",
        "{json}"
    );
}

#[tokio::test]
async fn failures_say_what_to_do_next() {
    let bank = RefAgent::start("bank_agent", &[]).await;
    let wrong = voxguard(
        &[
            "swml",
            &bank.base,
            "--user",
            "bank-operator",
            "--password",
            "wrong-password",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(wrong.code, 4, "{wrong:#?}");
    assert!(
        wrong.stderr.contains("401") && wrong.stderr.contains("refused these credentials"),
        "{}",
        wrong.stderr
    );
    let none = voxguard(&["tools", &bank.base], &[], None).await;
    assert_eq!(none.code, 4);
    assert!(none.stderr.contains("wants credentials"), "{}", none.stderr);
    let swaig = format!("{}swaig", bank.base);
    let not_swml = voxguard(&["swml", &swaig], &bank.env(), None).await;
    assert_eq!(not_swml.code, 4);
    assert!(
        not_swml.stderr.contains("SWML route"),
        "{}",
        not_swml.stderr
    );
    let unknown = voxguard(&["exec", &bank.base, "open_vault"], &bank.env(), None).await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("verify_pin"),
        "lists the functions: {}",
        unknown.stderr
    );
    let bad_json = voxguard(
        &["exec", &bank.base, "verify_pin", "--args", "{pin"],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(bad_json.code, 2);
    drop(bank);
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let gone = voxguard(&["swml", &format!("http://127.0.0.1:{port}/")], &[], None).await;
    assert_eq!(gone.code, 4);
    assert!(
        gone.stderr.contains("cannot reach") && gone.stderr.contains("Is the agent running"),
        "{}",
        gone.stderr
    );
    let bad_url = voxguard(&["swml", "localhost:3000"], &[], None).await;
    assert_eq!(bad_url.code, 2, "{bad_url:#?}");
}

#[tokio::test]
async fn keys_and_completions() {
    for kind in ["token", "audit", "records"] {
        let run = voxguard(&["keys", "generate", kind], &[], None).await;
        assert_eq!(run.code, 0);
        voxguard_guard::SecretKey::from_base64(run.stdout.trim())
            .expect("a key the runtime accepts");
    }
    let password = voxguard(&["keys", "generate", "password", "--env"], &[], None).await;
    let line = password.stdout.trim();
    let value = line
        .strip_prefix("SWML_BASIC_AUTH_PASSWORD=")
        .expect("env line");
    assert!(value.len() >= 32, "{line}");
    let json = voxguard(&["keys", "generate", "records", "--json"], &[], None)
        .await
        .json();
    assert_eq!(json["variable"], "VOXGUARD_RECORDS_KEY");
    assert!(json["value"].as_str().is_some_and(|v| !v.is_empty()));
    for shell in ["bash", "zsh", "fish"] {
        let run = voxguard(&["completions", shell], &[], None).await;
        assert_eq!(run.code, 0, "{run:#?}");
        assert!(
            run.stdout.contains("probe") && run.stdout.contains("simulate"),
            "{shell}"
        );
    }
    let help = voxguard(&["exec", "--help"], &[], None).await;
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("Exit codes:"));
}
