//! `voxguard probe` end to end: the reference agents (bank, clinic, shop) produce no finding;
//! deliberately weak agents ([`super::weak`]) are flagged by id with the exit code of the
//! worst severity; without `--allow-calls` no request that would really run a function is
//! sent; `--json` and `--sarif` carry the findings; and TLS is judged with and without the
//! test CA.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::weak::{self, Weak, WEAK_PASSWORD};
use super::{voxguard, RefAgent, Run};

/// Reference agents close slow request heads after 1 s; the probe waits 3 s.
const FAST_HEADERS: (&str, &str) = ("VOXGUARD_HEADER_TIMEOUT_SECS", "1");

/// `voxguard probe BASE --json --slow-secs 0 EXTRA…` with `env`: the probe without its
/// slow-client check, which the tests that want it run with their own bound.
async fn quick_probe(base: &str, env: &[(&str, &str)], extra: &[&str]) -> Run {
    let mut args = vec!["probe", base, "--json", "--slow-secs", "0"];
    args.extend_from_slice(extra);
    voxguard(&args, env, None).await
}

fn ids(run: &Run) -> Vec<String> {
    run.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn finding<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["findings"]
        .as_array()
        .and_then(|all| all.iter().find(|f| f["id"] == id))
        .unwrap_or_else(|| panic!("no {id} finding in {json:#}"))
}

