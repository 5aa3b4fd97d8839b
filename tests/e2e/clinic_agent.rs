//! The reference clinic agent (`examples/clinic_agent.rs`) as a real child process, like the
//! bank agent: knowledge-based verification with a lockout that outlives the call, PHI tools
//! that answer only the verified patient, HIPAA SWML, and the call's summary and transcript
//! stored under the verified patient, listed and read through the operator API.
//!
//! It must not link the example in-process: the agent runs as the binary operators run, with
//! its documented environment, and operators are added to its records database beforehand.

use crate::util::{
    clinic_operators, start_clinic_agent, swml_schema_path, ClinicAgent, ClinicCall,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use voxguard_swml::conformance::SchemaChecker;

const MARIA: &str = "+15557770001";
const AHMED: &str = "+15557770002";
const MARIA_ANSWERS: (&str, &str) = ("1984-03-12", "6789");
const AHMED_ANSWERS: (&str, &str) = ("1990-11-02", "1234");
const PHI_TOOLS: [&str; 3] = [
    "get_appointments",
    "reschedule_appointment",
    "request_prescription_refill",
];
const NOT_VERIFIED_REASON: &str = "verification_required";
const LOCKED: &str = "For your security, verification is temporarily locked after too many attempts. Please try again later.";

fn answers((dob, last_four): (&str, &str)) -> Value {
    json!({ "dob": dob, "last_four_ssn": last_four })
}

fn ai(swml: &Value) -> &Value {
    swml["sections"]["main"]
        .as_array()
        .and_then(|verbs| verbs.iter().find_map(|verb| verb.get("ai")))
        .expect("an ai verb")
}

/// A policy refusal with HTTP 200, `error: reason` and no action.
fn assert_refused(status: StatusCode, reply: &Value, reason: &str) {
    crate::util::assert_refusal(status, reply, reason);
}

async fn started() -> (tempfile::TempDir, ClinicAgent) {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_clinic_agent(dir.path(), &[]).await;
    (dir, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinic_swml_is_hipaa_shaped_and_phi_tools_wait_for_verification() {
    let (_dir, agent) = started().await;
    let call = ClinicCall::start(&agent, "call-swml", MARIA).await;
    SchemaChecker::from_path(swml_schema_path())
        .expect("schema loads")
        .check_document(&call.swml)
        .expect("clinic SWML conforms");
    assert!(
        !call.swml.to_string().contains("record_call"),
        "{}",
        call.swml
    );
    let ai = ai(&call.swml);
    let pom = ai["prompt"]["pom"].as_array().expect("a POM prompt");
    assert!(pom.iter().any(|s| s["title"] == "Privacy"), "{pom:?}");
    assert!(ai["post_prompt_url"].is_string());
    let functions = ai["SWAIG"]["functions"].as_array().expect("functions");
    for function in functions {
        let name = function["function"].as_str().unwrap_or_default();
        let url = function["web_hook_url"].as_str().unwrap_or_default();
        assert!(url.contains("__token="), "{name} carries a token");
        let inactive = function.get("active") == Some(&json!(false));
        assert_eq!(inactive, PHI_TOOLS.contains(&name), "{name}: {function}");
    }
    // Before verification, every PHI tool is refused without running.
    for (tool, args) in [
        ("get_appointments", json!({})),
        (
            "reschedule_appointment",
            json!({"appointment_id": "APT-1001", "new_date": "2027-01-05"}),
        ),
        (
            "request_prescription_refill",
            json!({"medication": "lisinopril"}),
        ),
    ] {
        let (status, reply) = call.invoke(tool, args).await;
        assert_refused(status, &reply, NOT_VERIFIED_REASON);
        assert!(!reply.to_string().contains("Dr. Lee"), "{reply}");
    }
    agent.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_answers_lock_the_patient_out_across_calls() {
    let (_dir, agent) = started().await;
    let call = ClinicCall::start(&agent, "call-lockout-1", AHMED).await;
    let wrong = answers(("1990-02-11", "1234"));
    assert_eq!(
        call.say("verify_patient", wrong.clone()).await,
        "That didn't match our records. You have 2 attempts left."
    );
    // Maria's answers do not open Ahmed's record.
    assert_eq!(
        call.say("verify_patient", answers(MARIA_ANSWERS)).await,
        "That didn't match our records. You have one attempt left."
    );
    let (status, reply) = call.invoke("verify_patient", wrong).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["response"], LOCKED, "{reply}");
    assert!(
        reply.to_string().contains("hangup"),
        "the call ends: {reply}"
    );
    // Locked: even the right answers are refused, on this call and on the next one.
    let (_, reply) = call.invoke("verify_patient", answers(AHMED_ANSWERS)).await;
    assert_eq!(reply["response"], LOCKED, "{reply}");
    let (status, reply) = call.invoke("get_appointments", json!({})).await;
    assert_refused(status, &reply, NOT_VERIFIED_REASON);
    let again = ClinicCall::start(&agent, "call-lockout-2", AHMED).await;
    let (_, reply) = again.invoke("verify_patient", answers(AHMED_ANSWERS)).await;
    assert_eq!(reply["response"], LOCKED, "{reply}");
    assert!(!reply.to_string().contains("Ahmed"), "{reply}");
    let (status, reply) = again.invoke("get_appointments", json!({})).await;
    assert_refused(status, &reply, NOT_VERIFIED_REASON);
    // Another patient is not affected.
    let maria = ClinicCall::start(&agent, "call-lockout-3", MARIA).await;
    assert_eq!(
        maria.say("verify_patient", answers(MARIA_ANSWERS)).await,
        "Thank you, Maria. You're verified."
    );
    agent.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_patient_hears_their_appointment_and_the_summary_is_stored_under_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = clinic_operators(
        dir.path(),
        &[
            ("ann.auditor", "auditor"),
            ("cleo.compliance", "compliance"),
        ],
    )
    .await;
    let (auditor, compliance) = (&tokens[0], &tokens[1]);
    let agent = start_clinic_agent(dir.path(), &[]).await;
    let call = ClinicCall::start(&agent, "call-maria-1", MARIA).await;
    let (status, reply) = call.invoke("verify_patient", answers(MARIA_ANSWERS)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["response"], "Thank you, Maria. You're verified.");
    let toggled = reply["action"].to_string();
    for tool in PHI_TOOLS {
        assert!(toggled.contains(tool), "{tool} switched on: {reply}");
    }
    assert_eq!(
        call.say("get_appointments", json!({})).await,
        "Your next appointment is with Dr. Lee on 2026-12-03 10:30 (appointment APT-1001)."
    );
    // Moving it needs a read-back, then the confirmation.
    let moved = json!({"appointment_id": "APT-1001", "new_date": "2027-01-05"});
    let (status, reply) = call.invoke("reschedule_appointment", moved.clone()).await;
    assert_refused(status, &reply, "confirmation_required");
    assert_eq!(
        reply["response"],
        "You're about to move appointment APT-1001 to 2027-01-05. Please say confirm to proceed."
    );
    let mut confirmed = moved;
    confirmed["confirmed"] = json!(true);
    assert_eq!(
        call.say("reschedule_appointment", confirmed).await,
        "Done: appointment APT-1001 is now on 2027-01-05 at 10:00."
    );
    assert_eq!(
        call.say("get_appointments", json!({})).await,
        "Your next appointment is with Dr. Lee on 2027-01-05 10:00 (appointment APT-1001)."
    );
    // Ahmed's appointment is not Maria's to move.
    let (status, reply) = call
        .invoke(
            "reschedule_appointment",
            json!({"appointment_id": "APT-2001", "new_date": "2027-01-06", "confirmed": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(!reply.to_string().contains("Done"), "{reply}");
    assert!(call
        .say(
            "request_prescription_refill",
            json!({"medication": "lisinopril"})
        )
        .await
        .contains("refill request"));
    let (status, reply) = call
        .summary(
            "Maria moved her appointment with Dr. Lee and asked for a lisinopril refill.",
            json!([
                {"role": "assistant", "content": "Thank you for calling Example Clinic."},
                {"role": "user", "content": "I'd like to move my knee follow-up."},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    // The auditor lists the patient's records (metadata only) ...
    let (status, listed) = agent
        .records(Method::GET, "/records?subject=pat_001", auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let records = listed["records"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    for kind in ["summary", "transcript", "tool_log"] {
        assert!(kinds.contains(&kind), "a {kind} under pat_001: {kinds:?}");
    }
    assert!(records.iter().all(|r| r["agent"] == "clinic"));
    // ... the verification itself and the later PHI calls are logged under the patient.
    assert!(
        kinds.iter().filter(|k| **k == "tool_log").count() >= 5,
        "{kinds:?}"
    );
    // Nothing of this call is left under the call's own subject.
    let (_, by_call) = agent
        .records(Method::GET, "/records?subject=call:call-maria-1", auditor)
        .await;
    assert_eq!(by_call["records"], json!([]), "{by_call}");
    // A new render of the same call id is a new session: not verified there (and what it
    // leaves is the call's own until someone verifies).
    let rerender = ClinicCall::start(&agent, "call-maria-1", MARIA).await;
    let (status, reply) = rerender.invoke("get_appointments", json!({})).await;
    assert_refused(status, &reply, NOT_VERIFIED_REASON);
    // ... and may not read them; compliance may.
    let summary = records
        .iter()
        .find(|r| r["kind"] == "summary")
        .and_then(|r| r["id"].as_str())
        .expect("summary id")
        .to_string();
    let path = format!("/records/{summary}?purpose=care%20coordination");
    let (status, reply) = agent.records(Method::GET, &path, auditor).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    let (status, reply) = agent.records(Method::GET, &path, compliance).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let raw = reply["content"]["raw"].as_str().unwrap_or_default();
    assert!(raw.contains("lisinopril refill"), "{raw}");
    let (status, _) = agent.terminate().await;
    assert!(status.success(), "clean exit: {status:?}");
}

/// The last four digits of the SSN are the clinic's verification answer: a transcript that
/// carries them hands whoever may read transcripts the means to pass as the patient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_answers_never_reach_a_stored_transcript() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = clinic_operators(dir.path(), &[("cleo.compliance", "compliance")]).await;
    let agent = start_clinic_agent(dir.path(), &[]).await;
    let call = ClinicCall::start(&agent, "call-answers", MARIA).await;
    call.say("verify_patient", answers(MARIA_ANSWERS)).await;
    let (status, reply) = call
        .summary(
            "Maria was verified.",
            json!([
                {"role": "assistant", "content": "What is your date of birth and the last four of your social?"},
                {"role": "user", "content": "March 12, 1984, and the last four of my social are 6789."},
                {"role": "user", "content": "My full social is 123-45-6789."},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, listed) = agent
        .records(
            Method::GET,
            "/records?subject=pat_001&kind=transcript",
            &tokens[0],
        )
        .await;
    let id = listed["records"][0]["id"]
        .as_str()
        .expect("transcript")
        .to_string();
    let (status, reply) = agent
        .records(
            Method::GET,
            &format!("/records/{id}?purpose=qa"),
            &tokens[0],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let text = reply["content"].to_string();
    assert!(!text.contains("1984"), "{text}");
    assert!(
        !text.contains("6789"),
        "the verification answer is stored: {text}"
    );
    agent.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinic_agent_refuses_to_start_without_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = crate::util::bank_process::ChildGuard(
        crate::util::clinic_agent_command(dir.path(), &[("VOXGUARD_RECORDS", "off")])
            .spawn()
            .expect("spawn"),
    );
    let stderr = crate::util::bank_process::drain(child.0.stderr.take().expect("stderr"));
    let status = crate::util::bank_process::wait_for_exit(&mut child.0)
        .await
        .expect("the clinic agent exits");
    assert!(!status.success(), "{status:?}");
    let stderr = stderr.join().unwrap_or_default();
    assert!(stderr.contains("VOXGUARD_RECORDS_KEY"), "{stderr}");
    assert!(stderr.contains("HIPAA"), "{stderr}");
}
