//! Reading documents back: what voxguard renders round-trips, and a document another SWML
//! producer rendered reads, unknown fields and verbs included, without loosening the verbs
//! voxguard models.

use serde_json::json;

use super::*;
use crate::{Ai, Hint, Language, PomSection, PostPrompt, Prompt, Swaig, SwaigDefaults};
use crate::{PayPrompt, PayStep, PostalCode, SwaigFunction, FILLER_LANGUAGES};

/// A document with every verb and every `ai` field voxguard renders.
fn rendered() -> Document {
    let mut params = Map::new();
    params.insert("end_of_speech_timeout".into(), json!(700));
    let mut fillers = Map::new();
    fillers.insert(FILLER_LANGUAGES[0].into(), json!(["One moment."]));
    let ai = Ai {
        prompt: Prompt::Pom {
            pom: vec![PomSection::new("Role")
                .body("You are a bank assistant.")
                .subsection(PomSection::new("Rules").bullet("Verify first"))],
            temperature: Some(0.3),
        },
        post_prompt: Some(PostPrompt {
            text: "Summarize the call.".into(),
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
        global_data: Map::new(),
        swaig: Some(Swaig {
            defaults: Some(SwaigDefaults {
                web_hook_url: Some("https://u:p@agent.example.com/swaig".into()),
            }),
            functions: vec![SwaigFunction {
                function: "get_balance".into(),
                description: "Read the balance".into(),
                parameters: json!({"type": "object", "properties": {}}),
                web_hook_url: Some("https://u:p@agent.example.com/swaig?__token=t".into()),
                fillers: Some(fillers),
                wait_file: None,
                meta_data: None,
                meta_data_token: Some("scope".into()),
                active: Some(false),
            }],
        }),
    };
    Document::new(vec![
        Verb::Answer(Answer {
            max_duration: Some(3600),
        }),
        Verb::RecordCall(RecordCall {
            control_id: Some("rec".into()),
            stereo: Some(true),
            format: Some("wav".into()),
            direction: None,
            beep: None,
        }),
        Verb::Ai(Box::new(ai)),
        Verb::StopRecordCall(StopRecordCall {
            control_id: Some("rec".into()),
        }),
        Verb::Connect(Connect {
            to: "+15550001111".into(),
            from: None,
            timeout: Some(30),
        }),
        Verb::Transfer(Transfer {
            dest: "https://example.com/next".into(),
        }),
        Verb::Pay(Box::new(
            Pay::new("https://pay.example.com/connector")
                .charge_amount("12.50")
                .max_attempts(3)
                .security_code(true)
                .postal_code(PostalCode::Skip)
                .prompt(
                    PayPrompt::new(PayStep::PaymentCardNumber)
                        .attempts([2])
                        .say("Your card number, please."),
                ),
        )),
        Verb::Hangup(Hangup::default()),
    ])
}

#[test]
fn a_rendered_document_round_trips() {
    let document = rendered();
    let text = serde_json::to_string(&document).unwrap();
    let read: Document = serde_json::from_str(&text).unwrap();
    assert_eq!(read, document);
    assert_eq!(serde_json::to_string(&read).unwrap(), text);
    assert!(read.verbs().all(|verb| !matches!(verb, Verb::Other(_))));
    assert_eq!(
        read.ai().and_then(|ai| ai.post_prompt_url.as_deref()),
        Some("https://u:p@agent.example.com/post_prompt?__token=abc")
    );
}

#[test]
fn a_document_from_another_producer_reads_and_writes_back_its_unknown_verbs() {
    // No `version`; verbs voxguard does not emit; fields it does not model at every level;
    // a function without `parameters` (a DataMap function of another SDK).
    let foreign = json!({"sections": {
        "main": [
            {"play": {"url": "say:Welcome"}},
            {"answer": {"max_duration": 600, "codecs": "PCMU"}},
            {"ai": {
                "prompt": {"text": "You help.", "top_p": 0.9, "contexts": {"default": {}}},
                "pronounce": [{"replace": "SW", "with": "SignalWire"}],
                "languages": [{"name": "English", "code": "en-US", "voice": "rime.spore", "engine": "rime"}],
                "SWAIG": {
                    "defaults": {"web_hook_url": "https://u:p@sdk.example.com/swaig"},
                    "native_functions": ["check_time"],
                    "includes": [{"url": "https://remote.example.com", "functions": ["f"]}],
                    "functions": [
                        {"function": "lookup", "description": "Look up", "secure": true,
                         "parameters": {"type": "object", "properties": {}},
                         "web_hook_url": "https://u:p@sdk.example.com/swaig?token=x"},
                        {"function": "weather", "description": "Weather",
                         "data_map": {"webhooks": []}}
                    ]
                }
            }},
            {"hangup": {}}
        ],
        "after": [{"sleep": 1000}]
    }});
    let document: Document = serde_json::from_value(foreign).unwrap();
    assert_eq!(document.version, SWML_VERSION);
    let Verb::Other(play) = &document.main()[0] else {
        panic!("play reads as an unmodeled verb: {:?}", document.main()[0]);
    };
    assert_eq!(play.name(), "play");
    assert_eq!(play.params(), &json!({"url": "say:Welcome"}));
    assert_eq!(
        document.main()[1],
        Verb::Answer(Answer {
            max_duration: Some(600)
        })
    );
    let ai = document.ai().expect("the ai verb");
    let functions = &ai.swaig.as_ref().expect("SWAIG").functions;
    assert_eq!(functions.len(), 2);
    assert_eq!(
        functions[0].web_hook_url.as_deref(),
        Some("https://u:p@sdk.example.com/swaig?token=x")
    );
    assert_eq!(functions[1].parameters, Value::Null);
    // Unknown verbs write back as they came; the absent `parameters` stays absent.
    let written = serde_json::to_value(&document).unwrap();
    assert_eq!(
        written["sections"]["main"][0],
        json!({"play": {"url": "say:Welcome"}})
    );
    assert_eq!(written["sections"]["after"], json!([{"sleep": 1000}]));
    assert!(
        written["sections"]["main"][2]["ai"]["SWAIG"]["functions"][1]
            .get("parameters")
            .is_none()
    );
}

#[test]
fn a_modeled_verb_in_another_form_is_an_error_not_an_unmodeled_verb() {
    for verb in [
        json!({"connect": {"parallel": [{"to": "+15550001111"}]}}),
        json!({"transfer": {}}),
        json!({"answer": {"max_duration": "forever"}}),
        json!({"play": {}, "sleep": 1}),
        json!({}),
    ] {
        let document = json!({"version": "1.0.0", "sections": {"main": [verb]}});
        assert!(
            serde_json::from_value::<Document>(document.clone()).is_err(),
            "{document}"
        );
    }
}

#[test]
fn every_modeled_verb_is_listed_as_modeled() {
    // The exhaustive match stops the build when a verb is added without listing it.
    fn modeled(verb: &Verb) -> bool {
        match verb {
            Verb::Answer(_)
            | Verb::RecordCall(_)
            | Verb::StopRecordCall(_)
            | Verb::Ai(_)
            | Verb::Connect(_)
            | Verb::Transfer(_)
            | Verb::Pay(_)
            | Verb::Hangup(_) => true,
            Verb::Other(_) => false,
        }
    }
    // Every modeled verb must appear in `rendered()` too.
    let document = rendered();
    let mut names: Vec<String> = document
        .main()
        .iter()
        .filter(|verb| modeled(verb))
        .filter_map(|verb| {
            let value = serde_json::to_value(verb).ok()?;
            value.as_object()?.keys().next().cloned()
        })
        .collect();
    names.sort();
    let mut listed = MODELED_VERBS.to_vec();
    listed.sort_unstable();
    assert_eq!(names, listed);
}
