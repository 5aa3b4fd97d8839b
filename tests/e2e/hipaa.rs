//! HIPAA mode (issue 10, item 6) end to end: what refuses to build or start (unverified PHI
//! tools, call recording, no records key), what a running HIPAA agent refuses
//! (`recording_blocked`, audited), what it renders (no `record_call`, a "Privacy" prompt section,
//! still valid against the official SWML schema), and what it stores (every date masked in
//! summaries, transcripts and tool logs, on top of the identifiers every mode masks).
//!
//! It must not configure HIPAA behaviour by hand: every guarantee comes from `.compliance(…)` on
//! the agent or the runtime, and refusals are checked through the public error types and HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::util::{
    count, counter, empty_schema, operator_request, post_summary, summary_body, swml_schema_path,
    token_for, Auth, RecordsKit, TestServer,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use voxguard::prelude::*;
use voxguard::swml::{Document, RecordCall, Verb};
use voxguard::{AgentError, Compliance, ComplianceError, RuntimeError};
use voxguard_swml::conformance::SchemaChecker;

const CALLER: &str = "+15557770001";

fn lookup_tool(name: &str) -> Tool {
    Tool::untyped(
        name,
        "Look up the patient's chart",
        empty_schema(),
        |_a, _c| async { Ok(FunctionResult::new("Nothing on file.")) },
    )
}

fn hipaa_agent(name: &str) -> voxguard::AgentBuilder {
    Agent::builder(name)
        .compliance(Compliance::HIPAA)
        .prompt_section("Role", "You help the clinic's patients.")
}

