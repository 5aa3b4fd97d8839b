//! The runtime writes a tamper-evident audit event for every refused login, token refusal,
//! policy refusal, tool call (with its outcome), verification and emergency toggle — caller
//! masked, arguments redacted — before answering; and refuses to answer when it cannot.

use std::sync::Arc;

use crate::util::{token_for, TestServer, PASSWORD, USER};
use reqwest::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use voxguard::guard::{
    AuditEvent, AuditKey, AuditKind, AuditRecord, BasicCredentials, Outcome, PinVault,
};
use voxguard::prelude::*;
use voxguard::store::{AuditSink, Durability, SqliteAuditLog, StoreError};

const CALLER: &str = "+15551234567";
const ADMIN_USER: &str = "operator";
const ADMIN_PASSWORD: &str = "an-admin-password-of-32-chars-ok";

#[derive(Deserialize, JsonSchema)]
struct Pin {
    /// The PIN.
    #[schemars(regex(pattern = r"^[0-9]{4,8}$"))]
    pin: String,
}

#[derive(Deserialize, JsonSchema)]
struct Note {
    /// Free text.
    text: String,
    /// A card number the caller read out (never to be stored in clear).
    card: Option<String>,
}

fn agent() -> Agent {
    let vault = PinVault::with_params(8, 1, 1).expect("params");
    let hash = Arc::new(vault.hash("4321").expect("hash"));
    Agent::builder("audited")
        .prompt_text("You help callers.")
        .verification(VerificationPolicy::new().max_attempts(3))
        .tool(Tool::typed(
            "verify_pin",
            "Verify the PIN",
            move |args: Pin, ctx: CallContext| {
                let hash = hash.clone();
                async move {
                    Ok(ctx
                        .verify_secret("cust_1", &args.pin, Some(&hash))
                        .await?
                        .into_result())
                }
            },
        ))
        .tool(
            Tool::typed(
                "note",
                "Take a note",
                |args: Note, _ctx: CallContext| async move {
                    let card = if args.card.is_some() {
                        " and a card"
                    } else {
                        ""
                    };
                    Ok(FunctionResult::new(format!(
                        "Noted {} characters{card}.",
                        args.text.len()
                    )))
                },
            )
            .sensitive_args(["text"]),
        )
        .tool(
            Tool::untyped(
                "balance",
                "Balance",
                json!({"type": "object", "properties": {}}),
                |_a, _c| async { Ok(FunctionResult::new("Your balance is $150.00.")) },
            )
            .requires("pin_verified"),
        )
        .tool(Tool::untyped(
            "broken",
            "Fails",
            json!({"type": "object", "properties": {}}),
            |_a, _c| async { Err(ToolError::internal("database password=hunter2 unreachable")) },
        ))
        .build()
        .expect("agent builds")
}

