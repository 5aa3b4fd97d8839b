//! The security console's live security events (`/console/live` and its `text/event-stream`,
//! issue 16) over real HTTP: an auditor's open stream receives a refused SWAIG call (the
//! caller's number masked) and an emergency switch change as they happen, each with its audit
//! sequence number as the event id; `Last-Event-ID` resumes after it; the page lists the last
//! events without JavaScript and loads only the one external script; a role without
//! `read_audit` gets 403 (audited); signing out, or the session's idle end, ends an open
//! stream; and more than four streams of one operator get 429 with `Retry-After`.
//!
//! Streams are read with generous timeouts only so that a failure cannot hang the suite;
//! nothing asserts how fast an event arrives.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::console::{audited, browser, desk, desk_with, get, operator, post, switch, Desk, CSP};

/// The longest a test waits for something on a stream before failing.
const PATIENCE: Duration = Duration::from_secs(30);

const CALLER: &str = "+15550009876";

/// An open event stream and everything read from it so far.
struct Events {
    response: reqwest::Response,
    text: String,
    ended: bool,
}

/// One server-sent event: its `id:` (if any) and its `data:` as JSON.
#[derive(Debug)]
struct Event {
    id: Option<u64>,
    data: Value,
}

impl Events {
    async fn open(client: &reqwest::Client, desk: &Desk, last_event_id: Option<u64>) -> Self {
        let mut request = client.get(desk.server.url("/console/live/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("GET events");
        assert_eq!(response.status(), StatusCode::OK);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("content-type"), "text/event-stream");
        assert_eq!(header("content-security-policy"), CSP);
        assert_eq!(header("cache-control"), "no-store");
        assert_eq!(header("x-content-type-options"), "nosniff");
        Self {
            response,
            text: String::new(),
            ended: false,
        }
    }

    /// Read until `done` holds for the events read so far, the stream ends, or PATIENCE passes.
    async fn until(&mut self, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let events = self.events();
            if done(&events) || self.ended {
                return events;
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
                Err(_) => return events,
            }
        }
    }

    /// Whether the server ends the stream within PATIENCE (reading whatever comes first).
    async fn ends(&mut self) -> bool {
        self.until(|_| false).await;
        self.ended
    }

    fn events(&self) -> Vec<Event> {
        self.text
            .split("\n\n")
            .filter_map(|block| {
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        id = value.parse().ok();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(value).ok();
                    }
                }
                data.map(|data| Event { id, data })
            })
            .collect()
    }
}

fn is_refusal(event: &Event) -> bool {
    event.data["kind"] == "token_refused" && event.data["reason"].is_string()
}

fn is_toggle(event: &Event) -> bool {
    event.data["kind"] == "emergency_toggled" && event.data["outcome"] == "enabled"
}

/// A SWAIG call to the secure tool `wire` with a forged token, from CALLER.
async fn forged_call(desk: &Desk, call_id: &str) {
    refused_call(desk, call_id, Some("forged-token")).await;
}

