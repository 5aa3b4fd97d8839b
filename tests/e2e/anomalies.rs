//! Anomaly rules run over the audit stream: a burst of refused tokens from one address and a
//! large transaction attempt each raise an anomaly — a callback, a metric — without delaying
//! or changing the answers.

use std::time::Duration;

use crate::util::{token_for, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use voxguard::guard::{Anomaly, AnomalyRules, BasicCredentials, BurstRule, LargeTransactionRule};
use voxguard::prelude::*;

const METRICS_USER: &str = "prometheus";
const METRICS_PASSWORD: &str = "a-metrics-scrape-password-of-32+";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_and_large_transactions_raise_anomalies() {
    let agent = Agent::builder("watched")
        .prompt_text("You move money.")
        .tool(Tool::untyped(
            "pay",
            "Pay",
            json!({"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}),
            |_a, _c| async { Ok(FunctionResult::new("Paid.")) },
        ))
        .build()
        .expect("agent");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Anomaly>();
    let server = TestServer::start_with(
        vec![agent],
        |config| {
            config.metrics_credentials = Some(BasicCredentials::new(METRICS_USER, METRICS_PASSWORD))
        },
        move |runtime| {
            let rules = AnomalyRules {
                failed_auth: Some(BurstRule::new(3, Duration::from_secs(60))),
                tool_spike: None,
                repeated_lockouts: None,
                large_transaction: Some(LargeTransactionRule {
                    function: Some("pay".into()),
                    field: "amount".into(),
                    threshold: 1000.0,
                }),
                after_hours: None,
            };
            runtime.anomaly_rules(rules).on_anomaly(move |anomaly| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(anomaly);
                }
            })
        },
        reqwest::Client::builder(),
    )
    .await;

    // Three refused tokens are within the rule; the fourth is a burst.
    for _ in 0..4 {
        let (status, _) = server
            .swaig(
                "/",
                "pay",
                "anomaly-call",
                "+15551234567",
                json!({"amount": 5}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let burst = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("anomaly")
        .expect("open");
    assert_eq!(burst.rule, "failed_auth_burst");
    assert_eq!(burst.subject, "127.0.0.1");

    // A small payment raises nothing; a large one does, and is still answered normally.
    let swml = server.swml("/", "anomaly-call").await;
    let token = token_for(&swml, "pay").expect("token");
    let (status, body) = server
        .swaig(
            "/",
            "pay",
            "anomaly-call",
            "+15551234567",
            json!({"amount": 20}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, body["response"].as_str()),
        (StatusCode::OK, Some("Paid."))
    );
    let (status, body) = server
        .swaig(
            "/",
            "pay",
            "anomaly-call",
            "+15551234567",
            json!({"amount": 2500}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (status, body["response"].as_str()),
        (StatusCode::OK, Some("Paid."))
    );
    let large = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("anomaly")
        .expect("open");
    assert_eq!(large.rule, "large_transaction");
    assert!(large.detail.contains("2500"), "{large:?}");
    assert!(rx.try_recv().is_err(), "the small payment raised nothing");

    let text = server
        .client
        .get(server.url("/metrics"))
        .basic_auth(METRICS_USER, Some(METRICS_PASSWORD))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        r#"voxguard_anomalies_total{rule="failed_auth_burst"} 1"#,
        r#"voxguard_anomalies_total{rule="large_transaction"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
