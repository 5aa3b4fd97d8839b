//! Every builder and every action of this crate renders JSON that the official SWML schema
//! accepts; and the checker itself rejects what the schema forbids (so these tests can fail).

use serde_json::{json, Value};
use voxguard_swml::conformance::SchemaChecker;
use voxguard_swml::*;

fn checker() -> SchemaChecker {
    SchemaChecker::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/swml-schema.json"
    ))
    .expect("schema loads")
}

fn full_ai() -> Ai {
    let mut params = serde_json::Map::new();
    params.insert("end_of_speech_timeout".into(), json!(700));
    let mut global = serde_json::Map::new();
    global.insert("company".into(), json!("Acme Bank"));
    Ai {
        prompt: Prompt::Pom {
            pom: vec![
                PomSection::new("Role").body("You are a bank assistant."),
                PomSection::new("Rules")
                    .bullets(["Never read out card numbers", "Verify before sharing"])
                    .subsection(PomSection::new("Escalation").bullet("Offer a human")),
                PomSection::default().normalized(),
            ],
            temperature: Some(0.3),
        },
        post_prompt: Some(PostPrompt {
            text: "Summarize the call as JSON.".into(),
        }),
        post_prompt_url: Some("https://u:p@agent.example.com/post_prompt?__token=abc".into()),
        params,
        languages: vec![Language::new("English", "en-US", "rime.spore")],
        hints: vec![
            "PIN".into(),
            Hint::Pattern {
                hint: "AI Agent".into(),
                pattern: "AI\\s+Agent".into(),
                replace: "A.I. Agent".into(),
                ignore_case: Some(true),
            },
        ],
        global_data: global,
        swaig: Some(Swaig {
            defaults: Some(SwaigDefaults {
                web_hook_url: Some("https://u:p@agent.example.com/swaig".into()),
            }),
            functions: vec![SwaigFunction {
                function: "get_balance".into(),
                description: "Read the balance".into(),
                parameters: json!({"type": "object", "properties": {
                    "account": {"type": "string", "pattern": "^[0-9]{10}$", "description": "Account"},
                    "amount": {"type": "number", "description": "Amount. Must be greater than 0."},
                    "kind": {"type": "string", "enum": ["a", "b"]}
                }, "required": ["account"]}),
                web_hook_url: Some("https://u:p@agent.example.com/swaig?__token=t".into()),
                fillers: Some(serde_json::from_value(json!({"en-US": ["one moment"]})).unwrap()),
                wait_file: Some("https://cdn.example.com/wait.mp3".into()),
                meta_data: None,
                meta_data_token: Some("scope".into()),
                active: Some(false),
            }],
        }),
    }
}

#[test]
fn a_document_using_every_builder_validates() {
    let document = Document::new(vec![
        Verb::Answer(Answer {
            max_duration: Some(3600),
        }),
        Verb::RecordCall(RecordCall {
            control_id: Some("rec1".into()),
            stereo: Some(true),
            format: Some("wav".into()),
            direction: Some("both".into()),
            beep: Some(false),
        }),
        Verb::Ai(Box::new(full_ai())),
        Verb::StopRecordCall(StopRecordCall {
            control_id: Some("rec1".into()),
        }),
        Verb::Hangup(Hangup::default()),
    ]);
    let value = serde_json::to_value(&document).unwrap();
    checker().check_document(&value).unwrap();
}

#[test]
fn a_text_prompt_validates() {
    let ai = Ai {
        prompt: Prompt::Text {
            text: "You are helpful.".into(),
            temperature: None,
        },
        ..Ai::default()
    };
    let value = serde_json::to_value(Document::new(vec![Verb::Ai(Box::new(ai))])).unwrap();
    checker().check_document(&value).unwrap();
}

#[test]
fn every_action_builder_validates() {
    let mut pay = Pay::new("https://pay.example.com/connector");
    pay.charge_amount = Some("29.99".into());
    pay.currency = Some("usd".into());
    pay.description = Some("Invoice 42".into());
    pay.max_attempts = Some(3);
    pay.language = Some("en-US".into());
    pay.parameters.push(PayParameter {
        name: "merchant".into(),
        value: "m1".into(),
    });
    let result = FunctionResult::new("done")
        .set_global_data(json!({"verified": true}))
        .unset_global_data(["pending"])
        .toggle_functions([("get_balance", true), ("transfer_funds", false)])
        .hangup()
        .say("Goodbye")
        .stop()
        .set_meta_data(json!({"attempts": 1}))
        .user_input("I want to pay")
        .connect("+15550001111")
        .connect_with(Connect {
            to: "sip:desk@example.com".into(),
            from: Some("+15550002222".into()),
            timeout: Some(30),
        })
        .transfer("https://agent.example.com/other")
        .pay(pay)
        .record_call(RecordCall::default())
        .stop_record_call(None)
        .post_process(true);
    let value = serde_json::to_value(&result).unwrap();
    assert_eq!(value["action"].as_array().unwrap().len(), 14);
    checker().check_response(&value).unwrap();
}

#[test]
fn the_checker_rejects_what_the_schema_forbids() {
    let checker = checker();
    // Unknown verb.
    let bad: Value = json!({"version": "1.0.0", "sections": {"main": [{"teleport": {}}]}});
    assert!(checker.check_document(&bad).is_err());
    // A number range in SWAIG parameters is not part of the platform schema.
    let mut ai = full_ai();
    ai.swaig.as_mut().unwrap().functions[0].parameters =
        json!({"type": "object", "properties": {"amount": {"type": "number", "minimum": 0}}});
    let value = serde_json::to_value(Document::new(vec![Verb::Ai(Box::new(ai))])).unwrap();
    assert!(checker.check_document(&value).is_err());
    // An unknown action, and a SWML action with an extra key.
    assert!(checker.check_action(&json!({"teleport": true})).is_err());
    assert!(checker
        .check_action(
            &json!({"SWML": {"version": "1.0.0", "sections": {"main": []}}, "transfer": "true"})
        )
        .is_err());
    assert!(checker.check_response(&json!({"action": []})).is_err());
}
