//! The `pay` verb's wire form: numbers and booleans stay numbers and booleans, lists join with
//! spaces, unset fields are omitted, and what is written reads back the same.

use serde_json::{json, Value};

use super::*;

/// A `pay` with every field set and prompts of every shape.
fn full() -> Pay {
    Pay::new("https://agent.example.com/pay")
        .charge_amount("12.50")
        .currency("usd")
        .description("Order 7")
        .language("en-US")
        .max_attempts(3)
        .min_postal_code_length(5)
        .parameter("order_id", "7")
        .parameter("merchant", "m-1")
        .payment_method_credit_card()
        .postal_code(PostalCode::Known("94107".into()))
        .security_code(true)
        .status_url("https://agent.example.com/pay/status")
        .timeout(10)
        .token_type(TokenType::OneTime)
        .valid_card_types([CardType::Visa, CardType::Amex])
        .voice("woman")
        .prompt(PayPrompt::new(PayStep::PaymentCardNumber).say("Your card number, please."))
        .prompt(
            PayPrompt::new(PayStep::PaymentCardNumber)
                .attempts([2, 3])
                .error_types([PayErrorType::Timeout, PayErrorType::InvalidCardNumber])
                .card_types([CardType::Visa])
                .play("https://cdn.example.com/again.mp3")
                .say("Please try again."),
        )
}

#[test]
fn new_sets_dtmf_input_and_nothing_else() {
    let value = serde_json::to_value(Pay::new("https://agent.example.com/pay")).unwrap();
    assert_eq!(
        value,
        json!({"payment_connector_url": "https://agent.example.com/pay", "input": "dtmf"})
    );
}

#[test]
fn every_field_renders_in_the_schema_type() {
    let value = serde_json::to_value(full()).unwrap();
    assert_eq!(
        value,
        json!({
            "payment_connector_url": "https://agent.example.com/pay",
            "charge_amount": "12.50",
            "currency": "usd",
            "description": "Order 7",
            "input": "dtmf",
            "language": "en-US",
            "max_attempts": 3,
            "min_postal_code_length": 5,
            "parameters": [
                {"name": "order_id", "value": "7"},
                {"name": "merchant", "value": "m-1"}
            ],
            "payment_method": "credit-card",
            "postal_code": "94107",
            "prompts": [
                {"for": "payment-card-number",
                 "actions": [{"type": "Say", "phrase": "Your card number, please."}]},
                {"for": "payment-card-number",
                 "actions": [
                     {"type": "Play", "phrase": "https://cdn.example.com/again.mp3"},
                     {"type": "Say", "phrase": "Please try again."}
                 ],
                 "attempts": "2 3",
                 "card_type": "visa",
                 "error_type": "timeout invalid-card-number"}
            ],
            "security_code": true,
            "status_url": "https://agent.example.com/pay/status",
            "timeout": 10,
            "token_type": "one-time",
            "valid_card_types": "visa amex",
            "voice": "woman"
        })
    );
}

#[test]
fn postal_code_is_a_flag_or_the_code() {
    for (postal_code, wire) in [
        (PostalCode::Ask, json!(true)),
        (PostalCode::Skip, json!(false)),
        (PostalCode::Known("SW1A 1AA".into()), json!("SW1A 1AA")),
    ] {
        assert_eq!(serde_json::to_value(&postal_code).unwrap(), wire);
        assert_eq!(
            serde_json::from_value::<PostalCode>(wire).unwrap(),
            postal_code
        );
    }
    assert!(serde_json::from_value::<PostalCode>(json!(5)).is_err());
}

#[test]
fn token_type_and_constants_use_the_schema_words() {
    assert_eq!(
        serde_json::to_value(TokenType::OneTime).unwrap(),
        "one-time"
    );
    assert_eq!(
        serde_json::to_value(TokenType::Reusable).unwrap(),
        "reusable"
    );
    assert_eq!(serde_json::to_value(PayInput::Dtmf).unwrap(), "dtmf");
    assert_eq!(
        serde_json::to_value(PaymentMethod::CreditCard).unwrap(),
        "credit-card"
    );
}

