//! The operator records API (`/records`, issue 10) over real HTTP against a real SQLite records
//! database and audit trail: a call leaves a summary, a transcript and tool logs under the data
//! subject its tool named; every endpoint is tried by every built-in role, allowed and denied,
//! and each attempt is found in the audit trail by its request id with the operator, role,
//! record, masked subject and purpose. Also: authentication refusals (the platform's Basic
//! credentials never work), their aggregation, query validation, redaction of stored content,
//! and tampered or swapped ciphertexts.
//!
//! It must not change records behind the server's back except where a test is about exactly that
//! (the ciphertext and wrapped-key tampering goes through the store's public API), and it never
//! asserts timing. Tests ignored with `bug:`/`gap:`/`open:` document defects in `crates/`.

use std::sync::{Arc, Mutex};

use crate::util::{
    operator_request, post_summary, summary_body, token_for, Auth, OpReply, RecordsKit, TestServer,
    PASSWORD, USER,
};
use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use voxguard::guard::{AuditEvent, Outcome};
use voxguard::prelude::*;
use voxguard::store::{RecordStore, SqliteStore, StoredRecord, DEFAULT_SESSION_TTL};
use voxguard::swml::PostPromptRequest;

const CALL: &str = "call-records-1";
const CALL_OTHER: &str = "call-records-2";
const CALLER: &str = "+15557770001";
const CARD: &str = "4111 1111 1111 1111";
const PIN: &str = "4321";
/// A phrase of the conversation that is not sensitive: it must survive redaction.
const PHRASE: &str = "the blue heron entrance";
const PURPOSE: &str = "treatment follow-up";

#[derive(Deserialize, JsonSchema)]
struct Identify {
    /// The patient id the front desk looked up.
    #[schemars(regex(pattern = r"^pat_[0-9]{3}$"))]
    patient: String,
}

#[derive(Deserialize, JsonSchema)]
struct Note {
    /// What to note.
    #[schemars(length(max = 200))]
    text: String,
}

type Seen = Arc<Mutex<Vec<PostPromptRequest>>>;

/// A front-desk agent: `identify` names the call's data subject, `note` writes a tool log,
/// and summaries are kept by the runtime (records on) and handed to `on_summary`.
fn agent(seen: Seen) -> Agent {
    Agent::builder("frontdesk")
        .prompt_text("You help the clinic's patients.")
        .post_prompt("Summarize the call in one sentence.")
        .on_summary(move |summary, _ctx| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("lock").push(summary);
                Ok(())
            }
        })
        .tool(
            Tool::typed(
                "identify",
                "Identify the patient",
                |args: Identify, ctx: CallContext| async move {
                    ctx.set_subject(&args.patient).await?;
                    Ok(FunctionResult::new("Identified."))
                },
            )
            // The audit trail is append-only: an identifier in a tool's arguments would outlive
            // the subject's deletion there, so the agent marks it sensitive.
            .sensitive_args(["patient"]),
        )
        .tool(Tool::typed(
            "note",
            "Take a note",
            |args: Note, _ctx: CallContext| async move {
                Ok(FunctionResult::new(format!(
                    "Noted {} characters.",
                    args.text.len()
                )))
            },
        ))
        .build()
        .expect("agent builds")
}

/// A server with records on, on the kit's data directory (sessions in SQLite there too).
async fn server(kit: &RecordsKit, seen: Seen) -> TestServer {
    server_seen(kit, seen, |_| {}).await
}

/// [`server`] with its server configuration adjusted by `configure`.
async fn server_with(
    kit: &RecordsKit,
    configure: impl FnOnce(&mut voxguard::server::ServerConfig),
) -> TestServer {
    server_seen(kit, Arc::default(), configure).await
}

async fn server_seen(
    kit: &RecordsKit,
    seen: Seen,
    configure: impl FnOnce(&mut voxguard::server::ServerConfig),
) -> TestServer {
    let sessions = Arc::new(
        SqliteStore::open_in_dir(kit.dir.path(), DEFAULT_SESSION_TTL)
            .await
            .expect("session store"),
    );
    let sink = kit.sink();
    let config = kit.config();
    TestServer::start_with(
        vec![agent(seen)],
        configure,
        move |runtime| runtime.store(sessions).audit(sink).records(config),
        reqwest::Client::builder(),
    )
    .await
}

/// One call of `patient`: SWML, `identify`, a `note`, and the end-of-call summary with a card
/// number and a PIN in it.
async fn drive_call(server: &TestServer, call_id: &str, patient: &str) -> Value {
    let swml = server.swml("/", call_id).await;
    for (function, args) in [
        ("identify", json!({ "patient": patient })),
        ("note", json!({ "text": "asked about parking" })),
    ] {
        let token = token_for(&swml, function).expect("token");
        let (status, reply) = server
            .swaig("/", function, call_id, CALLER, args, Some(&token))
            .await;
        assert_eq!(status, StatusCode::OK, "{function}: {reply}");
        assert!(reply.get("error").is_none(), "{function}: {reply}");
    }
    let raw = format!("The patient paid the copay with card {CARD} and asked for {PHRASE}.");
    let log = json!([
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": format!("My PIN is {PIN} and my card number is {CARD}.")},
        {"role": "assistant", "content": format!("Parking is at {PHRASE}.")},
    ]);
    let (status, reply) =
        post_summary(server, &swml, summary_body(call_id, CALLER, &raw, log)).await;
    assert_eq!(status, StatusCode::OK, "summary: {reply}");
    swml
}

/// An operator of the test: name, role, bearer token.
struct Op {
    name: &'static str,
    role: &'static str,
    token: String,
}

impl Op {
    fn auth(&self) -> Auth<'_> {
        Auth::Bearer(&self.token)
    }
}

async fn send(server: &TestServer, op: &Op, method: Method, path: &str) -> OpReply {
    operator_request(server, method, path, op.auth(), None).await
}

/// The one audit event of `reply`'s request. A destructive request is on record before it
/// happens: its `requested` event comes first, and the event of what happened follows.
async fn only_event(kit: &RecordsKit, reply: &OpReply) -> AuditEvent {
    let mut events = kit.events_of(&reply.request_id).await;
    if events.len() == 2 && events[0].outcome.map(|o| o.as_str()) == Some("requested") {
        assert_eq!(events[0].kind, events[1].kind, "{events:?}");
        events.remove(0);
    }
    assert_eq!(
        events.len(),
        1,
        "one audit event for request {}: {events:?}",
        reply.request_id
    );
    events.remove(0)
}

/// 403 `access_denied`, audited as `access_denied` with who was refused and on what.
async fn assert_denied(
    kit: &RecordsKit,
    reply: &OpReply,
    op: &Op,
    record: Option<&str>,
    subject: Option<&str>,
) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{} ({}): {:?}",
        op.name,
        op.role,
        reply.body
    );
    assert_eq!(reply.body["error"], "access_denied", "{:?}", reply.body);
    assert!(reply.body.get("records").is_none() && reply.body.get("content").is_none());
    let event = only_event(kit, reply).await;
    assert_eq!(event.kind.as_str(), "access_denied", "{event:?}");
    assert_eq!(event.outcome, Some(Outcome::Refused));
    assert_eq!(event.reason.as_deref(), Some("access_denied"));
    assert_eq!(event.operator.as_deref(), Some(op.name));
    assert_eq!(event.role.as_deref(), Some(op.role));
    assert_eq!(event.record.as_deref(), record, "{event:?}");
    assert_eq!(
        event.subject,
        subject.map(|s| kit.masked(s)),
        "masked subject: {event:?}"
    );
}

