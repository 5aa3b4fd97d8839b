//! The agent-facing commands against a hostile agent served by the test (axum on port 0): a
//! document and answers that echo secrets in every place an agent controls, carry terminal
//! escape sequences, and name another origin for a webhook. Nothing secret and no escape
//! sequence may reach the output, and the user's credentials must not go to another host.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::voxguard;

/// Every secret the hostile agent plants.
const PLANTED: [&str; 9] = [
    "HOOKSECRET",
    "HOOKTOKEN",
    "MDTOKEN",
    "DMSECRET",
    "RESPSECRET",
    "RESPTOK",
    "CONNSECRET",
    "CONNTOK",
    "USERPASSWORD-0123456789",
];

/// Serve `router` on 127.0.0.1:0; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/")
}

/// Start the hostile agent; its `elsewhere` webhook points at a second server that records
/// the Authorization headers it receives.
async fn hostile() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let elsewhere = serve(Router::new().route(
        "/swaig",
        post(move |headers: HeaderMap| {
            let recorder = recorder.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                recorder.lock().expect("lock").push(auth);
                Json(json!({"response": "elsewhere"}))
            }
        }),
    ))
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    let hook = format!(
        "{}swaig",
        base.replacen("http://", "http://u:HOOKSECRET@", 1)
    );
    let document = json!({"version": "1.0.0", "sections": {"main": [{"ai": {
        "prompt": {"text": "hi"},
        "SWAIG": {"functions": [
            {"function": "f", "description": "echoes", "web_hook_url": format!("{hook}?__token=HOOKTOKEN"),
             "meta_data_token": "MDTOKEN", "parameters": {"type": "object", "properties": {}}},
            {"function": "refuse", "description": "refuses \u{1b}[2J", "web_hook_url": format!("{hook}?__token=HOOKTOKEN")},
            {"function": "elsewhere", "description": "other origin", "web_hook_url": format!("{elsewhere}swaig")},
            {"function": "html", "description": "a proxy's error page", "web_hook_url": format!("{base}html")},
            {"function": "dm", "description": "data map", "data_map": {"webhooks": [
                {"url": "https://api.example/x", "headers": {"Authorization": "Bearer DMSECRET"}}]}},
            {"function": "evil\u{1b}]0;OWNED\u{7}", "description": "escape in a name", "web_hook_url": format!("{hook}")}
        ]}
    }}]}});
    let router = Router::new()
        .route("/", post(move || {
            let document = document.clone();
            async move { Json(document) }
        }))
                .route(
            "/html",
            post(|| async { axum::response::Html("<html>502 Bad Gateway</html>") }),
        )
.route("/err", post(|| async {
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "boom\u{1b}[2J HOOKSECRET"})))
        }))
        .route("/swaig", post(|headers: HeaderMap, Json(body): Json<Value>| async move {
            let authorization = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            let echo = format!(
                "echo HOOKSECRET USERPASSWORD-0123456789 http://x:RESPSECRET@h/?__token=RESPTOK \u{1b}]0;TITLE\u{7} \u{9b}2J \u{202e} Authorization: {authorization} {} {}",
                body["meta_data_token"],
                "r".repeat(100_000)
            );
            if body["function"] == "refuse" {
                return (axum::http::StatusCode::FORBIDDEN, Json(json!({
                    "error": "bad\u{1b}[2J HOOKTOKEN", "response": format!("no {echo}")})));
            }
            (axum::http::StatusCode::OK, Json(json!({"response": echo, "action": [
                {"SWML": {"version": "1.0.0", "sections": {"main": [
                    {"connect": {"to": "https://u:CONNSECRET@h/x?__token=CONNTOK"}}]}}, "transfer": "true"},
                {"say": "http://u:RESPSECRET@h/ \u{1b}[31m"}
            ]})))
        }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, seen)
}

/// Assert that `text` holds no planted secret and no escape character.
fn clean(what: &str, text: &str) {
    for secret in PLANTED {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{what} carries an escape:\n{text:?}"
    );
}