async fn call(
    server: &TestServer,
    swml: &Value,
    function: &str,
    args: Value,
) -> (StatusCode, Value) {
    let token = token_for(swml, function).expect("token");
    server
        .swaig("/", function, "call-audit", CALLER, args, Some(&token))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_on_record_redacted_and_the_chain_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = AuditKey::from_bytes(vec![7u8; 32]).expect("key");
    let key_copy = AuditKey::from_bytes(vec![7u8; 32]).ok();
    let log = Arc::new(
        SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, Some(key), 5)
            .await
            .expect("audit log"),
    );
    let sink: Arc<dyn AuditSink> = log.clone();
    let server = TestServer::start_with(
        vec![agent()],
        |config| config.admin_credentials = Some(BasicCredentials::new(ADMIN_USER, ADMIN_PASSWORD)),
        move |runtime| runtime.audit(sink),
        reqwest::Client::builder(),
    )
    .await;

    // A refused login.
    let response = server
        .client
        .post(server.url("/swaig"))
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // A token refusal.
    let (status, _) = server
        .swaig(
            "/",
            "note",
            "call-audit",
            CALLER,
            json!({"text": "hi"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let swml = server.swml("/", "call-audit").await;
    // A policy refusal, a wrong and a right PIN, a tool call with secrets in its arguments, a failure.
    assert_eq!(
        call(&server, &swml, "balance", json!({})).await.1["error"],
        "verification_required"
    );
    call(&server, &swml, "verify_pin", json!({"pin": "9999"})).await;
    call(&server, &swml, "verify_pin", json!({"pin": "4321"})).await;
    let (status, body) = call(
        &server,
        &swml,
        "note",
        json!({"text": "my secret note", "card": "4111 1111 1111 1111"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        call(&server, &swml, "broken", json!({})).await.1["error"],
        "tool_failed"
    );
    // An emergency toggle.
    let response = server
        .client
        .post(server.url("/admin/emergency"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .expect("toggle");
    assert_eq!(response.status(), StatusCode::OK);

    let records = log.records(1).await.expect("records");
    let kinds: Vec<(&str, Option<&str>, Option<&str>)> = records
        .iter()
        .map(|r| {
            (
                r.event.kind.as_str(),
                r.event.outcome.map(|o| o.as_str()),
                r.event.reason.as_deref(),
            )
        })
        .collect();
    for expected in [
        ("auth_failed", Some("refused"), Some("auth_required")),
        ("token_refused", Some("refused"), Some("token_missing")),
        (
            "policy_refused",
            Some("refused"),
            Some("verification_required"),
        ),
        ("verification_failed", Some("verification_failed"), None),
        (
            "verification_succeeded",
            Some("verification_succeeded"),
            None,
        ),
        ("tool_called", Some("ok"), None),
        ("tool_called", Some("failed"), Some("tool_failed")),
        ("emergency_toggled", Some("enabled"), None),
    ] {
        assert!(
            kinds.contains(&expected),
            "missing {expected:?} in {kinds:?}"
        );
    }
    // Callers are masked, arguments redacted, internals never recorded.
    // Times are numbers that may contain any digits (a PIN like 9999 among them), so the
    // scan looks at every field but the time.
    let all = serde_json::to_string(
        &records
            .iter()
            .map(|r| {
                let mut event = serde_json::to_value(&r.event).expect("json");
                event.as_object_mut().expect("object").remove("time_ms");
                event
            })
            .collect::<Vec<_>>(),
    )
    .expect("json");
    for secret in [
        CALLER,
        "4111 1111 1111 1111",
        "4111111111111111",
        "my secret note",
        "hunter2",
        "9999",
        "4321",
    ] {
        assert!(
            !all.contains(secret),
            "{secret:?} reached the audit trail: {all}"
        );
    }
    let note = records
        .iter()
        .find(|r| {
            r.event.function.as_deref() == Some("note") && r.event.outcome == Some(Outcome::Ok)
        })
        .expect("note call recorded");
    assert_eq!(note.event.caller.as_deref(), Some("***4567"));
    // `card` is a sensitive field name: the whole value goes.
    assert_eq!(
        note.event.arguments.as_ref().expect("arguments")["card"],
        "[REDACTED]"
    );
    assert_eq!(
        note.event.arguments.as_ref().expect("arguments")["text"],
        "[REDACTED]"
    );
    // The chain is intact and its checkpoints authenticate.
    let report = log.verify(key_copy.as_ref(), 1).await.expect("verify");
    assert!(report.is_ok(), "{report}");
}

/// A sink whose storage has failed.
struct BrokenSink;

#[async_trait::async_trait]
impl AuditSink for BrokenSink {
    async fn append(&self, _event: AuditEvent) -> Result<AuditRecord, StoreError> {
        Err(StoreError::Io {
            source: std::io::Error::other("disk full"),
        })
    }
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn backend(&self) -> &'static str {
        "broken"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_when_the_audit_trail_cannot_be_written() {
    let server = TestServer::start_with(
        vec![agent()],
        |_| {},
        |runtime| runtime.audit(Arc::new(BrokenSink)),
        reqwest::Client::builder(),
    )
    .await;
    let swml = server.swml("/", "call-audit").await;
    let (status, body) = call(&server, &swml, "note", json!({"text": "hello"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "audit_unavailable");
    assert!(!body.to_string().contains("disk full"), "{body}");
    let _ = (USER, PASSWORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_requested_by_a_handler_are_on_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(
        SqliteAuditLog::open_in_dir(dir.path(), Durability::Normal, None, 100)
            .await
            .expect("audit log"),
    );
    let sink: Arc<dyn AuditSink> = log.clone();
    let agent = Agent::builder("shop")
        .prompt_text("You take payments.")
        .tool(Tool::untyped(
            "checkout",
            "Collect the payment",
            json!({"type": "object", "properties": {}}),
            |_a, _c| async {
                let mut pay = voxguard::swml::Pay::new("https://pay.example.com/connector");
                pay.charge_amount = Some("29.99".into());
                pay.currency = Some("usd".into());
                Ok(FunctionResult::new("Please enter your card on the keypad.").pay(pay))
            },
        ))
        .build()
        .expect("agent");
    let server = TestServer::start_with(
        vec![agent],
        |_| {},
        move |runtime| runtime.audit(sink),
        reqwest::Client::builder(),
    )
    .await;
    let swml = server.swml("/", "call-pay").await;
    let token = token_for(&swml, "checkout").expect("token");
    let (status, body) = server
        .swaig("/", "checkout", "call-pay", CALLER, json!({}), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let records = log.records(1).await.expect("records");
    let payment = records
        .iter()
        .find(|r| r.event.kind == AuditKind::PaymentRequested)
        .expect("payment event");
    assert_eq!(payment.event.outcome, Some(Outcome::Requested));
    assert_eq!(payment.event.function.as_deref(), Some("checkout"));
    let arguments = payment.event.arguments.as_ref().expect("arguments");
    assert_eq!(arguments["charge_amount"], "29.99");
    assert_eq!(arguments["currency"], "usd");
    assert!(records
        .iter()
        .any(|r| r.event.kind == AuditKind::ToolCalled));
}