/// 2xx, audited as `kind` by `op` with the record, masked subject and purpose given.
async fn assert_allowed(
    kit: &RecordsKit,
    reply: &OpReply,
    op: &Op,
    kind: &str,
    record: Option<&str>,
    subject: Option<&str>,
    purpose: Option<&str>,
) -> AuditEvent {
    assert!(
        reply.status.is_success(),
        "{} ({}) is allowed: {} {:?}",
        op.name,
        op.role,
        reply.status,
        reply.body
    );
    let event = only_event(kit, reply).await;
    assert_eq!(event.kind.as_str(), kind, "{event:?}");
    assert_eq!(event.outcome, Some(Outcome::Ok), "{event:?}");
    assert_eq!(event.operator.as_deref(), Some(op.name));
    assert_eq!(event.role.as_deref(), Some(op.role));
    assert_eq!(event.source.as_deref(), Some("127.0.0.1"));
    if record.is_some() {
        assert_eq!(event.record.as_deref(), record, "{event:?}");
    }
    if let Some(subject) = subject {
        assert_eq!(event.subject, Some(kit.masked(subject)), "{event:?}");
    }
    assert_eq!(event.purpose.as_deref(), purpose, "{event:?}");
    event
}

/// The records of `subject`, listed by `op` (who must be allowed to).
async fn list_of(server: &TestServer, op: &Op, subject: &str) -> Vec<Value> {
    let reply = send(
        server,
        op,
        Method::GET,
        &format!("/records?subject={subject}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn id_of(records: &[Value], kind: &str) -> String {
    records
        .iter()
        .find(|r| r["kind"] == kind)
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("a {kind} record in {records:?}"))
        .to_string()
}

struct Staff {
    auditor: Op,
    supervisor: Op,
    compliance: Op,
    admin: Op,
}

impl Staff {
    async fn new(kit: &RecordsKit) -> Self {
        let op = |name, role, token| Op { name, role, token };
        Self {
            auditor: op(
                "ann.auditor",
                "auditor",
                kit.token("ann.auditor", "auditor").await,
            ),
            supervisor: op(
                "sam.supervisor",
                "supervisor",
                kit.token("sam.supervisor", "supervisor").await,
            ),
            compliance: op(
                "cleo.compliance",
                "compliance",
                kit.token("cleo.compliance", "compliance").await,
            ),
            admin: op(
                "adam.admin",
                "admin",
                kit.token("adam.admin", "admin").await,
            ),
        }
    }

    fn all(&self) -> [&Op; 4] {
        [
            &self.auditor,
            &self.supervisor,
            &self.compliance,
            &self.admin,
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_leaves_redacted_records_under_its_subject_and_on_summary_sees_the_redacted_text() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let seen: Seen = Arc::default();
    let server = server(&kit, seen.clone()).await;
    drive_call(&server, CALL, "pat_001").await;

    let records = list_of(&server, &staff.compliance, "pat_001").await;
    let mut kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["summary", "tool_log", "tool_log", "transcript"],
        "{records:?}"
    );
    for record in &records {
        assert_eq!(record["call_id"], CALL);
        assert_eq!(record["agent"], "frontdesk");
        assert!(record["expires_at"].as_u64() > record["created_at"].as_u64());
        assert!(record.get("content").is_none(), "a listing has no content");
    }

    // Content reads show the redacted text: the phrase survives, card and PIN do not.
    for kind in ["summary", "transcript"] {
        let id = id_of(&records, kind);
        let reply = send(
            &server,
            &staff.supervisor,
            Method::GET,
            &format!("/records/{id}?purpose=treatment"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let text = reply.body["content"].to_string();
        assert!(text.contains(PHRASE), "{kind}: {text}");
        for secret in [CARD, "4111111111111111", "1111 1111", PIN] {
            assert!(!text.contains(secret), "{kind} stores {secret:?}: {text}");
        }
        assert_eq!(reply.body["record"]["id"], id.as_str());
    }
    // The tool logs hold the declared arguments and outcomes.
    let logs: Vec<Value> = records
        .iter()
        .filter(|r| r["kind"] == "tool_log")
        .cloned()
        .collect();
    let mut functions = Vec::new();
    for log in &logs {
        let id = log["id"].as_str().expect("id");
        let reply = send(
            &server,
            &staff.compliance,
            Method::GET,
            &format!("/records/{id}?purpose=audit"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(reply.body["content"]["outcome"], "ok", "{:?}", reply.body);
        functions.push(reply.body["content"]["function"].clone());
    }
    functions.sort_by_key(|f| f.to_string());
    assert_eq!(functions, [json!("identify"), json!("note")]);

    // on_summary got the same redacted text.
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert_eq!(seen.len(), 1);
    let handed =
        serde_json::to_string(&(&seen[0].post_prompt_data, &seen[0].call_log)).expect("json");
    assert!(handed.contains(PHRASE), "{handed}");
    for secret in [CARD, "4111111111111111", PIN] {
        assert!(
            !handed.contains(secret),
            "on_summary got {secret:?}: {handed}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_by_every_role_is_allowed_or_denied_as_documented_and_always_audited() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;
    drive_call(&server, CALL_OTHER, "pat_002").await;
    let records = list_of(&server, &staff.compliance, "pat_001").await;
    let summary = id_of(&records, "summary");
    let transcript = id_of(&records, "transcript");
    let doomed = id_of(&records, "tool_log");

    // GET /records (list_records): auditor, supervisor, compliance.
    for op in staff.all() {
        let reply = send(&server, op, Method::GET, "/records?subject=pat_001").await;
        if op.role == "admin" {
            assert_denied(&kit, &reply, op, None, None).await;
        } else {
            assert_eq!(reply.body["records"].as_array().map(Vec::len), Some(4));
            let event = assert_allowed(
                &kit,
                &reply,
                op,
                "record_accessed",
                None,
                Some("pat_001"),
                None,
            )
            .await;
            assert_eq!(event.function.as_deref(), Some("list"));
        }
    }

    // GET /records/{id}?purpose= (read_content): supervisor, compliance.
    for op in staff.all() {
        let path = format!("/records/{summary}?purpose={}", PURPOSE.replace(' ', "%20"));
        let reply = send(&server, op, Method::GET, &path).await;
        if ["auditor", "admin"].contains(&op.role) {
            assert_denied(&kit, &reply, op, Some(&summary), None).await;
        } else {
            assert_eq!(reply.body["record"]["kind"], "summary");
            assert!(reply.body["content"]["raw"].is_string(), "{:?}", reply.body);
            let event = assert_allowed(
                &kit,
                &reply,
                op,
                "record_accessed",
                Some(&summary),
                Some("pat_001"),
                Some(PURPOSE),
            )
            .await;
            assert_eq!(event.call_id.as_deref(), Some(CALL));
        }
    }

    // GET /records/{id}/export?purpose= (export): compliance.
    for op in staff.all() {
        let path = format!("/records/{transcript}/export?purpose=patient%20request");
        let reply = send(&server, op, Method::GET, &path).await;
        if op.role == "compliance" {
            assert!(reply.body["exported_at"].is_u64(), "{:?}", reply.body);
            assert!(reply.body["content"].is_array(), "{:?}", reply.body);
            assert_allowed(
                &kit,
                &reply,
                op,
                "record_exported",
                Some(&transcript),
                Some("pat_001"),
                Some("patient request"),
            )
            .await;
        } else {
            assert_denied(&kit, &reply, op, Some(&transcript), None).await;
        }
    }

    // GET /records/subjects/{subject}?purpose= (export): compliance.
    for op in staff.all() {
        let path = "/records/subjects/pat_001?purpose=access%20request";
        let reply = send(&server, op, Method::GET, path).await;
        if op.role == "compliance" {
            assert_eq!(reply.body["subject"], "pat_001");
            assert_eq!(
                reply.body["records"].as_array().map(Vec::len),
                Some(4),
                "{:?}",
                reply.body
            );
            let event = assert_allowed(
                &kit,
                &reply,
                op,
                "record_exported",
                None,
                Some("pat_001"),
                Some("access request"),
            )
            .await;
            assert_eq!(event.function.as_deref(), Some("subject_export"));
        } else {
            assert_denied(&kit, &reply, op, None, Some("pat_001")).await;
        }
    }

    // DELETE /records/{id} (delete): compliance; refused ones leave the record in place.
    for op in [
        &staff.auditor,
        &staff.supervisor,
        &staff.admin,
        &staff.compliance,
    ] {
        let reply = send(&server, op, Method::DELETE, &format!("/records/{doomed}")).await;
        if op.role == "compliance" {
            assert_eq!(reply.body["deleted"]["id"], doomed.as_str());
            let event = assert_allowed(
                &kit,
                &reply,
                op,
                "record_deleted",
                Some(&doomed),
                Some("pat_001"),
                None,
            )
            .await;
            assert_eq!(event.function.as_deref(), Some("tool_log"));
        } else {
            assert_denied(&kit, &reply, op, Some(&doomed), None).await;
            assert_eq!(list_of(&server, &staff.auditor, "pat_001").await.len(), 4);
        }
    }
    let reply = send(
        &server,
        &staff.compliance,
        Method::GET,
        &format!("/records/{doomed}?purpose=check"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
    assert_eq!(reply.body["error"], "record_not_found");
    assert_eq!(list_of(&server, &staff.auditor, "pat_001").await.len(), 3);

    // DELETE /records/subjects/{subject} (delete): compliance, on pat_002.
    for op in [
        &staff.auditor,
        &staff.supervisor,
        &staff.admin,
        &staff.compliance,
    ] {
        let reply = send(&server, op, Method::DELETE, "/records/subjects/pat_002").await;
        if op.role == "compliance" {
            let deleted = &reply.body["deleted"];
            assert_eq!(deleted["records"]["summary"], 1, "{deleted}");
            assert_eq!(deleted["records"]["transcript"], 1, "{deleted}");
            assert_eq!(deleted["records"]["tool_log"], 2, "{deleted}");
            assert!(deleted["keys"].as_u64() >= Some(1), "{deleted}");
            assert!(deleted["sessions"].as_u64() >= Some(1), "{deleted}");
            let event = assert_allowed(
                &kit,
                &reply,
                op,
                "subject_deleted",
                None,
                Some("pat_002"),
                None,
            )
            .await;
            assert_eq!(event.arguments.as_ref(), Some(deleted), "tombstone counts");
        } else {
            assert_denied(&kit, &reply, op, None, Some("pat_002")).await;
            assert_eq!(list_of(&server, &staff.auditor, "pat_002").await.len(), 4);
        }
    }
    assert!(list_of(&server, &staff.auditor, "pat_002").await.is_empty());
    assert!(kit
        .store
        .subject_key("pat_002")
        .await
        .expect("store")
        .is_none());
    assert!(kit
        .store
        .subject_key("pat_001")
        .await
        .expect("store")
        .is_some());

    // GET /records/audit (read_audit): auditor only — the trail itself, paged.
    for op in staff.all() {
        let reply = send(&server, op, Method::GET, "/records/audit?from=1&limit=5").await;
        if op.role == "auditor" {
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            let page = reply.body["records"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(page.len(), 5, "{:?}", reply.body);
            assert_eq!(page[0]["seq"], 1);
            assert_eq!(reply.body["next"], 6);
            assert_allowed(&kit, &reply, op, "record_accessed", None, None, None).await;
        } else {
            assert_denied(&kit, &reply, op, None, None).await;
        }
    }

    // GET /records/operators (manage_operators): admin; never a hash.
    for op in staff.all() {
        let reply = send(&server, op, Method::GET, "/records/operators").await;
        if op.role == "admin" {
            let listed = reply.body["operators"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(listed.len(), 4, "{listed:?}");
            for operator in &listed {
                let keys: Vec<&String> = operator.as_object().expect("object").keys().collect();
                assert_eq!(keys, ["created_at", "name", "role"], "{operator}");
            }
            assert_allowed(&kit, &reply, op, "record_accessed", None, None, None).await;
        } else {
            assert_denied(&kit, &reply, op, None, None).await;
        }
    }

    // POST, PUT, DELETE /records/operators… (manage_operators): admin.
    let add = json!({"name": "tess.temp", "role": "auditor"});
    for op in [&staff.auditor, &staff.supervisor, &staff.compliance] {
        for (method, path, body) in [
            (Method::POST, "/records/operators", Some(add.clone())),
            (
                Method::PUT,
                "/records/operators/ann.auditor",
                Some(json!({"role": "compliance"})),
            ),
            (Method::DELETE, "/records/operators/ann.auditor", None),
        ] {
            let reply = operator_request(&server, method.clone(), path, op.auth(), body).await;
            assert_denied(&kit, &reply, op, None, None).await;
        }
    }
    // Nobody escalated: the auditor is still an auditor.
    let reply = send(
        &server,
        &staff.auditor,
        Method::GET,
        &format!("/records/{summary}?purpose=x"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);

    let admin = &staff.admin;
    let reply = operator_request(
        &server,
        Method::POST,
        "/records/operators",
        admin.auth(),
        Some(add),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let temp_token = reply.body["token"]
        .as_str()
        .expect("a token, shown once")
        .to_string();
    assert!(temp_token.starts_with("vgo_"), "{temp_token}");
    let event = assert_allowed(&kit, &reply, admin, "operator_changed", None, None, None).await;
    assert_eq!(event.function.as_deref(), Some("add"));
    assert_eq!(
        event.arguments,
        Some(json!({"operator": "tess.temp", "role": "auditor"}))
    );
    assert!(
        !kit.trail_text().await.contains(&temp_token),
        "a token in the trail"
    );
    let temp = Op {
        name: "tess.temp",
        role: "auditor",
        token: temp_token,
    };
    assert_eq!(list_of(&server, &temp, "pat_001").await.len(), 3);

    let reply = operator_request(
        &server,
        Method::PUT,
        "/records/operators/tess.temp",
        admin.auth(),
        Some(json!({"role": "supervisor"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["operator"]["role"], "supervisor");
    let event = assert_allowed(&kit, &reply, admin, "operator_changed", None, None, None).await;
    assert_eq!(event.function.as_deref(), Some("set_role"));
    // The new role applies at once.
    let promoted = Op {
        role: "supervisor",
        ..temp
    };
    let reply = send(
        &server,
        &promoted,
        Method::GET,
        &format!("/records/{summary}?purpose=qa"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);

    let reply = operator_request(
        &server,
        Method::DELETE,
        "/records/operators/tess.temp",
        admin.auth(),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let event = assert_allowed(&kit, &reply, admin, "operator_changed", None, None, None).await;
    assert_eq!(event.function.as_deref(), Some("remove"));
    // A removed operator's token stops working.
    let reply = send(&server, &promoted, Method::GET, "/records").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.body["error"], "operator_auth_invalid");

    // The last admin cannot remove or demote itself (409).
    for (method, body) in [
        (Method::DELETE, None),
        (Method::PUT, Some(json!({"role": "auditor"}))),
    ] {
        let reply = operator_request(
            &server,
            method,
            "/records/operators/adam.admin",
            admin.auth(),
            body,
        )
        .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
        assert_eq!(reply.body["error"], "operator_conflict");
        // The refusal is on record, like every other refusal of an operator.
        let events = kit.events_of(&reply.request_id).await;
        assert!(
            events.iter().any(|e| e.kind.as_str() == "access_denied"
                && e.reason.as_deref() == Some("operator_conflict")
                && e.operator.as_deref() == Some("adam.admin")),
            "{events:?}"
        );
    }

    // The patient's id never reaches the trail, whoever asked.
    let trail = kit.trail_text().await;
    for personal in ["pat_001", "pat_002", CALLER, CARD, PHRASE] {
        let holders: Vec<&str> = trail
            .split("},{")
            .filter(|event| event.contains(personal))
            .collect();
        assert!(
            holders.is_empty(),
            "{personal:?} is in the audit trail: {holders:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_authenticate_with_their_own_credentials_never_the_platforms() {
    let kit = RecordsKit::new().await;
    let token = kit.token("cleo.compliance", "compliance").await;
    let password = kit.password("pat.basic", "supervisor").await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;

    let list = |auth| operator_request(&server, Method::GET, "/records", auth, None);
    // Allowed: the bearer token, and Basic with the operator's name and password.
    for auth in [
        Auth::Bearer(&token),
        Auth::Basic("pat.basic", &password),
        Auth::Basic("pat.basic", &password),
    ] {
        let reply = list(auth).await;
        assert_eq!(reply.status, StatusCode::OK, "{auth:?}: {:?}", reply.body);
        assert_eq!(reply.body["records"].as_array().map(Vec::len), Some(4));
    }
    let basic_event = only_event(&kit, &list(Auth::Basic("pat.basic", &password)).await).await;
    assert_eq!(basic_event.operator.as_deref(), Some("pat.basic"));
    assert_eq!(basic_event.role.as_deref(), Some("supervisor"));

    let wrong_token = format!("{}x", &token[..token.len() - 1]);
    for (auth, reason) in [
        (Auth::Nothing, "operator_auth_required"),
        // The platform's credentials: refused, whatever they are.
        (Auth::Basic(USER, PASSWORD), "operator_auth_required"),
        (
            Auth::Basic("pat.basic", "not-the-password"),
            "operator_auth_invalid",
        ),
        (Auth::Basic("nobody", &password), "operator_auth_invalid"),
        (Auth::Bearer(&wrong_token), "operator_auth_invalid"),
        (Auth::Bearer("vgo_unknown"), "operator_auth_invalid"),
        (Auth::Bearer(""), "operator_auth_invalid"),
        (Auth::Raw("Basic !!!not-base64"), "operator_auth_invalid"),
        (Auth::Raw("Digest username=\"x\""), "operator_auth_invalid"),
    ] {
        for (method, path) in [
            (Method::GET, "/records"),
            (Method::GET, "/records/operators"),
            (Method::DELETE, "/records/subjects/pat_001"),
        ] {
            let reply = operator_request(&server, method.clone(), path, auth, None).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}: {:?}",
                reply.body
            );
            assert_eq!(reply.body["error"], reason, "{auth:?}: {:?}", reply.body);
            assert!(reply.body.get("records").is_none());
            let challenge = reply.challenge.unwrap_or_default();
            assert!(challenge.contains("voxguard-records"), "{challenge}");
        }
    }
    // Nothing was deleted by any of them.
    assert_eq!(
        list(Auth::Bearer(&token)).await.body["records"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    // The platform's credentials still work where they belong.
    let swml = server.swml("/", "call-after").await;
    assert!(token_for(&swml, "identify").is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_needs_a_purpose_and_a_refused_purpose_is_audited() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;
    let summary = id_of(
        &list_of(&server, &staff.compliance, "pat_001").await,
        "summary",
    );
    let long = "p".repeat(201);
    for query in [
        String::new(),
        "?purpose=".to_string(),
        "?purpose=%20%20%20".to_string(),
        format!("?purpose={long}"),
        "?reason=treatment".to_string(),
    ] {
        for (path, record, subject) in [
            (
                format!("/records/{summary}{query}"),
                Some(summary.as_str()),
                None,
            ),
            (
                format!("/records/{summary}/export{query}"),
                Some(summary.as_str()),
                None,
            ),
            (
                format!("/records/subjects/pat_001{query}"),
                None,
                Some("pat_001"),
            ),
        ] {
            let reply = send(&server, &staff.compliance, Method::GET, &path).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{path}: {:?}",
                reply.body
            );
            assert_eq!(reply.body["error"], "purpose_required", "{path}");
            assert!(reply.body.get("content").is_none() && reply.body.get("records").is_none());
            let event = only_event(&kit, &reply).await;
            assert_eq!(event.kind.as_str(), "access_denied", "{path}");
            assert_eq!(event.reason.as_deref(), Some("purpose_required"));
            assert_eq!(event.operator.as_deref(), Some("cleo.compliance"));
            assert_eq!(event.role.as_deref(), Some("compliance"));
            assert_eq!(event.record.as_deref(), record);
            assert_eq!(event.subject, subject.map(|s| kit.masked(s)));
        }
    }
    // 200 characters is enough; control characters never reach the trail.
    let ok = "q".repeat(200);
    let reply = send(
        &server,
        &staff.supervisor,
        Method::GET,
        &format!("/records/{summary}?purpose={ok}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        only_event(&kit, &reply).await.purpose.as_deref(),
        Some(ok.as_str())
    );
    let reply = send(
        &server,
        &staff.supervisor,
        Method::GET,
        &format!("/records/{summary}?purpose=billing%0Aforged%1Bline"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let purpose = only_event(&kit, &reply).await.purpose.unwrap_or_default();
    assert!(!purpose.chars().any(char::is_control), "{purpose:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_400_invalid_query_and_unknown_records_404() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;
    let long_subject = "s".repeat(129);
    let long_call = "c".repeat(129);
    for query in [
        "kind=nope",
        "kind=Summary",
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=ten",
        "from=abc",
        "from=-5",
        "to=1.5",
        "to=99999999999999999999999",
        &format!("subject={long_subject}"),
        "subject=",
        "subject=%00",
        &format!("call_id={long_call}"),
        "call_id=",
    ] {
        let reply = send(
            &server,
            &staff.auditor,
            Method::GET,
            &format!("/records?{query}"),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"], "invalid_query", "{query}");
        assert!(reply.body.get("records").is_none());
    }
    // Valid filters work, and paging walks the listing.
    for (query, expected) in [
        ("kind=summary", 1),
        ("kind=tool_log", 2),
        (&format!("call_id={CALL}") as &str, 4),
        ("call_id=another-call", 0),
        ("from=0&to=99999999999", 4),
        ("from=99999999999", 0),
        ("subject=pat_999", 0),
    ] {
        let reply = send(
            &server,
            &staff.auditor,
            Method::GET,
            &format!("/records?{query}"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {:?}", reply.body);
        assert_eq!(
            reply.body["records"].as_array().map(Vec::len),
            Some(expected),
            "{query}"
        );
    }
    let mut seen = Vec::new();
    let mut path = "/records?limit=1".to_string();
    loop {
        let reply = send(&server, &staff.auditor, Method::GET, &path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
        let page = reply.body["records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(page.len() <= 1);
        seen.extend(page.iter().map(|r| r["id"].clone()));
        match reply.body["next"].as_str() {
            Some(next) => path = format!("/records?limit=1&after={next}"),
            None => break,
        }
        assert!(seen.len() <= 5, "paging terminates");
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 4);

    // Unknown ids: 404 record_not_found for read, export and delete.
    for (op, method, path) in [
        (
            &staff.supervisor,
            Method::GET,
            "/records/rec_doesnotexist?purpose=x",
        ),
        (
            &staff.compliance,
            Method::GET,
            "/records/rec_doesnotexist/export?purpose=x",
        ),
        (
            &staff.compliance,
            Method::DELETE,
            "/records/rec_doesnotexist",
        ),
    ] {
        let reply = send(&server, op, method, path).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["error"], "record_not_found", "{path}");
    }
    // Not an endpoint: 404 / 405, never a record.
    for (method, path, status) in [
        (Method::GET, "/records/a/b/c", StatusCode::NOT_FOUND),
        (Method::POST, "/records", StatusCode::METHOD_NOT_ALLOWED),
        (
            Method::PATCH,
            "/records/operators",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let reply = send(&server, &staff.compliance, method, path).await;
        assert_eq!(reply.status, status, "{path}: {:?}", reply.body);
    }
    // A subject path with an invalid subject id.
    let reply = send(
        &server,
        &staff.compliance,
        Method::GET,
        &format!("/records/subjects/{long_subject}?purpose=x"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(reply.body["error"], "invalid_query");
    server.stop().await;
}

/// A paging cursor that names no record is the client's mistake, not a server failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_paging_cursor_is_400_invalid_query() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;
    let reply = send(
        &server,
        &staff.auditor,
        Method::GET,
        "/records?after=rec_nosuchrecordatall",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(reply.body["error"], "invalid_query", "{:?}", reply.body);
    server.stop().await;
}

async fn row(kit: &RecordsKit, id: &str) -> StoredRecord {
    kit.store
        .get_record(id)
        .await
        .expect("store")
        .expect("stored row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_swapped_ciphertexts_are_refused_clearly_and_the_server_keeps_serving() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;
    drive_call(&server, CALL_OTHER, "pat_002").await;
    let own = list_of(&server, &staff.compliance, "pat_001").await;
    let other = list_of(&server, &staff.compliance, "pat_002").await;
    let summary = id_of(&own, "summary");
    let transcript = id_of(&own, "transcript");
    let other_summary = id_of(&other, "summary");
    let tool_log = id_of(&own, "tool_log");

    let summary_row = row(&kit, &summary).await;
    let transcript_row = row(&kit, &transcript).await;
    let other_row = row(&kit, &other_summary).await;
    let log_row = row(&kit, &tool_log).await;
    let replace = |meta: voxguard::store::RecordMeta, body: Vec<u8>| async {
        kit.store.delete_record(&meta.id).await.expect("delete");
        kit.store
            .put_record(&StoredRecord { meta, body })
            .await
            .expect("put");
    };
    // Same subject, same kind family: the transcript's body under the summary's row.
    replace(summary_row.meta.clone(), transcript_row.body.clone()).await;
    // Another subject's body (another data key) under the transcript's row.
    replace(transcript_row.meta.clone(), other_row.body.clone()).await;
    // One flipped bit in the tool log.
    let mut flipped = log_row.body.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    replace(log_row.meta.clone(), flipped).await;
    // A truncated body in the other subject's summary.
    replace(other_row.meta.clone(), other_row.body[..8].to_vec()).await;

    for (id, export) in [
        (&summary, false),
        (&transcript, false),
        (&tool_log, false),
        (&other_summary, false),
        (&summary, true),
    ] {
        let path = if export {
            format!("/records/{id}/export?purpose=check")
        } else {
            format!("/records/{id}?purpose=check")
        };
        let reply = send(&server, &staff.compliance, Method::GET, &path).await;
        assert!(
            reply.status.is_server_error(),
            "{path}: {} {:?}",
            reply.status,
            reply.body
        );
        assert_eq!(reply.body["error"], "internal_error", "{:?}", reply.body);
        let sentence = reply.body["response"].as_str().unwrap_or_default();
        assert!(
            sentence.contains("cannot be read"),
            "a clear reason: {sentence}"
        );
        assert!(reply.body.get("content").is_none());
        let text = reply.body.to_string();
        for leak in [PHRASE, "pat_001", "pat_002", "records.db", "SELECT"] {
            assert!(!text.contains(leak), "{leak:?} in {text}");
        }
    }
    // The subject export fails whole rather than hand out a partial or forged set.
    let reply = send(
        &server,
        &staff.compliance,
        Method::GET,
        "/records/subjects/pat_001?purpose=check",
    )
    .await;
    assert!(reply.status.is_server_error(), "{:?}", reply.body);
    assert!(reply.body.get("records").is_none());

    // The server keeps serving: the untouched records still read, calls still work.
    let untouched = own
        .iter()
        .filter_map(|r| r["id"].as_str())
        .find(|id| ![&summary, &transcript, &tool_log].contains(&&id.to_string()))
        .expect("an untouched record")
        .to_string();
    let reply = send(
        &server,
        &staff.compliance,
        Method::GET,
        &format!("/records/{untouched}?purpose=check"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    drive_call(&server, "call-records-3", "pat_003").await;
    assert_eq!(list_of(&server, &staff.auditor, "pat_003").await.len(), 4);

    // A wrapped data key moved to another subject does not unwrap: pat_003's records now
    // refuse to read, clearly, and nothing else is affected.
    let own_key = kit
        .store
        .subject_key("pat_003")
        .await
        .expect("store")
        .expect("key");
    let foreign = kit
        .store
        .subject_key("pat_002")
        .await
        .expect("store")
        .expect("key");
    assert!(kit
        .store
        .rewrap_subject_key(
            &own_key.kek_id,
            &voxguard::store::StoredKey {
                subject: "pat_003".into(),
                kek_id: foreign.kek_id.clone(),
                blob: foreign.blob.clone(),
            },
        )
        .await
        .expect("store"));
    let moved = id_of(
        &list_of(&server, &staff.auditor, "pat_003").await,
        "summary",
    );
    let reply = send(
        &server,
        &staff.compliance,
        Method::GET,
        &format!("/records/{moved}?purpose=check"),
    )
    .await;
    assert!(reply.status.is_server_error(), "{:?}", reply.body);
    assert!(reply.body.get("content").is_none());
    let reply = send(
        &server,
        &staff.compliance,
        Method::GET,
        &format!("/records/{untouched}?purpose=check"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    server.stop().await;
}

/// A record that fails authentication is evidence of tampering with the records database; the
/// attempt to read it (who, which record, for what purpose) belongs in the audit trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_detects_tampering_is_audited() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;
    let records = list_of(&server, &staff.compliance, "pat_001").await;
    let summary = row(&kit, &id_of(&records, "summary")).await;
    let transcript = row(&kit, &id_of(&records, "transcript")).await;
    kit.store
        .delete_record(&summary.meta.id)
        .await
        .expect("delete");
    kit.store
        .put_record(&StoredRecord {
            meta: summary.meta.clone(),
            body: transcript.body,
        })
        .await
        .expect("put");
    let reply = send(
        &server,
        &staff.supervisor,
        Method::GET,
        &format!("/records/{}?purpose=check", summary.meta.id),
    )
    .await;
    assert!(reply.status.is_server_error(), "{:?}", reply.body);
    let events = kit.events_of(&reply.request_id).await;
    assert!(
        events
            .iter()
            .any(|e| e.record.as_deref() == Some(summary.meta.id.as_str())
                && e.operator.as_deref() == Some("sam.supervisor")),
        "no audit event for the refused read: {events:?}"
    );
    server.stop().await;
}

/// A server like [`server`] on a manual clock.
async fn server_on(kit: &RecordsKit, clock: voxguard::guard::ManualClock) -> TestServer {
    let sessions = Arc::new(
        SqliteStore::open_in_dir(kit.dir.path(), DEFAULT_SESSION_TTL)
            .await
            .expect("session store"),
    );
    let sink = kit.sink();
    let config = kit.config();
    TestServer::start_with(
        vec![agent(Arc::default())],
        |_| {},
        move |runtime| {
            runtime
                .store(sessions)
                .audit(sink)
                .records(config)
                .clock(Arc::new(clock))
        },
        reqwest::Client::builder(),
    )
    .await
}

/// `(reason, count)` of every `access_denied` event without an operator (the unauthenticated,
/// aggregated ones).
async fn anonymous_denials(kit: &RecordsKit) -> Vec<(String, u64)> {
    kit.trail()
        .await
        .into_iter()
        .map(|r| r.event)
        .filter(|e| e.kind.as_str() == "access_denied" && e.operator.is_none())
        .map(|e| {
            let count = e
                .arguments
                .as_ref()
                .and_then(|a| a["count"].as_u64())
                .expect("an aggregated denial carries its count");
            (e.reason.unwrap_or_default(), count)
        })
        .collect()
}

fn total(denials: &[(String, u64)], reason: &str) -> (usize, u64) {
    let matching: Vec<u64> = denials
        .iter()
        .filter(|(r, _)| r == reason)
        .map(|(_, c)| *c)
        .collect();
    (matching.len(), matching.iter().sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_refusals_are_aggregated_and_their_counts_add_up() {
    const N: u64 = 60;
    let kit = RecordsKit::new().await;
    let clock = voxguard::guard::ManualClock::new(1_800_000_000);
    let server = server_on(&kit, clock.clone()).await;
    for i in 0..N {
        let path = format!("/records/rec_{i}?purpose=x");
        let reply = operator_request(&server, Method::GET, &path, Auth::Nothing, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let reply = operator_request(
            &server,
            Method::GET,
            "/records",
            Auth::Bearer("vgo_guess"),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let reply = operator_request(
            &server,
            Method::GET,
            "/records",
            Auth::Basic(USER, PASSWORD),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // While the window is open, far fewer durable events than failures.
    let during = anonymous_denials(&kit).await;
    assert!(
        during.len() <= 4,
        "{} events for {} failures: {during:?}",
        during.len(),
        3 * N
    );
    // After the window, the next failure writes the counts out; shutdown writes the rest.
    clock.advance(std::time::Duration::from_secs(61));
    let reply = operator_request(&server, Method::GET, "/records", Auth::Nothing, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    server.stop().await;
    let after = anonymous_denials(&kit).await;
    assert_eq!(
        total(&after, "operator_auth_required"),
        (
            after
                .iter()
                .filter(|(r, _)| r == "operator_auth_required")
                .count(),
            2 * N + 1
        ),
        "{after:?}"
    );
    assert_eq!(total(&after, "operator_auth_invalid").1, N, "{after:?}");
    assert!(after.len() <= 8, "{after:?}");
}

/// The masked subject rule holds for refusals before authentication too: the path of an
/// anonymous `GET /records/subjects/{subject}` must not carry the patient id into the trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_request_for_a_subject_never_writes_the_subject_id_to_the_trail() {
    let kit = RecordsKit::new().await;
    let server = server(&kit, Arc::default()).await;
    for method in [Method::GET, Method::DELETE] {
        let reply = operator_request(
            &server,
            method,
            "/records/subjects/pat_001?purpose=x",
            Auth::Nothing,
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    server.stop().await;
    let trail = kit.trail_text().await;
    assert!(
        trail.contains("access_denied"),
        "the refusals are on record"
    );
    assert!(
        !trail.contains("pat_001"),
        "the patient id is in the audit trail: {trail}"
    );
}

/// `Permission::ListRecords` is documented (guard/records/rbac.rs) as "id, agent, call, masked
/// subject, kind, dates, size": by that contract an auditor's listing must not name patients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditors_listing_shows_masked_subjects() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    drive_call(&server, CALL, "pat_001").await;
    let reply = send(&server, &staff.auditor, Method::GET, "/records").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["records"].as_array().map(Vec::len), Some(4));
    let text = reply.body.to_string();
    assert!(
        !text.contains("pat_001"),
        "the auditor sees patient ids: {text}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_rate_limited_per_source_and_tokens_still_work() {
    let kit = RecordsKit::new().await;
    let token = kit.token("cleo.compliance", "compliance").await;
    let password = kit.password("pat.basic", "supervisor").await;
    let server = server(&kit, Arc::default()).await;
    // A first good login is remembered: it keeps working while guessing is throttled.
    let good = Auth::Basic("pat.basic", &password);
    let reply = operator_request(&server, Method::GET, "/records", good, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let mut limited = None;
    for attempt in 0..30 {
        // Guesses at many names (one name alone is locked sooner: the per-name lock, see the
        // console's tests).
        let (name, guess) = (format!("user-{attempt}"), format!("guess-{attempt}"));
        let reply = operator_request(
            &server,
            Method::GET,
            "/records",
            Auth::Basic(&name, &guess),
            None,
        )
        .await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(reply.body["error"], "rate_limited", "{:?}", reply.body);
            limited = Some(attempt);
            break;
        }
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
        assert_eq!(reply.body["error"], "operator_auth_invalid");
    }
    let limited = limited.expect("password guessing is throttled");
    assert!(limited <= 20, "throttled after {limited} guesses");
    // Throttled: even the right password needs no argon2 run when it is cached...
    let reply = operator_request(&server, Method::GET, "/records", good, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // ...and tokens never touch the password limiter.
    let reply =
        operator_request(&server, Method::GET, "/records", Auth::Bearer(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    server.stop().await;
}

/// Behind a trusted proxy every connection comes from the proxy: the per-address lock must
/// follow the address the proxy forwards, or one guesser locks the operator out for everyone
/// behind it. From any other peer, `X-Forwarded-For` is the client's own words and never read
/// (`forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_lock_follows_the_forwarded_address() {
    let kit = RecordsKit::new().await;
    let password = kit.password("ana.proxy", "auditor").await;
    let server = server_with(&kit, |config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    })
    .await;
    let login = |from: &'static str, password: String| {
        let request = server
            .client
            .get(server.url("/records"))
            .basic_auth("ana.proxy", Some(password))
            // What a client sent, then what the proxy appended: only the last entry counts.
            .header("x-forwarded-for", format!("192.0.2.66, {from}"));
        async move { request.send().await.expect("request").status() }
    };
    for _ in 0..10 {
        assert_eq!(
            login("198.51.100.7", "guess".into()).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login("198.51.100.7", password.clone()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address is locked"
    );
    assert_eq!(
        login("203.0.113.9", password.clone()).await,
        StatusCode::OK,
        "the operator's own address is not"
    );
    server.stop().await;
    // The trail names the forwarded sources, not the proxy's.
    let sources: Vec<String> = kit
        .audit
        .records(1)
        .await
        .expect("records")
        .into_iter()
        .filter_map(|r| r.event.source)
        .collect();
    assert!(sources.iter().any(|s| s == "198.51.100.7"), "{sources:?}");
    assert!(sources.iter().any(|s| s == "203.0.113.9"), "{sources:?}");
    assert!(!sources.iter().any(|s| s == "192.0.2.66"), "{sources:?}");
}

/// `VOXGUARD_TRUST_PROXY` (the public URL's headers) does not make `X-Forwarded-For` trusted:
/// a proxy trusted for those may pass a client's own `X-Forwarded-For` through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let kit = RecordsKit::new().await;
    let password = kit.password("ben.proxy", "auditor").await;
    let server = server_with(&kit, |config| {
        config.trust_proxy = true;
        // Some proxy, but not the peer these requests come from.
        config.trusted_proxies = vec!["10.0.0.0/8".parse().expect("network")];
    })
    .await;
    for i in 0..10 {
        let status = server
            .client
            .get(server.url("/records"))
            .basic_auth("ben.proxy", Some("guess"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Every guess counted against the real peer, whatever the header said.
    let status = server
        .client
        .get(server.url("/records"))
        .basic_auth("ben.proxy", Some(&password))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    server.stop().await;
}

/// "The last admin cannot be removed or demoted" must hold when two admins remove each other
/// at the same moment over HTTP: the store checks and removes in one atomic step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_admins_removing_each_other_at_once_never_leave_no_admin() {
    let kit = RecordsKit::new().await;
    let server = Arc::new(server(&kit, Arc::default()).await);
    for round in 0..15 {
        let a = format!("admin-a{round}");
        let b = format!("admin-b{round}");
        let token_a = kit.token(&a, "admin").await;
        let token_b = kit.token(&b, "admin").await;
        // Every round starts from exactly these two admins.
        let (path_a, path_b) = (
            format!("/records/operators/{b}"),
            format!("/records/operators/{a}"),
        );
        let (ra, rb) = tokio::join!(
            operator_request(
                &server,
                Method::DELETE,
                &path_a,
                Auth::Bearer(&token_a),
                None
            ),
            operator_request(
                &server,
                Method::DELETE,
                &path_b,
                Auth::Bearer(&token_b),
                None
            ),
        );
        let admins = kit
            .records
            .backend()
            .count_operators_with_role("admin")
            .await
            .expect("count");
        assert!(
            admins >= 1,
            "round {round}: no admin left ({} and {})",
            ra.status,
            rb.status
        );
        // Reset: remove whoever is left, through the library (bypassing the API's rule).
        for name in [&a, &b] {
            let _ = kit.records.backend().remove_operator(name, None).await;
        }
    }
}

/// A call whose summary and transcript carry the cards `spoken` (and card data in structured
/// fields, CVVs and a PIN); returns what was stored or handed to `on_summary` in clear.
async fn card_leaks(spoken: &[&str]) -> Vec<String> {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let seen: Seen = Arc::default();
    let server = server(&kit, seen.clone()).await;
    let swml = server.swml("/", CALL).await;
    let token = token_for(&swml, "identify").expect("token");
    server
        .swaig(
            "/",
            "identify",
            CALL,
            CALLER,
            json!({"patient": "pat_001"}),
            Some(&token),
        )
        .await;
    let mut log: Vec<Value> = spoken
        .iter()
        .map(|card| json!({"role": "user", "content": format!("my card is {card}, thanks")}))
        .collect();
    log.push(json!({"role": "user", "content": "the security code is 737 and my PIN is 2468"}));
    let mut body = summary_body(
        CALL,
        CALLER,
        "Paid by card 5555 5555 5555 4444, CVV 737.",
        json!(log),
    );
    body["post_prompt_data"]["parsed"] = json!([{
        "card_number": "4111111111111111",
        "payment": {"pan": 4111111111111111_u64, "cvc": "737"},
        "5555555555554444": "card used",
    }]);
    let (status, reply) = post_summary(&server, &swml, body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let records = list_of(&server, &staff.compliance, "pat_001").await;
    let mut stored = String::new();
    for kind in ["summary", "transcript"] {
        let id = id_of(&records, kind);
        let reply = send(
            &server,
            &staff.compliance,
            Method::GET,
            &format!("/records/{id}?purpose=pci%20check"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        stored.push_str(&reply.body["content"].to_string());
    }
    assert!(stored.contains("thanks"), "{stored}");
    let handed = std::mem::take(&mut *seen.lock().expect("lock"));
    let handed =
        serde_json::to_string(&(&handed[0].post_prompt_data, &handed[0].call_log)).expect("json");
    server.stop().await;
    let mut leaks = Vec::new();
    for (what, text) in [("stored", &stored), ("on_summary", &handed)] {
        for needle in spoken
            .iter()
            .chain(&["4111111111111111", "5555555555554444", "737", "2468"])
        {
            if text.contains(needle) {
                leaks.push(format!("{what}: {needle}"));
            }
        }
    }
    leaks
}

/// PCI data is never stored, and `on_summary` never sees it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_data_in_common_shapes_is_never_stored() {
    let leaks = card_leaks(&[
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "3782 822463 10005",
        "5555555555554444",
        "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    ])
    .await;
    assert!(leaks.is_empty(), "card data kept: {leaks:#?}");
}

/// Speech-to-text and LLM summaries also write card numbers with dots, slashes, spaced dashes or
/// double spaces between the groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_data_with_other_separators_is_never_stored() {
    let leaks = card_leaks(&[
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111 - 1111 - 1111 - 1111",
        "4111  1111  1111  1111",
    ])
    .await;
    assert!(leaks.is_empty(), "card data kept: {leaks:#?}");
}

/// The platform posts one summary per call; the post-prompt token stays valid for its whole
/// lifetime, so whoever holds the rendered post-prompt URL can add further "summaries" and
/// "transcripts" under the verified patient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_keeps_one_summary_even_when_the_post_is_replayed() {
    let kit = RecordsKit::new().await;
    let staff = Staff::new(&kit).await;
    let server = server(&kit, Arc::default()).await;
    let swml = drive_call(&server, CALL, "pat_001").await;
    // The same render's post-prompt URL, replayed with forged content.
    let forged = summary_body(
        CALL,
        CALLER,
        "Forged: the patient asked to share records.",
        json!([]),
    );
    let (status, _) = post_summary(&server, &swml, forged).await;
    let summaries = list_of(&server, &staff.auditor, "pat_001")
        .await
        .iter()
        .filter(|r| r["kind"] == "summary")
        .count();
    assert!(
        status != StatusCode::OK || summaries == 1,
        "{status}: {summaries} summaries for one call"
    );
    server.stop().await;
}

/// `POST /records/operators/{name}/reset` (admin): a new token or password, shown once; the old
/// one stops working at once, the other credential is kept, and the reset is on record (never
/// the secret). Other roles are refused and audited; an admin cannot remove their own account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_resets_a_token_or_a_password_and_the_old_one_stops_working() {
    let kit = RecordsKit::new().await;
    let server = server(&kit, Arc::default()).await;
    let staff = Staff::new(&kit).await;
    let admin = &staff.admin;
    let reset = |name: &str| format!("/records/operators/{name}/reset");

    // A token reset: the old token is refused, the new one works.
    let old = staff.auditor.token.clone();
    let reply = operator_request(
        &server,
        Method::POST,
        &reset("ann.auditor"),
        admin.auth(),
        Some(json!({"password": false})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let new = reply.body["token"]
        .as_str()
        .expect("the new token, shown once")
        .to_string();
    assert!(new.starts_with("vgo_") && new != old, "{new}");
    assert!(reply.body.get("password").is_none());
    assert_eq!(reply.body["operator"]["name"], "ann.auditor");
    let event = assert_allowed(&kit, &reply, admin, "operator_changed", None, None, None).await;
    assert_eq!(event.function.as_deref(), Some("reset_token"));
    assert_eq!(
        event.arguments,
        Some(json!({"operator": "ann.auditor", "role": "auditor"}))
    );
    let refused =
        operator_request(&server, Method::GET, "/records", Auth::Bearer(&old), None).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.body["error"], "operator_auth_invalid");
    let works = operator_request(&server, Method::GET, "/records", Auth::Bearer(&new), None).await;
    assert_eq!(works.status, StatusCode::OK, "{:?}", works.body);

    // A password reset of an operator who signs in with a password: the old password is
    // refused, the new one works, and the token added by the reset above is not touched.
    let first = kit.password("pia.auditor", "auditor").await;
    let basic = operator_request(
        &server,
        Method::GET,
        "/records",
        Auth::Basic("pia.auditor", &first),
        None,
    )
    .await;
    assert_eq!(basic.status, StatusCode::OK, "{:?}", basic.body);
    let reply = operator_request(
        &server,
        Method::POST,
        &reset("pia.auditor"),
        admin.auth(),
        Some(json!({"password": true})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let second = reply.body["password"]
        .as_str()
        .expect("the new password, shown once")
        .to_string();
    assert_ne!(second, first);
    let event = assert_allowed(&kit, &reply, admin, "operator_changed", None, None, None).await;
    assert_eq!(event.function.as_deref(), Some("reset_password"));
    let old_password = operator_request(
        &server,
        Method::GET,
        "/records",
        Auth::Basic("pia.auditor", &first),
        None,
    )
    .await;
    assert_eq!(old_password.status, StatusCode::UNAUTHORIZED);
    let new_password = operator_request(
        &server,
        Method::GET,
        "/records",
        Auth::Basic("pia.auditor", &second),
        None,
    )
    .await;
    assert_eq!(
        new_password.status,
        StatusCode::OK,
        "{:?}",
        new_password.body
    );
    let trail = kit.trail_text().await;
    for secret in [&old, &new, &first, &second] {
        assert!(!trail.contains(secret.as_str()), "a secret in the trail");
    }

    // What to reset must be said; unknown operators are 404; other roles are refused.
    for body in [None, Some(json!({})), Some(json!({"password": "yes"}))] {
        let reply = operator_request(
            &server,
            Method::POST,
            &reset("pia.auditor"),
            admin.auth(),
            body,
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
        assert_eq!(reply.body["error"], "invalid_query");
    }
    let reply = operator_request(
        &server,
        Method::POST,
        &reset("nobody"),
        admin.auth(),
        Some(json!({"password": true})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
    let reply = operator_request(
        &server,
        Method::GET,
        &reset("pia.auditor"),
        admin.auth(),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    for op in [&staff.supervisor, &staff.compliance] {
        let reply = operator_request(
            &server,
            Method::POST,
            &reset("adam.admin"),
            op.auth(),
            Some(json!({"password": false})),
        )
        .await;
        assert_denied(&kit, &reply, op, None, None).await;
    }
    // The admin's own token still works: nobody reset it.
    assert_eq!(
        send(&server, admin, Method::GET, "/records/operators")
            .await
            .status,
        StatusCode::OK
    );

    // An admin cannot remove their own account, even with another admin present.
    kit.token("eve.admin", "admin").await;
    let reply = send(
        &server,
        admin,
        Method::DELETE,
        "/records/operators/adam.admin",
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    assert_eq!(reply.body["error"], "operator_conflict");
    assert!(
        reply.body["response"]
            .as_str()
            .unwrap_or_default()
            .contains("own account"),
        "{:?}",
        reply.body
    );
    assert!(kit
        .records
        .backend()
        .operator("adam.admin")
        .await
        .expect("store")
        .is_some());
    server.stop().await;
}
