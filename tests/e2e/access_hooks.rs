//! `on_request` / `on_response` hooks see every request — refused ones included — with
//! method, path (never the query string, which carries tokens), status, duration, client
//! address, request id and call id.

use std::sync::{Arc, Mutex};

use crate::util::{token_for, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use voxguard::prelude::*;
use voxguard::server::AccessRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_see_every_request_with_its_call_and_never_the_token() {
    let agent = Agent::builder("hooked")
        .prompt_text("You answer.")
        .tool(Tool::untyped(
            "ping",
            "Ping",
            json!({"type": "object", "properties": {}}),
            |_a, _c| async { Ok(FunctionResult::new("pong")) },
        ))
        .build()
        .expect("agent");
    let arrivals: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let records: Arc<Mutex<Vec<AccessRecord>>> = Arc::default();
    let (a, r) = (arrivals.clone(), records.clone());
    let server = TestServer::start_with(
        vec![agent],
        |_| {},
        move |runtime| {
            runtime
                .on_request(move |method, path, _client, request_id| {
                    a.lock()
                        .unwrap()
                        .push((method.into(), path.into(), request_id.into()));
                })
                .on_response(move |record| r.lock().unwrap().push(record.clone()))
        },
        reqwest::Client::builder(),
    )
    .await;

    let swml = server.swml("/", "hook-call").await;
    let token = token_for(&swml, "ping").expect("token");
    let (status, _) = server
        .swaig(
            "/",
            "ping",
            "hook-call",
            "+15551234567",
            json!({}),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = server
        .client
        .post(server.url("/swaig"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let unauthorized_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    // A card number in a path reaches the hooks masked, as it reaches the access log.
    let response = server
        .client
        .get(server.url("/cards/4111111111111111"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Percent-encoded too; a card masked before decoding stays masked; decoded control
    // characters never reach the hooks.
    let padding = "a".repeat(300);
    for path in [
        "/cards/%34111111111111111".to_string(),
        "/cards/4111%2D1111%2D1111%2D1111".to_string(),
        format!("/cards/4111111111111111%30/{padding}"),
        "/cards/%0Afake%1B/%34111111111111111".to_string(),
        format!("/{}/4111%2D1111%2D1111%2D1111", "a".repeat(232)),
    ] {
        let response = server
            .client
            .get(server.url(&path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }

    let records = records.lock().unwrap().clone();
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(records.len(), 9, "{records:?}");
    assert_eq!(arrivals.len(), 9, "{arrivals:?}");
    // Cut by the cap inside the card's encoded separators: the card is cut whole.
    assert_eq!(records[8].path, arrivals[8].1);
    assert!(
        !records[8].path.contains("1111%2D1111") && !records[8].path.contains("4111%2D1"),
        "{:?}",
        records[8]
    );
    for (record, arrival) in records[3..8].iter().zip(&arrivals[3..8]) {
        assert_eq!(record.path, arrival.1);
        assert!(
            record.path.contains("****1111") && !record.path.contains("411111"),
            "{record:?}"
        );
        assert!(!record.path.contains("%34") && !record.path.contains("4111%2D"));
        assert!(!record.path.chars().any(char::is_control), "{record:?}");
    }
    let records = records[..3].to_vec();
    let statuses: Vec<(&str, &str, u16)> = records
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("POST", "/", 200),
            ("POST", "/swaig", 200),
            ("POST", "/swaig", 401)
        ]
    );
    assert_eq!(records[0].call_id.as_deref(), Some("hook-call"));
    assert_eq!(records[1].call_id.as_deref(), Some("hook-call"));
    assert_eq!(records[2].call_id, None);
    assert_eq!(records[2].request_id, unauthorized_id);
    assert!(records.iter().all(|r| r.client.ip().is_loopback()));
    for (record, (method, path, request_id)) in records.iter().zip(&arrivals) {
        assert_eq!(
            (&record.method, &record.path, &record.request_id),
            (method, path, request_id)
        );
        assert!(
            !record.path.contains(&token) && !record.path.contains('?'),
            "{record:?}"
        );
    }
}
