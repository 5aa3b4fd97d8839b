//! `/metrics` serves Prometheus text behind its own credentials, with bounded labels.

use crate::util::{token_for, TestServer, PASSWORD, USER};
use reqwest::StatusCode;
use serde_json::json;
use voxguard::guard::BasicCredentials;
use voxguard::prelude::*;

const METRICS_USER: &str = "prometheus";
const METRICS_PASSWORD: &str = "a-metrics-scrape-password-of-32+";

fn agent() -> Agent {
    Agent::builder("metered")
        .prompt_text("You answer.")
        .tool(Tool::untyped(
            "ping",
            "Ping",
            json!({"type": "object", "properties": {}}),
            |_a, _c| async { Ok(FunctionResult::new("pong")) },
        ))
        .build()
        .expect("agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tools_and_refusals_behind_their_own_credentials() {
    let server = TestServer::start(vec![agent()], |config| {
        config.metrics_credentials = Some(BasicCredentials::new(METRICS_USER, METRICS_PASSWORD));
    })
    .await;
    let swml = server.swml("/", "metrics-call").await;
    let token = token_for(&swml, "ping").expect("token");
    let (status, _) = server
        .swaig(
            "/",
            "ping",
            "metrics-call",
            "+15551234567",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .swaig("/", "ping", "metrics-call", "+15551234567", json!({}), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let unauthenticated = server
        .client
        .post(server.url("/swaig"))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
    // A random path must not become a label of its own.
    let random = server
        .client
        .get(server.url("/some/random/path-123"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("request");
    assert_eq!(random.status(), StatusCode::NOT_FOUND);

    // The platform's credentials do not open /metrics.
    let refused = server
        .client
        .get(server.url("/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let response = server
        .client
        .get(server.url("/metrics"))
        .basic_auth(METRICS_USER, Some(METRICS_PASSWORD))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    for needle in [
        r#"voxguard_http_requests_total{route="/",status="200"} 1"#,
        r#"voxguard_http_requests_total{route="/swaig",status="200"} 1"#,
        r#"voxguard_http_requests_total{route="/swaig",status="403"} 1"#,
        r#"voxguard_http_requests_total{route="/swaig",status="401"} 1"#,
        r#"voxguard_http_requests_total{route="other",status="404"} 1"#,
        r#"voxguard_tool_calls_total{function="ping",outcome="ok"} 1"#,
        r#"voxguard_refusals_total{reason="token_missing"} 1"#,
        r#"voxguard_refusals_total{reason="auth_required"} 1"#,
        "voxguard_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains("random"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_without_their_credentials() {
    let server = TestServer::start(vec![agent()], |_| {}).await;
    let response = server
        .client
        .get(server.url("/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