#[tokio::test]
async fn a_hostile_agent_cannot_make_the_probe_print_secrets_escapes_or_floods() {
    use base64::Engine as _;
    let (base, _) = hostile().await;
    let creds = [
        ("SWML_BASIC_AUTH_USER", "user"),
        ("SWML_BASIC_AUTH_PASSWORD", "USERPASSWORD-0123456789"),
    ];
    let basic = [
        base64::engine::general_purpose::STANDARD.encode("user:USERPASSWORD-0123456789"),
        base64::engine::general_purpose::STANDARD.encode("u:HOOKSECRET"),
    ];
    for format in [None, Some("--json"), Some("--sarif")] {
        let mut args = vec!["probe", base.as_str(), "--slow-secs", "0"];
        args.extend(format);
        let run = voxguard(&args, &creds, None).await;
        assert!(run.code >= 11 || run.code == 0, "{args:?}: {run:#?}");
        for text in [&run.stdout, &run.stderr] {
            clean(&format!("{args:?}"), text);
            assert!(
                !text.contains('\u{9b}') && !text.contains('\u{202e}'),
                "{args:?}: C1 or bidi in {text:?}"
            );
            for value in &basic {
                assert!(!text.contains(value.as_str()), "{args:?} shows {value}");
            }
            // A 100 KB answer is bounded in every line of evidence.
            assert!(!text.contains(&"r".repeat(2_000)), "{args:?}: unbounded");
        }
    }
}

#[tokio::test]
async fn a_hostile_agent_cannot_make_the_cli_print_secrets_or_escapes() {
    let (base, _) = hostile().await;
    let creds = [
        ("SWML_BASIC_AUTH_USER", "user"),
        ("SWML_BASIC_AUTH_PASSWORD", "USERPASSWORD-0123456789"),
    ];
    for args in [
        vec!["swml", base.as_str()],
        vec!["swml", base.as_str(), "--json"],
        vec!["tools", base.as_str()],
        vec!["tools", base.as_str(), "--json"],
        vec!["exec", base.as_str(), "f"],
        vec!["exec", base.as_str(), "f", "--json"],
        vec!["exec", base.as_str(), "refuse"],
        vec!["exec", base.as_str(), "refuse", "--json"],
        vec!["exec", base.as_str(), "nope"],
    ] {
        let run = voxguard(&args, &creds, None).await;
        assert!([0, 1, 2].contains(&run.code), "{args:?}: {run:#?}");
        clean(&format!("{args:?} stdout"), &run.stdout);
        clean(&format!("{args:?} stderr"), &run.stderr);
    }
    let exec = voxguard(&["exec", &base, "f", "--json"], &creds, None)
        .await
        .json();
    assert_eq!(exec["steps"][0]["actions"][0]["kind"], "connect", "{exec}");
    let err = voxguard(&["swml", &format!("{base}err")], &creds, None).await;
    assert_eq!(err.code, 4);
    clean("error stderr", &err.stderr);
    // A data_map function has nothing to call: a usage error.
    let dm = voxguard(&["exec", &base, "dm"], &creds, None).await;
    assert_eq!(dm.code, 2, "{dm:#?}");
}

#[tokio::test]
async fn the_users_credentials_never_go_to_another_origin() {
    let (base, seen) = hostile().await;
    let creds = [
        ("SWML_BASIC_AUTH_USER", "user"),
        ("SWML_BASIC_AUTH_PASSWORD", "USERPASSWORD-0123456789"),
    ];
    let run = voxguard(&["exec", &base, "elsewhere"], &creds, None).await;
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains("your credentials were not sent"),
        "{}",
        run.stdout
    );
    assert_eq!(*seen.lock().expect("lock"), vec!["none".to_string()]);
}

#[tokio::test]
async fn a_page_that_is_not_a_swaig_answer_gets_a_note() {
    let (base, _) = hostile().await;
    let run = voxguard(&["exec", &base, "html", "--json"], &[], None).await;
    assert_eq!(run.code, 0, "{run:#?}");
    let notes = run.json()["steps"][0]["notes"].to_string();
    assert!(notes.contains("not a SWAIG answer"), "{notes}");
}
