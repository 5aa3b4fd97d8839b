//! Retention over HTTP with a manual clock: a record past its kind's retention reads as gone at
//! once (before any purge), and the purge that runs at start deletes it and writes one
//! `records_purged` event with counts per kind only.
//!
//! It must not wait for wall-clock time: expiry is driven by a `ManualClock`, and the purge is
//! observed through the audit trail.

use std::sync::Arc;
use std::time::Duration;

use crate::util::{
    operator_request, post_summary, summary_body, token_for, Auth, RecordsKit, TestServer,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use voxguard::guard::ManualClock;
use voxguard::prelude::*;

const DAY: u64 = 24 * 60 * 60;

fn agent() -> Agent {
    Agent::builder("desk")
        .prompt_text("You help patients.")
        .tool(Tool::untyped(
            "identify",
            "Identify",
            json!({"type": "object", "properties": {}}),
            |_a, ctx: CallContext| async move {
                ctx.set_subject("pat_001").await?;
                Ok(FunctionResult::new("Identified."))
            },
        ))
        .build()
        .expect("agent")
}

async fn start(kit: &RecordsKit, clock: &ManualClock) -> TestServer {
    let sink = kit.sink();
    let config = kit.config().purge_every(Duration::from_secs(3600));
    let clock = clock.clone();
    TestServer::start_with(
        vec![agent()],
        |_| {},
        move |runtime| runtime.audit(sink).records(config).clock(Arc::new(clock)),
        reqwest::Client::builder(),
    )
    .await
}

async fn listed(server: &TestServer, token: &str) -> Vec<Value> {
    let reply = operator_request(
        server,
        Method::GET,
        "/records?subject=pat_001",
        Auth::Bearer(token),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn read(server: &TestServer, token: &str, id: &str) -> crate::util::OpReply {
    operator_request(
        server,
        Method::GET,
        &format!("/records/{id}?purpose=check"),
        Auth::Bearer(token),
        None,
    )
    .await
}

async fn purge_events(kit: &RecordsKit) -> Vec<Value> {
    kit.trail()
        .await
        .into_iter()
        .filter(|r| r.event.kind.as_str() == "records_purged")
        .map(|r| r.event.arguments.unwrap_or(Value::Null))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_record_is_gone_at_once_and_the_purge_at_start_deletes_it_with_counts() {
    let kit = RecordsKit::new().await;
    let token = kit.token("cleo.compliance", "compliance").await;
    let clock = ManualClock::new(1_800_000_000);
    let server = start(&kit, &clock).await;
    let swml = server.swml("/", "call-retention").await;
    let identify = token_for(&swml, "identify").expect("token");
    let (status, _) = server
        .swaig(
            "/",
            "identify",
            "call-retention",
            "+15557770001",
            json!({}),
            Some(&identify),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = post_summary(
        &server,
        &swml,
        summary_body(
            "call-retention",
            "+15557770001",
            "Asked about parking.",
            json!([{"role": "user", "content": "Where do I park?"}]),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let records = listed(&server, &token).await;
    assert_eq!(records.len(), 3, "{records:?}");
    let id = |kind: &str| {
        records
            .iter()
            .find(|r| r["kind"] == kind)
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("{kind}"))
            .to_string()
    };
    let (transcript, summary) = (id("transcript"), id("summary"));

    // 31 days later: transcripts (30 days) are past retention, summaries (365) are not.
    clock.advance(Duration::from_secs(31 * DAY));
    let reply = read(&server, &token, &transcript).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
    assert_eq!(reply.body["error"], "record_not_found");
    assert_eq!(read(&server, &token, &summary).await.status, StatusCode::OK);
    let export = operator_request(
        &server,
        Method::GET,
        "/records/subjects/pat_001?purpose=check",
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(export.body["records"].as_array().map(Vec::len), Some(2));
    server.stop().await;

    // A restart purges at start: one event with counts per kind, no content.
    let server = start(&kit, &clock).await;
    let mut events = Vec::new();
    for _ in 0..200 {
        events = purge_events(&kit).await;
        if events.iter().any(|e| e.get("transcript").is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let counted: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("transcript").is_some())
        .collect();
    assert_eq!(counted, [&json!({"transcript": 1})], "{events:?}");
    let kinds: Vec<Value> = listed(&server, &token)
        .await
        .iter()
        .map(|r| r["kind"].clone())
        .collect();
    assert!(!kinds.contains(&json!("transcript")), "{kinds:?}");
    assert_eq!(read(&server, &token, &summary).await.status, StatusCode::OK);
    server.stop().await;
}

/// A record past its retention reads as 404 "never stored, expired, or deleted"; the listing
/// should not keep offering it until the next purge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_agrees_with_reads_about_expired_records() {
    let kit = RecordsKit::new().await;
    let token = kit.token("cleo.compliance", "compliance").await;
    let clock = ManualClock::new(1_800_000_000);
    let server = start(&kit, &clock).await;
    let swml = server.swml("/", "call-expiry").await;
    let identify = token_for(&swml, "identify").expect("token");
    server
        .swaig(
            "/",
            "identify",
            "call-expiry",
            "+15557770001",
            json!({}),
            Some(&identify),
        )
        .await;
    post_summary(
        &server,
        &swml,
        summary_body("call-expiry", "+15557770001", "Parking.", json!([])),
    )
    .await;
    clock.advance(Duration::from_secs(31 * DAY));
    let kinds: Vec<Value> = listed(&server, &token)
        .await
        .iter()
        .map(|r| r["kind"].clone())
        .collect();
    assert!(!kinds.contains(&json!("transcript")), "{kinds:?}");
    server.stop().await;
}