#[test]
fn a_phi_tool_without_a_verification_flag_does_not_build() {
    let error = hipaa_agent("clinic")
        .tool(lookup_tool("chart").phi())
        .build()
        .expect_err("refused");
    match &error {
        AgentError::Compliance(ComplianceError::UnverifiedPhi { agent, tool }) => {
            assert_eq!((agent.as_str(), tool.as_str()), ("clinic", "chart"));
        }
        other => panic!("unexpected error: {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("chart") && message.contains("requires"),
        "{message}"
    );
    // With the flag it builds; without HIPAA the same tool builds as well.
    assert!(hipaa_agent("clinic")
        .tool(lookup_tool("chart").phi().requires("verified"))
        .build()
        .is_ok());
    assert!(Agent::builder("plain")
        .prompt_text("Hi.")
        .tool(lookup_tool("chart").phi())
        .build()
        .is_ok());
}

#[test]
fn a_recording_agent_does_not_build_under_hipaa() {
    let error = hipaa_agent("clinic")
        .record_call(RecordCall::default())
        .build()
        .expect_err("refused");
    assert!(
        matches!(
            error,
            AgentError::Compliance(ComplianceError::Recording { .. })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("record_call"), "{error}");
}

/// A PHI tool that takes no function token would share its session namespace with anyone who
/// knows the call id and holds the platform's credentials (which ride in every webhook URL).
#[test]
fn a_phi_tool_without_a_token_does_not_build() {
    let error = hipaa_agent("clinic")
        .tool(
            lookup_tool("chart")
                .phi()
                .requires("verified")
                .secure(false),
        )
        .build()
        .expect_err("refused");
    assert!(
        matches!(&error, AgentError::PolicyOnInsecureTool(tool) if tool == "chart"),
        "{error:?}"
    );
    let error = hipaa_agent("clinic")
        .tool(lookup_tool("chart").phi().secure(false))
        .build()
        .expect_err("refused");
    assert!(
        matches!(
            &error,
            AgentError::Compliance(ComplianceError::UnverifiedPhi { .. })
        ),
        "{error:?}"
    );
}

/// `Runtime::bind` with `modes` on an agent that is not HIPAA itself.
async fn bind_err(agent: Agent, records: bool) -> RuntimeError {
    let kit = RecordsKit::new().await;
    let config = voxguard::server::ServerConfig::new(voxguard::guard::BasicCredentials::new(
        crate::util::USER,
        crate::util::PASSWORD,
    ));
    let keys = voxguard::guard::KeyRing::new(voxguard::guard::TokenKey::generate());
    let mut runtime = Runtime::new(config, keys)
        .compliance(Compliance::HIPAA)
        .agent(agent);
    if records {
        runtime = runtime.records(kit.config());
    }
    match runtime.bind().await {
        Ok(_) => panic!("bind refused"),
        Err(error) => error,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hipaa_runtime_refuses_to_start_without_records_or_with_a_non_compliant_agent() {
    let plain = || Agent::builder("plain").prompt_text("You help patients.");
    // No records (so no records key): the message names the variable.
    let error = bind_err(plain().build().expect("agent"), false).await;
    let message = error.to_string();
    assert!(message.contains("VOXGUARD_RECORDS_KEY"), "{message}");
    assert!(message.contains("HIPAA"), "{message}");
    // The runtime's mode applies to agents that did not declare it.
    let error = bind_err(
        plain()
            .tool(lookup_tool("chart").phi())
            .build()
            .expect("builds outside HIPAA"),
        true,
    )
    .await;
    assert!(error.to_string().contains("chart"), "{error}");
    let error = bind_err(
        plain()
            .record_call(RecordCall::default())
            .build()
            .expect("builds outside HIPAA"),
        true,
    )
    .await;
    assert!(error.to_string().contains("record_call"), "{error}");
}

/// A HIPAA agent whose tools try to start a recording, in the main section of a SWML action
/// and in another one.
fn recording_agent(runs: &crate::util::Counter, declared: bool) -> Agent {
    let main_runs = runs.clone();
    let other_runs = runs.clone();
    let builder = if declared {
        hipaa_agent("clinic")
    } else {
        Agent::builder("clinic").prompt_section("Role", "You help the clinic's patients.")
    };
    builder
        .post_prompt("Summarize the call.")
        .tool(Tool::untyped(
            "start_recording",
            "Start a recording",
            empty_schema(),
            move |_a, _c| {
                main_runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    Ok(
                        FunctionResult::new("Recording started.").record_call(RecordCall {
                            format: Some("mp3".into()),
                            ..RecordCall::default()
                        }),
                    )
                }
            },
        ))
        .tool(Tool::untyped(
            "hidden_recording",
            "Start a recording in another section",
            empty_schema(),
            move |_a, _c| {
                other_runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    let mut sections = BTreeMap::new();
                    sections.insert("main".to_string(), vec![]);
                    sections.insert(
                        "later".to_string(),
                        vec![Verb::RecordCall(RecordCall::default())],
                    );
                    Ok(FunctionResult::new("OK.").swml(Document {
                        version: "1.0.0".into(),
                        sections,
                    }))
                }
            },
        ))
        .tool(Tool::untyped(
            "stop_recording",
            "Stop a recording",
            empty_schema(),
            |_a, _c| async { Ok(FunctionResult::new("Stopped.").stop_record_call(None)) },
        ))
        .build()
        .expect("agent builds")
}

async fn hipaa_server(kit: &RecordsKit, agent: Agent, runtime_hipaa: bool) -> TestServer {
    let sink = kit.sink();
    let config = kit.config();
    TestServer::start_with(
        vec![agent],
        |_| {},
        move |runtime| {
            let runtime = runtime.audit(sink).records(config);
            if runtime_hipaa {
                runtime.compliance(Compliance::HIPAA)
            } else {
                runtime
            }
        },
        reqwest::Client::builder(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_result_that_records_is_refused_recording_blocked_and_audited() {
    // HIPAA declared by the agent, then by the runtime only.
    for declared in [true, false] {
        let kit = RecordsKit::new().await;
        let runs = counter();
        let server = hipaa_server(&kit, recording_agent(&runs, declared), !declared).await;
        let call_id = format!("call-rec-{declared}");
        let swml = server.swml("/", &call_id).await;
        for function in ["start_recording", "hidden_recording"] {
            let token = token_for(&swml, function).expect("token");
            let (status, reply) = server
                .swaig("/", function, &call_id, CALLER, json!({}), Some(&token))
                .await;
            crate::util::assert_refusal(status, &reply, "recording_blocked");
            assert!(!reply.to_string().contains("record_call"), "{reply}");
        }
        assert_eq!(
            count(&runs),
            2,
            "the handlers ran; their results were refused"
        );
        // Stopping a recording is not recording.
        let token = token_for(&swml, "stop_recording").expect("token");
        let (status, reply) = server
            .swaig(
                "/",
                "stop_recording",
                &call_id,
                CALLER,
                json!({}),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert!(reply.get("error").is_none(), "{reply}");

        let blocked: Vec<_> = kit
            .trail()
            .await
            .into_iter()
            .map(|r| r.event)
            .filter(|e| e.reason.as_deref() == Some("recording_blocked"))
            .collect();
        assert_eq!(blocked.len(), 2, "{blocked:?}");
        for event in &blocked {
            assert_eq!(event.agent.as_deref(), Some("clinic"));
            assert_eq!(event.call_id.as_deref(), Some(call_id.as_str()));
            assert_eq!(event.caller.as_deref(), Some("***0001"));
            assert!(
                matches!(
                    event.function.as_deref(),
                    Some("start_recording" | "hidden_recording")
                ),
                "{event:?}"
            );
            assert_ne!(event.outcome, Some(voxguard::guard::Outcome::Ok));
        }
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hipaa_swml_has_no_recording_a_privacy_section_and_conforms() {
    let checker = SchemaChecker::from_path(swml_schema_path()).expect("schema loads");
    let kit = RecordsKit::new().await;
    // A POM prompt (sections) and a text prompt.
    let pom = hipaa_agent("clinic")
        .route("/clinic")
        .post_prompt("Summarize.")
        .tool(lookup_tool("chart").phi().requires("verified"))
        .build()
        .expect("agent");
    let text = Agent::builder("desk")
        .route("/desk")
        .compliance(Compliance::HIPAA)
        .prompt_text("You answer the front desk phone.")
        .build()
        .expect("agent");
    let server = {
        let sink = kit.sink();
        let config = kit.config();
        TestServer::start_with(
            vec![pom, text],
            |_| {},
            move |runtime| runtime.audit(sink).records(config),
            reqwest::Client::builder(),
        )
        .await
    };
    for route in ["/clinic", "/desk"] {
        let swml = server.swml(route, "call-privacy").await;
        checker
            .check_document(&swml)
            .unwrap_or_else(|e| panic!("{route}: HIPAA SWML conforms: {e}\n{swml}"));
        let main = swml["sections"]["main"].as_array().expect("main");
        assert!(
            main.iter().all(|verb| verb.get("record_call").is_none()),
            "{route}: {swml}"
        );
        assert!(!swml.to_string().contains("record_call"), "{route}");
        let ai = main
            .iter()
            .find_map(|verb| verb.get("ai"))
            .expect("ai verb");
        // Records are on: the runtime takes the summary itself.
        assert!(ai["post_prompt_url"].is_string(), "{route}: {ai}");
        let prompt = &ai["prompt"];
        if route == "/clinic" {
            let sections = prompt["pom"].as_array().expect("pom");
            let privacy = sections
                .iter()
                .find(|s| s["title"] == "Privacy")
                .unwrap_or_else(|| panic!("a Privacy section: {prompt}"));
            let body = privacy["body"].as_str().unwrap_or_default();
            assert!(body.contains("verified"), "{body}");
        } else {
            let text = prompt["text"].as_str().expect("text prompt");
            assert!(
                text.starts_with("You answer the front desk phone."),
                "{text}"
            );
            assert!(text.contains("Privacy:"), "{text}");
        }
    }
    server.stop().await;
}

/// Dates as a transcript may carry them, each of which must be masked under HIPAA.
const DATES: &[&str] = &[
    "1984-03-12",
    "03/12/1984",
    "3/12/84",
    "12.03.1984",
    "1984/03/12",
    "March 12, 1984",
    "March 12th 1984",
    "Mar. 12, 1984",
    "12 March 1984",
    "the 12th of March, 1984",
    "12-Mar-1984",
    "12 Mar 84",
    "19840312",
    "2026-12-03 10:30",
    "December 3rd, 2026",
    "2026-12-03T10:30:00Z",
];

/// Identifiers every mode masks.
const IDENTIFIERS: &[&str] = &[
    "123-45-6789",
    "maria.lopez@example.com",
    "+1 555 777 0001",
    "4111 1111 1111 1111",
];

/// A summary and transcript carrying every date and identifier; returns the stored contents
/// (summary, transcript) as read back through the API, and what `on_summary` received.
async fn store_dated_call(modes: Compliance) -> (String, String, String, String) {
    let kit = RecordsKit::new().await;
    let token = kit.token("cleo.compliance", "compliance").await;
    let handed = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = handed.clone();
    let agent = Agent::builder("clinic")
        .compliance(modes)
        .prompt_section("Role", "You help the clinic's patients.")
        .post_prompt("Summarize.")
        .on_summary(move |summary, _ctx| {
            let seen = seen.clone();
            async move {
                *seen.lock().expect("lock") =
                    serde_json::to_string(&(summary.post_prompt_data, summary.call_log))
                        .unwrap_or_default();
                Ok(())
            }
        })
        .tool(
            Tool::untyped(
                "reschedule",
                "Move an appointment",
                json!({"type": "object", "properties": {"new_date": {"type": "string"}}}),
                |_a, ctx: CallContext| async move {
                    ctx.set_subject("pat_001").await?;
                    Ok(FunctionResult::new("Moved."))
                },
            )
            .phi()
            .requires("verified"),
        )
        .tool(Tool::untyped(
            "verify",
            "Verify",
            empty_schema(),
            |_a, ctx: CallContext| async move {
                ctx.session().set("verified", &true).await?;
                ctx.set_subject("pat_001").await?;
                Ok(FunctionResult::new("Verified."))
            },
        ))
        .build()
        .expect("agent");
    let server = hipaa_server(&kit, agent, false).await;
    let swml = server.swml("/", "call-dates").await;
    for (function, args) in [
        ("verify", json!({})),
        ("reschedule", json!({"new_date": "2026-12-10"})),
    ] {
        let token = token_for(&swml, function).expect("token");
        let (status, reply) = server
            .swaig("/", function, "call-dates", CALLER, args, Some(&token))
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert!(reply.get("error").is_none(), "{reply}");
    }
    let spoken: Vec<String> = DATES.iter().map(|d| format!("I said {d}.")).collect();
    let raw = format!(
        "Patient born {} moved the visit to {}; contact {}, SSN {}.",
        DATES[0], DATES[13], IDENTIFIERS[1], IDENTIFIERS[0]
    );
    let mut log: Vec<Value> = spoken
        .iter()
        .map(|line| json!({"role": "user", "content": line}))
        .collect();
    for identifier in IDENTIFIERS {
        log.push(json!({"role": "user", "content": format!("It is {identifier}.")}));
    }
    let mut body = summary_body("call-dates", CALLER, &raw, json!(log));
    // The LLM's parsed summary may use dates as keys.
    body["post_prompt_data"]["parsed"] = json!([{"visits": {"2026-12-03": "Dr. Lee"}}]);
    let (status, reply) = post_summary(&server, &swml, body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    let list = operator_request(
        &server,
        Method::GET,
        "/records?subject=pat_001",
        Auth::Bearer(&token),
        None,
    )
    .await;
    let records = list.body["records"].as_array().cloned().unwrap_or_default();
    let read = |kind: &'static str| {
        let id = records
            .iter()
            .find(|r| r["kind"] == kind)
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("a {kind} record: {records:?}"))
            .to_string();
        let server = &server;
        let token = token.clone();
        async move {
            let reply = operator_request(
                server,
                Method::GET,
                &format!("/records/{id}?purpose=qa"),
                Auth::Bearer(&token),
                None,
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            reply.body["content"].to_string()
        }
    };
    let summary = read("summary").await;
    let transcript = read("transcript").await;
    let tool_log = read("tool_log").await;
    let handed = handed.lock().expect("lock").clone();
    server.stop().await;
    (summary, transcript, tool_log, handed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hipaa_records_mask_every_date_and_identifier() {
    let (summary, transcript, tool_log, handed) = store_dated_call(Compliance::HIPAA).await;
    assert!(transcript.contains("I said"), "{transcript}");
    let mut leaks = Vec::new();
    for (what, text) in [
        ("summary", &summary),
        ("transcript", &transcript),
        ("tool_log", &tool_log),
        ("on_summary", &handed),
    ] {
        for needle in DATES.iter().chain(IDENTIFIERS) {
            if text.contains(needle) {
                leaks.push(format!("{what}: {needle:?}"));
            }
        }
    }
    assert!(leaks.is_empty(), "stored in clear under HIPAA: {leaks:#?}");
}

/// The common formats the masking is documented for (docs/records.md: `1984-03-12`,
/// `03/12/1984`, `March 12, 1984`, …) — the part of the above that must never regress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hipaa_records_mask_the_documented_date_formats_and_other_modes_keep_plain_dates() {
    let documented = [
        "1984-03-12",
        "03/12/1984",
        "March 12, 1984",
        "12 March 1984",
        "2026-12-03 10:30",
        "December 3rd, 2026",
        "12.03.1984",
    ];
    let (summary, transcript, tool_log, handed) = store_dated_call(Compliance::HIPAA).await;
    for text in [&summary, &transcript, &tool_log, &handed] {
        for date in documented.iter().chain(IDENTIFIERS) {
            assert!(!text.contains(date), "{date:?} kept under HIPAA: {text}");
        }
        assert!(!text.contains("2026-12-10"), "tool arguments too: {text}");
    }
    // Outside HIPAA an appointment date is not an identifier and stays readable (so the check
    // above can fail); identifiers are masked in every mode.
    let (summary, transcript, _, _) = store_dated_call(Compliance::NONE).await;
    assert!(transcript.contains("December 3rd, 2026"), "{transcript}");
    assert!(summary.contains("2026-12-03"), "{summary}");
    for text in [&summary, &transcript] {
        for identifier in IDENTIFIERS {
            assert!(!text.contains(identifier), "{identifier:?} kept: {text}");
        }
    }
}

/// The post-prompt's `parsed` form is JSON the LLM wrote; a date can be a key there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hipaa_records_mask_dates_used_as_json_keys() {
    let (summary, _, _, handed) = store_dated_call(Compliance::HIPAA).await;
    for text in [&summary, &handed] {
        assert!(!text.contains("2026-12-03"), "a date as a JSON key: {text}");
    }
}