async fn reference_agent_is_clean(name: &str) {
    let agent = RefAgent::start(name, &[FAST_HEADERS]).await;
    let run = voxguard(
        &["probe", &agent.base, "--json", "--slow-secs", "3"],
        &agent.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{name}: {run:#?}");
    let json = run.json();
    assert_eq!(json["findings"], Value::Array(vec![]), "{name}: {json:#}");
    assert!(json["requests"].as_u64().unwrap_or(0) > 40, "{json:#}");
    let notes = json["notes"].to_string();
    assert!(notes.contains("slow clients: all"), "{notes}");
    assert!(notes.contains("--allow-calls"), "{notes}");
    assert!(
        !run.stdout.contains(agent.password),
        "the password is masked"
    );
}

#[tokio::test]
async fn probe_finds_nothing_on_the_bank_agent() {
    reference_agent_is_clean("bank_agent").await;
}

#[tokio::test]
async fn probe_finds_nothing_on_the_clinic_agent() {
    reference_agent_is_clean("clinic_agent").await;
}

#[tokio::test]
async fn probe_finds_nothing_on_the_shop_agent() {
    reference_agent_is_clean("shop_agent").await;
}

#[tokio::test]
async fn an_agent_without_token_check_or_validation_is_critical_and_nothing_real_runs() {
    let agent = weak::start(Weak {
        token_check: false,
        validation: false,
        ..Weak::strong()
    })
    .await;
    let run = quick_probe(&agent.base, &agent.env(), &[]).await;
    assert_eq!(run.code, 14, "{run:#?}");
    let found = ids(&run);
    for id in [
        "token.missing",
        "token.tampered",
        "token.cross_call",
        "token.cross_function",
        "validation.type_confusion",
        "validation.missing_required",
    ] {
        assert!(
            found.contains(&id.to_string()),
            "{id} missing from {found:?}"
        );
    }
    // Boundary values (a lax handler can act on them) only with --allow-calls.
    assert!(!found.contains(&"validation.out_of_range".to_string()));
    let json = run.json();
    assert_eq!(finding(&json, "token.missing")["severity"], "critical");
    // Each case is reported, not one per id.
    let type_cases = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["id"] == "validation.type_confusion")
        .count();
    assert!(type_cases >= 3, "{json:#}");
    // Handlers ran (the agent is weak), but never with a valid token and valid arguments.
    assert!(agent.runs.load(Ordering::SeqCst) > 0);
    assert_eq!(agent.real_runs.load(Ordering::SeqCst), 0, "{json:#}");
    assert!(
        !run.stdout.contains(WEAK_PASSWORD),
        "the password is masked"
    );
    assert!(
        !run.stdout.contains("weak-token-secret"),
        "tokens are masked"
    );

    // --allow-calls is what sends real calls (and checks undeclared arguments).
    let allowed = quick_probe(&agent.base, &agent.env(), &["--allow-calls"]).await;
    assert_eq!(allowed.code, 14, "{allowed:#?}");
    assert!(agent.real_runs.load(Ordering::SeqCst) > 0);
    assert!(ids(&allowed).contains(&"validation.undeclared".to_string()));
    assert_eq!(
        finding(&allowed.json(), "validation.out_of_range")["severity"],
        "high"
    );
}

#[tokio::test]
async fn an_agent_that_validates_before_the_token_is_medium() {
    let agent = weak::start(Weak {
        token_check: false,
        ..Weak::strong()
    })
    .await;
    let run = voxguard(
        &["probe", &agent.base, "--slow-secs", "0"],
        &agent.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 12, "{run:#?}");
    assert!(run.stdout.contains("MEDIUM ("), "{}", run.stdout);
    assert!(
        run.stdout.contains("[token.not_checked_first]"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("[token.missing]"), "{}", run.stdout);
    assert!(!run.stdout.contains(WEAK_PASSWORD));
    assert_eq!(agent.real_runs.load(Ordering::SeqCst), 0);
    assert_eq!(agent.runs.load(Ordering::SeqCst), 0, "nothing ran");
}

#[tokio::test]
async fn a_sloppy_agent_is_flagged_in_sarif() {
    let agent = weak::start(Weak {
        body_limit: false,
        headers: false,
        generic_errors: false,
        refusal_403: false,
        webhook_auth: false,
        ..Weak::strong()
    })
    .await;
    let run = voxguard(
        &[
            "probe",
            &agent.base,
            "--sarif",
            "--slow-secs",
            "1",
            "--slow-connections",
            "4",
        ],
        &agent.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 14, "{run:#?}");
    let sarif = run.json();
    assert_eq!(sarif["version"], "2.1.0");
    let driver = &sarif["runs"][0]["tool"]["driver"];
    assert_eq!(driver["name"], "voxguard probe");
    assert!(driver["version"].is_string());
    let rules: Vec<&str> = driver["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    let level = |id: &str| {
        results
            .iter()
            .find(|r| r["ruleId"] == id)
            .unwrap_or_else(|| panic!("no {id} result in {sarif:#}"))["level"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for result in results {
        assert!(rules.contains(&result["ruleId"].as_str().unwrap_or_default()));
        assert!(result["message"]["text"].is_string());
    }
    // No webhook authentication: the token refusal (200) is a 2xx without credentials.
    assert_eq!(level("auth.missing_credentials"), "error");
    assert_eq!(level("limits.body"), "warning");
    assert_eq!(level("errors.leak"), "warning");
    assert_eq!(level("headers.cache_control"), "warning");
    assert_eq!(level("headers.nosniff"), "note");
    assert_eq!(level("token.refusal_status"), "note");
    // Held slow heads without starvation: low (common behind proxies).
    assert_eq!(level("slow.headers"), "note");
    assert!(!run.stdout.contains(WEAK_PASSWORD));
    assert_eq!(agent.real_runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_strong_test_agent_is_clean_and_json_says_so() {
    let agent = weak::start(Weak::strong()).await;
    let run = quick_probe(&agent.base, &agent.env(), &[]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let json = run.json();
    assert_eq!(json["summary"]["worst"], Value::Null);
    assert_eq!(json["summary"]["critical"], 0);
    // Wrong credentials for the SWML: exit 4 with advice, not a probe result.
    let refused = voxguard(
        &[
            "probe",
            &agent.base,
            "--user",
            "weak-user",
            "--password",
            "nope",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(refused.code, 4, "{refused:#?}");
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
}

#[tokio::test]
async fn tls_is_verified_with_the_test_ca_and_flagged_without() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("self-signed cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write cert");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key");
    let cert = cert_path.to_string_lossy().into_owned();
    let key = key_path.to_string_lossy().into_owned();
    let bank = RefAgent::start(
        "bank_agent",
        &[
            ("SWML_SSL_ENABLED", "true"),
            ("SWML_SSL_CERT_PATH", &cert),
            ("SWML_SSL_KEY_PATH", &key),
            FAST_HEADERS,
        ],
    )
    .await;
    assert!(bank.base.starts_with("https://"), "{}", bank.base);

    let trusted = voxguard(
        &[
            "probe",
            &bank.base,
            "--ca-cert",
            &cert,
            "--json",
            "--slow-secs",
            "3",
            "--slow-connections",
            "8",
        ],
        &bank.env(),
        None,
    )
    .await;
    assert_eq!(trusted.code, 0, "{trusted:#?}");
    let json = trusted.json();
    assert_eq!(json["findings"], Value::Array(vec![]), "{json:#}");
    assert!(json["notes"].to_string().contains("TLS 1.3"), "{json:#}");

    let untrusted = voxguard(&["probe", &bank.base, "--json"], &bank.env(), None).await;
    assert_eq!(untrusted.code, 13, "{untrusted:#?}");
    let json = untrusted.json();
    assert_eq!(finding(&json, "tls.certificate")["severity"], "high");
}

#[tokio::test]
async fn a_lax_agent_has_no_side_effect_without_allow_calls() {
    let agent = weak::start_lax().await;
    let run = quick_probe(&agent.base, &agent.env(), &[]).await;
    assert_eq!(
        agent.side_effects.load(Ordering::SeqCst),
        0,
        "the default probe moved money or closed an account: {run:#?}"
    );
    assert!(run.code >= 12, "{run:#?}");
    let found = ids(&run);
    for id in ["limits.body", "token.not_checked_first"] {
        assert!(found.contains(&id.to_string()), "{id} missing: {run:#?}");
    }
    // The fixture does count side effects: --allow-calls causes them.
    let allowed = quick_probe(&agent.base, &agent.env(), &["--allow-calls"]).await;
    assert_eq!(allowed.code, 14, "{allowed:#?}");
    assert!(agent.side_effects.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn unreachable_webhooks_exit_4_and_suggest_same_origin() {
    let agent = weak::start(Weak {
        webhook_host: Some("127.0.0.1:9"),
        ..Weak::strong()
    })
    .await;
    let run = voxguard(
        &["probe", &agent.base, "--slow-secs", "0"],
        &agent.env(),
        None,
    )
    .await;
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("--same-origin"), "{run:#?}");
    assert!(!run.stdout.contains("\nNo findings.\n"), "{}", run.stdout);
    let json = quick_probe(&agent.base, &agent.env(), &[]).await;
    assert_eq!(json.code, 4, "{json:#?}");
    assert_eq!(json.json()["webhooks"]["unreachable"], true);
    let same = voxguard(
        &[
            "probe",
            &agent.base,
            "--same-origin",
            "--json",
            "--slow-secs",
            "0",
        ],
        &agent.env(),
        None,
    )
    .await;
    assert_eq!(same.code, 0, "{same:#?}");
}

#[tokio::test]
async fn a_token_in_the_webhook_path_is_never_sent_by_token_less_checks_nor_shown() {
    let agent = weak::start(Weak {
        path_token: true,
        ..Weak::strong()
    })
    .await;
    let run = quick_probe(&agent.base, &agent.env(), &[]).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(agent.path_leaks.load(Ordering::SeqCst), 0, "{run:#?}");
    assert!(!run.stdout.contains("weak-token-secret"), "{}", run.stdout);
    assert!(run.stdout.contains("path may carry"), "{}", run.stdout);
}

#[tokio::test]
async fn a_huge_swml_is_probed_in_bounded_time() {
    use axum::routing::post;
    // About 3.8 MiB: 24,000 functions, each with its own token (every token is a secret).
    let functions: Vec<Value> = (0..24_000)
        .map(|i| {
            serde_json::json!({
                "function": format!("f{i}"),
                "description": "d",
                "parameters": {"type": "object", "properties": {}},
                "web_hook_url": format!("http://127.0.0.1:9/swaig?__token=tok-{i:08}-abcdefgh"),
            })
        })
        .collect();
    let document = serde_json::json!({"version": "1.0.0", "sections": {"main": [
        {"ai": {"prompt": {"text": "big"}, "SWAIG": {"functions": functions}}},
    ]}})
    .to_string();
    assert!(document.len() < 4 * 1024 * 1024, "{}", document.len());
    let router = axum::Router::new().route(
        "/",
        post(move || {
            let document = document.clone();
            async move { document }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let run = voxguard(
        &[
            "probe",
            &base,
            "--json",
            "--slow-secs",
            "0",
            "--timeout",
            "2",
        ],
        &[],
        None,
    )
    .await;
    task.abort();
    // It took minutes when secrets were collected over every function with a sort per insert
    // (the time itself is not asserted: tests run on loaded machines).
    assert!(
        run.json()["notes"]
            .to_string()
            .contains("only the first 32 functions"),
        "{run:#?}"
    );
}

#[tokio::test]
async fn the_tls_handshake_honours_timeout() {
    // A port that accepts connections and never answers the TLS ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("https://{}/", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let run = voxguard(
        &[
            "probe",
            &base,
            "--json",
            "--timeout",
            "1",
            "--slow-secs",
            "0",
        ],
        &[],
        None,
    )
    .await;
    task.abort();
    assert_eq!(run.code, 13, "{run:#?}");
    let json = run.json();
    let protocol = finding(&json, "tls.protocol");
    assert!(
        protocol["evidence"].to_string().contains("within 1 s"),
        "{json:#}"
    );
}