/// A SWAIG call to `wire` with `token` (or none), from CALLER, refused for its token. Refusals
/// before a token is verified are written once per address, reason and minute (the rest are
/// counted into one record): a call with no token has a reason of its own.
async fn refused_call(desk: &Desk, call_id: &str, token: Option<&str>) {
    let (status, reply) = desk
        .server
        .swaig("/", "wire", call_id, CALLER, json!({}), token)
        .await;
    assert!(status.is_client_error(), "{status}: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_shows_a_refusal_and_an_emergency_toggle_with_the_caller_masked() {
    let desk = desk().await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let mut stream = Events::open(&auditor, &desk, None).await;

    forged_call(&desk, "call-live-1").await;
    let admin = operator(&desk, "ada", "admin").await;
    let done = switch(&admin, &desk, "on", "").await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);

    let events = stream
        .until(|events| events.iter().any(is_refusal) && events.iter().any(is_toggle))
        .await;
    let refusal = events
        .iter()
        .find(|e| is_refusal(e))
        .unwrap_or_else(|| panic!("the refusal on the stream: {}", stream.text));
    assert_eq!(refusal.data["caller"], "***9876", "{:?}", refusal.data);
    assert_eq!(refusal.data["function"], "wire");
    assert_eq!(refusal.data["outcome"], "refused");
    let toggle = events
        .iter()
        .find(|e| is_toggle(e))
        .unwrap_or_else(|| panic!("the toggle on the stream: {}", stream.text));
    assert_eq!(toggle.data["operator"], "ada");
    assert_eq!(toggle.data["role"], "admin");
    // Each audit event's id is its sequence number in the trail.
    let trail = desk.kit.trail().await;
    for event in [refusal, toggle] {
        let seq = event.id.expect("an id");
        let record = trail.iter().find(|r| r.seq == seq).expect("in the trail");
        assert_eq!(record.event.kind.as_str(), event.data["kind"]);
    }
    // The caller's number never in full; nothing but security events.
    assert!(!stream.text.contains("5550009876"), "{}", stream.text);
    assert!(!stream.text.contains("\"tool_called\""), "{}", stream.text);

    // The page lists them too, without JavaScript, and loads only the external script.
    let page = get(&auditor, &desk, "/console/live").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("token_refused"), "{}", page.body);
    assert!(page.body.contains("caller ***9876"), "{}", page.body);
    assert!(page.body.contains("emergency_toggled"));
    assert!(!page.body.contains("5550009876"));
    assert!(page.body.contains("<noscript>"));
    assert_eq!(page.body.matches("<script").count(), 1);
    assert!(page
        .body
        .contains("<script src=\"/console/static/live.js\" defer></script>"));
    assert!(!page.body.contains("style="), "no inline style");
    let script = get(&auditor, &desk, "/console/static/live.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(script.headers["content-security-policy"], CSP);
    assert!(script.body.contains("EventSource"));
    // Each view and each stream is audited once, by name.
    let trail = desk.kit.trail().await;
    let reads = |function: &str| {
        trail
            .iter()
            .filter(|r| {
                r.event.kind.as_str() == "record_accessed"
                    && r.event.function.as_deref() == Some(function)
                    && r.event.operator.as_deref() == Some("aud")
            })
            .count()
    };
    assert_eq!(reads("console_live_stream"), 1);
    assert_eq!(reads("console_live"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_after_the_last_event_seen() {
    let desk = desk().await;
    let auditor = operator(&desk, "aud", "auditor").await;
    forged_call(&desk, "call-live-2").await;
    let seq = desk
        .kit
        .trail()
        .await
        .iter()
        .find(|r| r.event.kind.as_str() == "token_refused")
        .expect("the refusal is on record")
        .seq;
    // A browser that saw everything up to just before the refusal gets it now.
    let mut resumed = Events::open(&auditor, &desk, Some(seq - 1)).await;
    let events = resumed.until(|events| events.iter().any(is_refusal)).await;
    let first = events
        .iter()
        .find(|e| e.id.is_some())
        .unwrap_or_else(|| panic!("a replayed event: {}", resumed.text));
    assert_eq!(first.id, Some(seq));
    assert_eq!(first.data["caller"], "***9876");
    // One that saw the refusal does not get it again.
    let mut after = Events::open(&auditor, &desk, Some(seq)).await;
    // (A forged token again within the minute would only be counted: no token at all.)
    refused_call(&desk, "call-live-3", None).await;
    let events = after.until(|events| events.iter().any(is_refusal)).await;
    let ids: Vec<u64> = events.iter().filter_map(|e| e.id).collect();
    assert!(!ids.is_empty(), "the new refusal: {}", after.text);
    assert!(ids.iter().all(|&id| id > seq), "{ids:?}");
}

#[tokio::test]
async fn a_role_without_read_audit_gets_403_audited() {
    let desk = desk().await;
    for (name, role) in [
        ("sup", "supervisor"),
        ("ada", "admin"),
        ("com", "compliance"),
    ] {
        let client = operator(&desk, name, role).await;
        let overview = get(&client, &desk, "/console/overview").await;
        assert!(
            !overview.body.contains("/console/live"),
            "no link for {role}"
        );
        for path in ["/console/live", "/console/live/events"] {
            let denied = get(&client, &desk, path).await;
            assert_eq!(denied.status, StatusCode::FORBIDDEN, "{role} {path}");
            assert!(denied.body.contains("read_audit"), "{}", denied.body);
            assert!(!denied.body.contains("data:"));
            let denials = audited(&desk, &denied, "access_denied").await;
            assert!(
                denials
                    .iter()
                    .any(|e| e.reason.as_deref() == Some("access_denied")
                        && e.operator.as_deref() == Some(name)),
                "{denials:?}"
            );
        }
    }
    let auditor = operator(&desk, "aud", "auditor").await;
    assert!(get(&auditor, &desk, "/console/overview")
        .await
        .body
        .contains("/console/live"));
    // Not signed in: sent to the sign-in page, no stream.
    let anonymous = get(&browser(), &desk, "/console/live/events").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.location(), "/console/login");
    assert_eq!(
        post(&auditor, &desk, "/console/live/events", &[])
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_an_open_stream() {
    let desk = desk().await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let mut stream = Events::open(&auditor, &desk, None).await;
    let overview = get(&auditor, &desk, "/console/overview").await;
    let out = post(
        &auditor,
        &desk,
        "/console/logout",
        &[("csrf", &overview.csrf())],
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(stream.ends().await, "the stream ended: {}", stream.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_its_session_and_does_not_keep_it_alive() {
    let desk = desk().await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let mut stream = Events::open(&auditor, &desk, None).await;
    // Ten minutes on the runtime's clock (the idle timeout is 15): the session is live, and an
    // event delivered now proves the stream checked it after the clock moved.
    desk.clock.advance(Duration::from_secs(10 * 60));
    forged_call(&desk, "call-live-idle").await;
    let events = stream.until(|events| events.iter().any(is_refusal)).await;
    assert!(events.iter().any(is_refusal), "{}", stream.text);
    // Ten more, with only the stream open: had its polls renewed the session, it would run on.
    desk.clock.advance(Duration::from_secs(10 * 60));
    assert!(stream.ends().await, "the stream ended: {}", stream.text);
    let after = get(&auditor, &desk, "/console/overview").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "the session is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_operator_or_taking_read_audit_away_ends_their_stream() {
    let desk = desk().await;
    let removed = operator(&desk, "aud", "auditor").await;
    let demoted = operator(&desk, "dee", "auditor").await;
    let mut removed_stream = Events::open(&removed, &desk, None).await;
    let mut demoted_stream = Events::open(&demoted, &desk, None).await;
    let cli = voxguard::Actor::cli("test");
    desk.kit
        .records
        .remove_operator(&cli, "aud")
        .await
        .expect("removed");
    desk.kit
        .records
        .set_operator_role(&cli, "dee", "supervisor")
        .await
        .expect("demoted");
    assert!(removed_stream.ends().await, "{}", removed_stream.text);
    assert!(demoted_stream.ends().await, "{}", demoted_stream.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_four_streams_of_one_operator_get_429_with_retry_after() {
    let desk = desk().await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(Events::open(&auditor, &desk, None).await);
    }
    let refused = get(&auditor, &desk, "/console/live/events").await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.headers["retry-after"], "10");
    assert!(refused.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        refused.body.contains("Too many live streams"),
        "{}",
        refused.body
    );
    assert_eq!(refused.headers["content-security-policy"], CSP);
    // The bound is per operator: another auditor still gets one.
    let other = operator(&desk, "eve", "auditor").await;
    let _theirs = Events::open(&other, &desk, None).await;
    assert_eq!(open.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_when_the_server_shuts_down() {
    // A request timeout far longer than the test's patience: a stream that held the graceful
    // shutdown open would outlast it.
    let desk = desk_with(|config| config.request_timeout = Duration::from_secs(300)).await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let mut stream = Events::open(&auditor, &desk, None).await;
    let server = std::sync::Arc::try_unwrap(desk.server)
        .ok()
        .expect("one owner");
    let stopped = tokio::spawn(server.stop());
    assert!(stream.ends().await, "the stream ended: {}", stream.text);
    tokio::time::timeout(PATIENCE, stopped)
        .await
        .expect("the server stopped")
        .expect("stop task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anomaly_found_while_the_stream_is_open_appears_on_it() {
    let desk = desk().await;
    let auditor = operator(&desk, "aud", "auditor").await;
    let mut stream = Events::open(&auditor, &desk, None).await;
    // More than ten refused tokens from one address within a minute: a failed-auth burst.
    for i in 0..12 {
        forged_call(&desk, &format!("call-burst-{i}")).await;
    }
    let events = stream
        .until(|events| events.iter().any(|e| e.data["kind"] == "anomaly"))
        .await;
    let anomaly = events
        .iter()
        .find(|e| e.data["kind"] == "anomaly")
        .unwrap_or_else(|| panic!("an anomaly on the stream: {}", stream.text));
    assert_eq!(
        anomaly.data["reason"], "failed_auth_burst",
        "{:?}",
        anomaly.data
    );
    assert_eq!(anomaly.id, None, "an anomaly is not an audit record");
    assert!(!stream.text.contains("5550009876"));
}
