//! Knowledge-based verification (date of birth + last four of the SSN) shares the PIN's
//! attempt and lockout machinery, and `security_rules` renders its prompt sections.

use std::sync::Arc;

use crate::util::{token_for, TestServer};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use voxguard::guard::{PinVault, SecretHash};
use voxguard::prelude::*;

const CALLER: &str = "+15557654321";
const SUBJECT: &str = "cust_kba";

#[derive(Deserialize, JsonSchema)]
struct Knowledge {
    /// Date of birth, YYYY-MM-DD.
    #[schemars(extend("format" = "iso-date"))]
    dob: String,
    /// Last four digits of the SSN.
    #[schemars(regex(pattern = r"^[0-9]{4}$"))]
    ssn_last4: String,
}

#[derive(Deserialize, JsonSchema)]
struct Pin {
    /// The PIN.
    #[schemars(regex(pattern = r"^[0-9]{4,8}$"))]
    pin: String,
}

#[derive(Deserialize, JsonSchema)]
struct Nothing {}

struct Secrets {
    dob: SecretHash,
    ssn: SecretHash,
    pin: SecretHash,
}

fn agent() -> Agent {
    // Cheap argon2 parameters: these tests are about the attempt machinery, not hash cost.
    let vault = PinVault::with_params(8, 1, 1).expect("params");
    let secrets = Arc::new(Secrets {
        dob: vault.hash("1980-02-29").expect("hash"),
        ssn: vault.hash("6789").expect("hash"),
        pin: vault.hash("2468").expect("hash"),
    });
    let kba = secrets.clone();
    let pin = secrets;
    Agent::builder("kba")
        .prompt_section("Role", "You verify callers.")
        .security_rules("account questions for Example Credit Union members")
        .verification(VerificationPolicy::new().max_attempts(3).flag("verified"))
        .tool(Tool::typed(
            "verify_identity",
            "Verify the caller with date of birth and SSN last four",
            move |args: Knowledge, ctx: CallContext| {
                let secrets = kba.clone();
                async move {
                    let verification = ctx
                        .verify_secrets(
                            SUBJECT,
                            &[
                                (&args.dob, Some(&secrets.dob)),
                                (&args.ssn_last4, Some(&secrets.ssn)),
                            ],
                        )
                        .await?;
                    Ok(verification.into_result())
                }
            },
        ))
        .tool(Tool::typed(
            "verify_pin",
            "Verify the caller with a PIN",
            move |args: Pin, ctx: CallContext| {
                let secrets = pin.clone();
                async move {
                    Ok(ctx
                        .verify_secret(SUBJECT, &args.pin, Some(&secrets.pin))
                        .await?
                        .into_result())
                }
            },
        ))
        .tool(
            Tool::typed(
                "account_summary",
                "Summarize the account",
                |_: Nothing, _ctx: CallContext| async {
                    Ok(FunctionResult::new("Your account is in good standing."))
                },
            )
            .requires("verified"),
        )
        .build()
        .expect("agent builds")
}