#[test]
fn each_word_serializes_as_its_as_str_and_reads_back() {
    fn check<T>(all: &[T], as_str: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + fmt::Debug + Serialize + for<'de> Deserialize<'de>,
    {
        for &value in all {
            let wire = serde_json::to_value(value).unwrap();
            assert_eq!(wire, Value::String(as_str(value).into()), "{value:?}");
            assert_eq!(serde_json::from_value::<T>(wire).unwrap(), value);
        }
    }
    check(PayStep::ALL, PayStep::as_str);
    check(CardType::ALL, CardType::as_str);
    check(PayErrorType::ALL, PayErrorType::as_str);
    assert_eq!(PayStep::ALL.len(), 8);
    assert_eq!(CardType::ALL.len(), 8);
    assert_eq!(PayErrorType::ALL.len(), 11);
    assert_eq!(CardType::DinersClub.to_string(), "diners-club");
}

#[test]
fn empty_lists_leave_the_field_unset() {
    let pay = Pay::new("https://agent.example.com/pay").valid_card_types([]);
    assert_eq!(pay.valid_card_types, None);
    let prompt = PayPrompt::new(PayStep::PaymentFailed)
        .attempts([])
        .card_types([])
        .error_types([]);
    assert_eq!(
        serde_json::to_value(prompt).unwrap(),
        json!({"for": "payment-failed", "actions": []})
    );
}

#[test]
fn what_is_written_reads_back_the_same() {
    let pay = full();
    let text = serde_json::to_string(&pay).unwrap();
    let read: Pay = serde_json::from_str(&text).unwrap();
    assert_eq!(read, pay);
    assert_eq!(serde_json::to_string(&read).unwrap(), text);
}

#[test]
fn reading_ignores_unknown_fields_and_defaults_absent_ones() {
    let read: Pay = serde_json::from_value(json!({
        "payment_connector_url": "https://other.example.com/pay",
        "max_attempts": 2,
        "future_field": {"x": 1},
        "prompts": [{
            "for": "expiration-date",
            "actions": [{"type": "Say", "phrase": "Expiry?", "extra": 1}],
            "attempts": " 1   2 ",
            "note": "ignored"
        }]
    }))
    .unwrap();
    assert_eq!(read.input, None, "an absent input stays absent");
    assert_eq!(read.max_attempts, Some(2));
    assert_eq!(read.prompts.len(), 1);
    assert_eq!(read.prompts[0].step, PayStep::ExpirationDate);
    assert_eq!(read.prompts[0].attempts, Some(vec![1, 2]));
    assert_eq!(
        read.prompts[0].actions,
        vec![PayPromptAction::say("Expiry?")]
    );
}

#[test]
fn a_field_in_a_form_voxguard_does_not_model_is_an_error() {
    let base = serde_json::to_value(full()).unwrap();
    for (field, bad) in [
        // What another SDK sends, and the schema rejects.
        ("max_attempts", json!("3")),
        ("timeout", json!("5")),
        ("security_code", json!("true")),
        // Schema-valid variable references voxguard does not model.
        ("min_postal_code_length", json!("${min_len}")),
        // Outside the schema's closed sets.
        ("input", json!("speech")),
        ("payment_method", json!("ach")),
        ("token_type", json!("forever")),
        ("valid_card_types", json!("visa bitcoin")),
        ("max_attempts", json!(-1)),
        ("payment_connector_url", Value::Null),
    ] {
        let mut value = base.clone();
        value[field] = bad.clone();
        assert!(
            serde_json::from_value::<Pay>(value).is_err(),
            "{field}: {bad}"
        );
    }
    let mut value = base;
    value["prompts"][0]["for"] = json!("small-talk");
    assert!(serde_json::from_value::<Pay>(value.clone()).is_err());
    value["prompts"][0]["for"] = json!("payment-card-number");
    value["prompts"][0]["actions"][0]["type"] = json!("Sing");
    assert!(serde_json::from_value::<Pay>(value).is_err());
}

#[test]
fn a_bad_list_word_is_not_echoed_in_the_error() {
    let error = serde_json::from_value::<Pay>(json!({
        "payment_connector_url": "https://agent.example.com/pay",
        "valid_card_types": "4242424242424242"
    }))
    .unwrap_err()
    .to_string();
    assert!(error.contains("CardType"), "{error}");
    assert!(!error.contains("4242"), "{error}");
}
