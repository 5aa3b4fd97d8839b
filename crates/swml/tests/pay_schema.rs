//! The `pay` verb against the official SWML schema: a `pay` with every field the schema gives it
//! and every prompt form it allows validates, as a document and as a SWAIG action; the lists
//! this crate models are the lists the schema writes down; and the checker rejects the string
//! counts and flags another SDK sends (so these tests can fail).

use serde_json::{json, Value};
use voxguard_swml::conformance::SchemaChecker;
use voxguard_swml::*;

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/swml-schema.json"
);

fn checker() -> SchemaChecker {
    SchemaChecker::from_path(SCHEMA).expect("schema loads")
}

fn schema() -> Value {
    let text = std::fs::read_to_string(SCHEMA).expect("schema reads");
    serde_json::from_str(&text).expect("schema is JSON")
}

/// `$defs/Pay`'s properties.
fn pay_properties(schema: &Value) -> &serde_json::Map<String, Value> {
    schema["$defs"]["Pay"]["properties"]["pay"]["properties"]
        .as_object()
        .expect("Pay properties")
}

/// The values a schema description lists, one per line as ``- `value`…``.
fn listed(description: &Value) -> Vec<String> {
    description
        .as_str()
        .expect("a description")
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

fn words<T: Copy>(all: &[T], as_str: fn(T) -> &'static str) -> Vec<String> {
    all.iter().map(|&value| as_str(value).to_string()).collect()
}

/// Every prompt form: each step with a spoken phrase and no conditions; each step again with
/// every condition and both kinds of action; played audio alone; and prompts that together
/// name every error type and every card brand.
fn every_prompt() -> Vec<PayPrompt> {
    let mut prompts = Vec::new();
    for &step in PayStep::ALL {
        prompts.push(PayPrompt::new(step).say(format!("Now: {step}.")));
        prompts.push(
            PayPrompt::new(step)
                .attempts([2, 3])
                .card_types([CardType::Visa, CardType::Mastercard])
                .error_types([PayErrorType::Timeout])
                .play("https://cdn.example.com/pay/retry.mp3")
                .say("Let us try that again."),
        );
    }
    prompts
        .push(PayPrompt::new(PayStep::PaymentCardNumber).play("http://cdn.example.com/card.wav"));
    prompts.push(
        PayPrompt::new(PayStep::PaymentCardNumber)
            .attempts([1])
            .error_types(PayErrorType::ALL.iter().copied())
            .say("That did not go through."),
    );
    prompts.push(
        PayPrompt::new(PayStep::SecurityCode)
            .card_types(CardType::ALL.iter().copied())
            .say("The code on the back, please."),
    );
    prompts.push(PayPrompt::new(PayStep::PaymentCancelled));
    prompts
}

/// A `pay` with every field set.
fn full_pay() -> Pay {
    let mut pay = Pay::new("https://u:p@agent.example.com/pay?__token=t")
        .charge_amount("12.50")
        .currency("usd")
        .description("Order 7: one mug")
        .language("en-US")
        .max_attempts(3)
        .min_postal_code_length(5)
        .parameter("order_id", "7")
        .parameter("merchant_id", "12345")
        .payment_method_credit_card()
        .postal_code(PostalCode::Ask)
        .security_code(true)
        .status_url("https://u:p@agent.example.com/pay/status?__token=t")
        .timeout(5)
        .token_type(TokenType::OneTime)
        .valid_card_types([
            CardType::Visa,
            CardType::Mastercard,
            CardType::Amex,
            CardType::Maestro,
            CardType::Discover,
            CardType::Jcb,
            CardType::DinersClub,
        ])
        .voice("woman");
    for prompt in every_prompt() {
        pay = pay.prompt(prompt);
    }
    pay
}

fn document(pay: Pay) -> Value {
    serde_json::to_value(Document::new(vec![
        Verb::Answer(Answer::default()),
        Verb::Pay(Box::new(pay)),
        Verb::Hangup(Hangup::default()),
    ]))
    .expect("document serializes")
}

#[test]
fn a_pay_with_every_field_and_prompt_form_validates() {
    let checker = checker();
    let pay = full_pay();
    checker.check_document(&document(pay.clone())).unwrap();

    let result = FunctionResult::new("Please key in your card.")
        .post_process(true)
        .pay(pay.clone());
    let response = serde_json::to_value(&result).unwrap();
    checker.check_response(&response).unwrap();
    checker.check_action(&response["action"][0]).unwrap();

    // And with the call's recording paused around it (PCI mode).
    let mut paused = result;
    let recording = RecordCall {
        control_id: Some("rec-1".into()),
        format: Some("wav".into()),
        ..RecordCall::default()
    };
    assert_eq!(paused.pause_recording_around_pay(Some(&recording)), 1);
    checker
        .check_response(&serde_json::to_value(&paused).unwrap())
        .unwrap();
}

#[test]
fn the_full_pay_sets_every_schema_property() {
    let schema = schema();
    let value = serde_json::to_value(full_pay()).unwrap();
    let mut rendered: Vec<&String> = value.as_object().unwrap().keys().collect();
    let mut expected: Vec<&String> = pay_properties(&schema).keys().collect();
    rendered.sort();
    expected.sort();
    assert_eq!(rendered, expected);

    // Every prompt property appears on some prompt, and every step has a prompt.
    let prompt_schema = &schema["$defs"]["PayPrompts"]["properties"];
    let prompts = value["prompts"].as_array().unwrap();
    for property in prompt_schema.as_object().unwrap().keys() {
        assert!(
            prompts.iter().any(|prompt| prompt.get(property).is_some()),
            "no prompt sets {property}"
        );
    }
    for step in listed(&prompt_schema["for"]["description"]) {
        assert!(
            prompts.iter().any(|prompt| prompt["for"] == step.as_str()),
            "no prompt for {step}"
        );
    }
    for kind in ["Say", "Play"] {
        assert!(prompts
            .iter()
            .flat_map(|prompt| prompt["actions"].as_array().unwrap())
            .any(|action| action["type"] == kind));
    }
}

#[test]
fn the_modeled_lists_are_the_schema_lists() {
    let schema = schema();
    let pay = pay_properties(&schema);
    let prompt = &schema["$defs"]["PayPrompts"]["properties"];
    assert_eq!(
        listed(&prompt["for"]["description"]),
        words(PayStep::ALL, PayStep::as_str)
    );
    assert_eq!(
        listed(&prompt["error_type"]["description"]),
        words(PayErrorType::ALL, PayErrorType::as_str)
    );
    assert_eq!(
        listed(&prompt["card_type"]["description"]),
        words(CardType::ALL, CardType::as_str)
    );
    // `valid_card_types` lists every brand but optima.
    let mut brands = words(CardType::ALL, CardType::as_str);
    brands.retain(|brand| brand != "optima");
    assert_eq!(listed(&pay["valid_card_types"]["description"]), brands);
    assert_eq!(
        listed(&pay["token_type"]["description"]),
        ["one-time", "reusable"]
    );
    for (token_type, word) in [
        (TokenType::OneTime, "one-time"),
        (TokenType::Reusable, "reusable"),
    ] {
        assert_eq!(serde_json::to_value(token_type).unwrap(), word);
    }
    assert_eq!(pay["input"]["const"], "dtmf");
    assert_eq!(pay["payment_method"]["const"], "credit-card");
}

#[test]
fn every_postal_code_form_and_flag_value_validates() {
    let checker = checker();
    for postal_code in [
        PostalCode::Ask,
        PostalCode::Skip,
        PostalCode::Known("94107".into()),
    ] {
        for flag in [true, false] {
            for token_type in [TokenType::OneTime, TokenType::Reusable] {
                let pay = Pay::new("https://agent.example.com/pay")
                    .postal_code(postal_code.clone())
                    .security_code(flag)
                    .token_type(token_type);
                checker.check_document(&document(pay)).unwrap();
            }
        }
    }
    // The bare verb, as `Pay::new` renders it.
    checker
        .check_document(&document(Pay::new("https://agent.example.com/pay")))
        .unwrap();
}

#[test]
fn the_schema_rejects_string_counts_and_flags() {
    let checker = checker();
    let good = document(full_pay());
    checker.check_document(&good).unwrap();
    // What the official Python SDK sends, field by field: each alone fails the schema.
    for (field, bad) in [
        ("max_attempts", json!("3")),
        ("timeout", json!("5")),
        ("security_code", json!("true")),
        ("min_postal_code_length", json!("5")),
    ] {
        let mut value = good.clone();
        value["sections"]["main"][1]["pay"][field] = bad.clone();
        assert!(
            checker.check_document(&value).is_err(),
            "{field}: {bad} passed the schema"
        );
        let action = json!({"SWML": value});
        assert!(
            checker.check_action(&action).is_err(),
            "{field}: {bad} passed as an action"
        );
    }
}

#[test]
fn the_schema_rejects_what_the_types_cannot_render() {
    let checker = checker();
    let good = document(full_pay());
    let cases: [(&str, Value); 5] = [
        // A played prompt must be an http(s) URL.
        (
            "/prompts/0/actions",
            json!([{"type": "Play", "phrase": "card.mp3"}]),
        ),
        // An action kind the schema does not know.
        (
            "/prompts/0/actions",
            json!([{"type": "Sing", "phrase": "la"}]),
        ),
        // A token type outside its enum.
        ("/token_type", json!("forever")),
        // Another input method.
        ("/input", json!("speech")),
        // A field the schema does not have.
        ("/amount", json!(12.5)),
    ];
    for (pointer, bad) in cases {
        let mut value = good.clone();
        let pay = &mut value["sections"]["main"][1]["pay"];
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            pay
        } else {
            pay.pointer_mut(parent).unwrap()
        };
        target[key] = bad.clone();
        assert!(
            checker.check_document(&value).is_err(),
            "{pointer}: {bad} passed the schema"
        );
    }
    // A prompt without actions.
    let mut value = good;
    value["sections"]["main"][1]["pay"]["prompts"][0]
        .as_object_mut()
        .unwrap()
        .remove("actions");
    assert!(checker.check_document(&value).is_err());
}

#[test]
fn the_full_pay_reads_back_from_the_validated_document() {
    let pay = full_pay();
    let value = document(pay.clone());
    let read: Document = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(read.main()[1], Verb::Pay(Box::new(pay)));
    assert_eq!(serde_json::to_value(&read).unwrap(), value);
}