async fn call(
    server: &TestServer,
    swml: &Value,
    call_id: &str,
    function: &str,
    args: Value,
) -> Value {
    let token = token_for(swml, function).expect("token");
    let (status, body) = server
        .swaig("/", function, call_id, CALLER, args, Some(&token))
        .await;
    assert!(status.is_success(), "{status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_answers_must_match_and_success_unlocks_the_policy() {
    let server = TestServer::start(vec![agent()], |_| {}).await;
    let swml = server.swml("/", "kba-1").await;
    let summary = call(&server, &swml, "kba-1", "account_summary", json!({})).await;
    assert_eq!(summary["error"], "verification_required");

    // One right answer and one wrong one is a failure.
    let wrong = call(
        &server,
        &swml,
        "kba-1",
        "verify_identity",
        json!({"dob": "1980-02-29", "ssn_last4": "0000"}),
    )
    .await;
    assert!(
        wrong["response"]
            .as_str()
            .unwrap()
            .contains("2 attempts left"),
        "{wrong}"
    );
    let summary = call(&server, &swml, "kba-1", "account_summary", json!({})).await;
    assert_eq!(summary["error"], "verification_required");

    let right = call(
        &server,
        &swml,
        "kba-1",
        "verify_identity",
        json!({"dob": "1980-02-29", "ssn_last4": "6789"}),
    )
    .await;
    assert_eq!(
        right["response"], "Thank you. Your identity is verified.",
        "{right}"
    );
    assert_eq!(right["action"][0]["set_global_data"]["verified"], true);
    let summary = call(&server, &swml, "kba-1", "account_summary", json!({})).await;
    assert_eq!(summary["response"], "Your account is in good standing.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_and_knowledge_failures_share_one_counter_across_calls() {
    let server = TestServer::start(vec![agent()], |_| {}).await;
    // Two wrong PINs on one call, one wrong knowledge answer on another: the subject is locked.
    let first = server.swml("/", "kba-a").await;
    call(
        &server,
        &first,
        "kba-a",
        "verify_pin",
        json!({"pin": "1111"}),
    )
    .await;
    call(
        &server,
        &first,
        "kba-a",
        "verify_pin",
        json!({"pin": "2222"}),
    )
    .await;
    let second = server.swml("/", "kba-b").await;
    let third = call(
        &server,
        &second,
        "kba-b",
        "verify_identity",
        json!({"dob": "1990-01-01", "ssn_last4": "6789"}),
    )
    .await;
    assert!(
        third["response"].as_str().unwrap().contains("locked"),
        "{third}"
    );
    assert_eq!(third["action"][0]["hangup"], true, "{third}");
    // Even the right answers are refused while locked, and nothing is unlocked.
    let right = call(
        &server,
        &second,
        "kba-b",
        "verify_identity",
        json!({"dob": "1980-02-29", "ssn_last4": "6789"}),
    )
    .await;
    assert!(
        right["response"].as_str().unwrap().contains("locked"),
        "{right}"
    );
    let summary = call(&server, &second, "kba-b", "account_summary", json!({})).await;
    assert_eq!(summary["error"], "verification_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_date_is_refused_before_any_attempt_is_counted() {
    let server = TestServer::start(vec![agent()], |_| {}).await;
    let swml = server.swml("/", "kba-date").await;
    for _ in 0..5 {
        let bad = call(
            &server,
            &swml,
            "kba-date",
            "verify_identity",
            json!({"dob": "1981-02-29", "ssn_last4": "6789"}),
        )
        .await;
        assert_eq!(bad["error"], "invalid_argument", "{bad}");
        assert_eq!(bad["field"], "dob");
    }
    // Validation refusals spent no attempts: the right answers still verify.
    let right = call(
        &server,
        &swml,
        "kba-date",
        "verify_identity",
        json!({"dob": "1980-02-29", "ssn_last4": "6789"}),
    )
    .await;
    assert_eq!(
        right["response"], "Thank you. Your identity is verified.",
        "{right}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_rules_render_their_prompt_sections() {
    let server = TestServer::start(vec![agent()], |_| {}).await;
    let swml = server.swml("/", "kba-prompt").await;
    let ai = swml["sections"]["main"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|verb| verb.get("ai"))
        .expect("ai verb");
    let titles: Vec<&str> = ai["prompt"]["pom"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Role",
            "Security rules",
            "Confirmation protocol",
            "Topic boundaries"
        ]
    );
    let text = ai["prompt"].to_string();
    for needle in [
        "Never reveal",
        "regular caller",
        "confirmed set to true",
        "Example Credit Union members",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Attempt counters at rest
// ---------------------------------------------------------------------------------------------

/// An agent that, like many, verifies unknown callers under their caller number.
fn by_caller_agent() -> Agent {
    let vault = PinVault::with_params(8, 1, 1).expect("params");
    let pin = Arc::new(vault.hash("2468").expect("hash"));
    Agent::builder("by_caller")
        .prompt_section("Role", "You verify callers.")
        .verification(VerificationPolicy::new().max_attempts(3).flag("verified"))
        .tool(Tool::typed(
            "verify_pin",
            "Verify the caller with a PIN",
            move |args: Pin, ctx: CallContext| {
                let pin = pin.clone();
                async move {
                    let subject = ctx.caller_number().unwrap_or("unknown").to_string();
                    Ok(ctx
                        .verify_secret(&subject, &args.pin, Some(&pin))
                        .await?
                        .into_result())
                }
            },
        ))
        .build()
        .expect("agent builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_holds_no_caller_number_in_clear() {
    const NUMBER: &str = "+15551234567";
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        voxguard::store::SqliteStore::open_in_dir(dir.path(), std::time::Duration::from_secs(600))
            .await
            .expect("sqlite store"),
    );
    let server = {
        let store = store.clone();
        TestServer::start_with(
            vec![by_caller_agent()],
            |_| {},
            move |runtime| runtime.store(store),
            reqwest::Client::builder(),
        )
        .await
    };
    let swml = server.swml("/", "rest-1").await;
    let token = token_for(&swml, "verify_pin").expect("token");
    for pin in ["1111", "2222"] {
        let (status, body) = server
            .swaig(
                "/",
                "verify_pin",
                "rest-1",
                NUMBER,
                json!({ "pin": pin }),
                Some(&token),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
        assert!(
            body["response"]
                .as_str()
                .is_some_and(|s| s.starts_with("That didn't match")),
            "{body}"
        );
    }
    // The counter is there (under its keyed hash), so the failures were stored...
    let key = VerificationPolicy::new()
        .attempt_key(&server.keys, "by_caller", NUMBER)
        .expect("attempt key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let status = voxguard::store::AttemptStore::attempt_status(&*store, &key, now)
        .await
        .expect("status");
    assert_eq!(status.failures, 2);
    // ...yet no file of the database (WAL and shared memory included) holds the number.
    store.close().await;
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).expect("read dir") {
        let path = entry.expect("entry").path();
        // SQLite may remove its WAL or shared-memory file between the listing and the read
        // (the last connection closing): a file that is gone holds nothing.
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("read {}: {e}", path.display()),
        };
        files += 1;
        assert!(
            !bytes.windows(10).any(|w| w == b"5551234567"),
            "{} holds the caller number",
            path.display()
        );
    }
    assert!(files >= 1);
}
