//! Unit and property tests of [`Redactor`]: each kind of finding masked as the table in the
//! module documentation says, ordinary values left byte for byte, JSON at any depth.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn redact(text: &str) -> String {
    Redactor::new().redact_text(text).into_owned()
}

fn assert_table(cases: &[(&str, &str)]) {
    for (input, expected) in cases {
        assert_eq!(redact(input), *expected, "input: {input:?}");
    }
}

fn assert_untouched(cases: &[&str]) {
    let redactor = Redactor::new();
    for input in cases {
        let out = redactor.redact_text(input);
        assert!(
            matches!(out, Cow::Borrowed(_)),
            "changed {input:?} into {out:?}"
        );
    }
}

#[test]
fn rules_compile() {
    assert!(Rules::build().is_some());
    assert!(Redactor::new().rules.is_some());
}

#[test]
fn sorted_field_list_for_binary_search() {
    assert!(SENSITIVE_FIELDS.windows(2).all(|w| w[0] < w[1]));
    assert!(NOT_A_SECRET.windows(2).all(|w| w[0] < w[1]));
    for name in SENSITIVE_FIELDS.iter().chain(SENSITIVE_SUFFIXES) {
        assert_eq!(normalize_field(name), *name);
    }
}

/// The definition the by-last-byte lookup must agree with.
fn standard_sensitive_by_definition(name: &str) -> bool {
    SENSITIVE_FIELDS.contains(&name) || SENSITIVE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

#[test]
fn the_sensitive_name_lookup_agrees_with_its_definition() {
    for name in SENSITIVE_FIELDS.iter().chain(SENSITIVE_SUFFIXES) {
        for candidate in [
            name.to_string(),
            format!("x{name}"),
            format!("{name}x"),
            name[1..].to_string(),
            name[..name.len() - 1].to_string(),
        ] {
            assert_eq!(
                is_standard_sensitive(&candidate),
                standard_sensitive_by_definition(&candidate),
                "{candidate:?}"
            );
        }
        assert!(is_standard_sensitive(name), "{name}");
    }
    for name in [
        "",
        "method",
        "path",
        "status",
        "requestid",
        "callid",
        "2",
        "pins",
        "tokens",
    ] {
        assert_eq!(
            is_standard_sensitive(name),
            standard_sensitive_by_definition(name),
            "{name:?}"
        );
    }
}

proptest! {
    #[test]
    fn random_names_agree_with_the_definition(name in "[a-z0-9]{0,12}(pin|token|ssn|cvv2|key|dob|pan)?") {
        prop_assert_eq!(is_standard_sensitive(&name), standard_sensitive_by_definition(&name));
    }
}

#[test]
fn card_numbers() {
    assert_table(&[
        ("4111111111111111", "****1111"),
        ("card 4111 1111 1111 1111 ok", "card ****1111 ok"),
        ("card 4111-1111-1111-1111.", "card ****1111."),
        ("amex 3782 822463 10005", "amex ****0005"),
        ("visa13 4222222222222", "visa13 ****2222"),
        ("19 digits 6011000990139424009", "19 digits ****4009"),
        ("x4111111111111111y", "x****1111y"),
        ("(5500 0000 0000 0004)", "(****0004)"),
        // Another number written next to the card does not hide it.
        ("4111 1111 1111 1111 12 26 thanks", "****1111 12 26 thanks"),
        ("ref 77 4111111111111111", "ref 77 ****1111"),
        ("4111111111111111-05", "****1111-05"),
        (
            "pay with 4111111111111111 and 5500000000000004",
            "pay with ****1111 and ****0004",
        ),
    ]);
}

#[test]
fn non_luhn_digit_runs_are_left_alone() {
    assert_untouched(&[
        "order 4111111111111112",
        "tracking 1234 5678 9012 3456",
        "id 1234567890123",
        "ORD-12345",
        "4111 1111", // too short
        "account 12345678",
    ]);
}

#[test]
fn security_codes_and_pins_by_context() {
    assert_table(&[
        ("cvv 123", "cvv [REDACTED]"),
        ("CVC: 1234", "CVC: [REDACTED]"),
        ("the CVV2 is 987", "the CVV2 is [REDACTED]"),
        ("security code is 123", "security code is [REDACTED]"),
        ("PIN 4321", "PIN [REDACTED]"),
        ("pin: 4321", "pin: [REDACTED]"),
        ("my pin is 4321.", "my pin is [REDACTED]."),
        (
            "my PIN number is 4 3 2 1 ok",
            "my PIN number is [REDACTED] ok",
        ),
        ("pin=4321&x=1", "pin=[REDACTED]&x=1"),
        (r#"{"pin": "4321"}"#, r#"{"pin": "[REDACTED]"}"#),
        (
            "your verification code is 918273",
            "your verification code is [REDACTED]",
        ),
        ("passcode 5555", "passcode [REDACTED]"),
    ]);
    assert_untouched(&[
        "spin 1234 times",
        "pin the note on the board",
        "the PIN was wrong",
        "step 2 of 3",
        "enter your pin now",
    ]);
}

#[test]
fn ssns() {
    assert_table(&[
        ("ssn 123-45-6789", "ssn ***-**-6789"),
        ("123 45 6789", "***-**-6789"),
        ("SSN: 123456789", "SSN: ***-**-6789"),
        (
            "my social security number is 123456789",
            "my social security number is ***-**-6789",
        ),
        ("ssn=123-45-6789", "ssn=***-**-6789"),
    ]);
    assert_untouched(&["123456789", "zip 12345-6789", "call 12-345-6789"]);
}

#[test]
fn secrets() {
    assert_table(&[
        ("password=hunter2", "password=[REDACTED]"),
        ("passwd: s3cr3t!", "passwd: [REDACTED]"),
        (
            "db_password = 'correct horse'",
            "db_password = '[REDACTED]'",
        ),
        ("secret abc123", "secret [REDACTED]"),
        (
            "client_secret=xyz&grant=1",
            "client_secret=[REDACTED]&grant=1",
        ),
        ("token=abc.def.ghi", "token=[REDACTED]"),
        ("api_key=sk_live_42", "api_key=[REDACTED]"),
        ("X-Api-Key: k-1234", "X-Api-Key: [REDACTED]"),
        (
            "Authorization: Basic dXNlcjpwYXNz",
            "Authorization: Basic [REDACTED]",
        ),
        (
            "authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "authorization: Bearer [REDACTED]",
        ),
        (
            "sent Bearer abcdef123456 upstream",
            "sent Bearer [REDACTED] upstream",
        ),
        (
            "header Basic dXNlcjpwYXNz seen",
            "header Basic [REDACTED] seen",
        ),
        (
            "POST /swaig?__token=AbC-123_x&call_id=9",
            "POST /swaig?__token=[REDACTED]&call_id=9",
        ),
        (
            "url https://user:pa55@agent.example.com/swaig",
            "url https://[REDACTED]@agent.example.com/swaig",
        ),
        (
            "https://signalwire:s3cret@host:3000/x",
            "https://[REDACTED]@host:3000/x",
        ),
        ("my password is hunter2.", "my password is [REDACTED]."),
        ("my password is swordfish", "my password is [REDACTED]"),
        (
            r#"{\"password\":\"hunter2\",\"ok\":1}"#,
            r#"{\"password\":\"[REDACTED]\",\"ok\":1}"#,
        ),
    ]);
    assert_untouched(&[
        "the password is wrong",
        "token refused: expired",
        "reason=token_expired",
        "max_tokens=100",
        "Secret Santa party",
        "basic checking account",
        "the bearer bonds",
        "https://agent.example.com/swaig",
        "a password reset link",
    ]);
}

#[test]
fn emails() {
    assert_table(&[
        ("mail jane.doe@example.com now", "mail j***@example.com now"),
        ("<John+x@Mail.Example.co.uk>.", "<J***@Mail.Example.co.uk>."),
        ("mailto:a@b.io", "mailto:a***@b.io"),
    ]);
    assert_untouched(&["user@localhost", "@handle", "a @ b"]);
}

#[test]
fn phones() {
    assert_table(&[
        ("call (555) 123-4567", "call ***-***-4567"),
        ("call 555-123-4567.", "call ***-***-4567."),
        ("call 555.123.4567", "call ***-***-4567"),
        ("call +1 555 123 4567", "call ***-***-4567"),
        ("call 1-800-555-1234", "call ***-***-1234"),
        ("from +15551234567", "from ***-***-4567"),
        ("from +44 20 7946 0958", "from ***-***-0958"),
    ]);
    assert_untouched(&["room 555", "ext 1234", "5551234567890123", "+1234"]);
}

#[test]
fn dates_of_birth_by_context() {
    assert_table(&[
        ("DOB 1980-02-29", "DOB [REDACTED]"),
        ("date of birth: 02/29/1980", "date of birth: [REDACTED]"),
        ("born on 1980-02-29", "born on [REDACTED]"),
        ("birthday is March 3rd, 1980.", "birthday is [REDACTED]."),
        ("d.o.b. 29 Feb 1980", "d.o.b. [REDACTED]"),
        ("dob=1980-02-29", "dob=[REDACTED]"),
    ]);
    assert_untouched(&[
        "meeting on 1980-02-29",
        "born in 1980",
        "due 02/29/2024",
        "DOB unknown",
    ]);
}

#[test]
fn ordinary_values_are_left_alone() {
    assert_untouched(&[
        "",
        "total $150.00",
        "balance 1,250.75 USD",
        "at 10:30 tomorrow",
        "123 Main St, Apt 4B",
        "in 1999 and 2024",
        "order ORD-12345 shipped",
        "2024-01-15T10:30:00.123456Z INFO voxguard: request done status=200 latency_ms=12",
        "ts=2024-01-15T10:30:00Z call_id=3f1c2b9e-7d4a-4c1e-9b2f-0a1b2c3d4e5f fn=get_balance",
        "version 1.0.0",
        "2024-01-15 10:30:00.123 INFO request done in 12 ms",
        r#"{"timestamp":"2024-01-15T10:30:00.123456Z","level":"INFO","fields":{"message":"tool called","status":200}}"#,
        "retry 3 of 5 after 250 ms; took 1.5s; 99.9% ok",
        "Tuesday, March 3rd 2026 at 4pm",
        "Dan Smith, 123 Main St",
    ]);
}

#[test]
fn overlapping_findings_are_merged() {
    // An email whose local part is a card: both masks cover it; nothing of the card is left.
    let out = redact("4111111111111111@x.com");
    assert!(!out.contains("41111111"), "{out}");
    // A card in an email's domain: the local part is masked, the domain is still read.
    let out = redact("a@0-1000-0000-0000-0008a.aA");
    assert_eq!(out, "a***@****0008a.aA");
    // A token value that is also a card number.
    assert_eq!(redact("token=4111111111111111"), "token=****1111");
}

#[test]
fn redaction_is_idempotent_on_its_own_output() {
    let redactor = Redactor::new();
    for input in [
        "card 4111 1111 1111 1111 cvv 123 pin 4321 ssn 123-45-6789",
        "password=hunter2 email jane@example.com phone (555) 123-4567 DOB 1980-02-29",
        "https://user:pass@example.com/x Authorization: Bearer abc.def.ghi12",
    ] {
        let once = redactor.redact_text(input).into_owned();
        assert!(
            matches!(redactor.redact_text(&once), Cow::Borrowed(_)),
            "{once}"
        );
    }
}

#[test]
fn borrowed_when_nothing_changes() {
    let redactor = Redactor::new();
    let text = "The order ORD-12345 of $150.00 ships at 10:30.";
    match redactor.redact_text(text) {
        Cow::Borrowed(out) => assert!(std::ptr::eq(out, text)),
        Cow::Owned(out) => panic!("allocated for an unchanged text: {out}"),
    }
    assert!(matches!(redactor.redact_text("pin 4321"), Cow::Owned(_)));
}

#[test]
fn sensitive_field_names() {
    let redactor = Redactor::new();
    for name in [
        "pin",
        "PIN",
        "cvv",
        "cvc",
        "cvv2",
        "security_code",
        "Security-Code",
        "card_number",
        "cardNumber",
        "CARD_NUMBER",
        "card",
        "pan",
        "ssn",
        "password",
        "Password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "__token",
        "meta_data_token",
        "api_key",
        "apikey",
        "API-KEY",
        "x-api-key",
        "authorization",
        "Authorization",
        "auth",
        "credentials",
        "dob",
        "date_of_birth",
        "DateOfBirth",
        "account_number",
        "accountNumber",
    ] {
        assert!(redactor.is_sensitive_field(name), "{name}");
    }
    for name in [
        "amount",
        "order_number",
        "call_id",
        "function",
        "name",
        "max_tokens",
        "token_type",
        "spin",
        "date",
        "phone",
        "description",
        "",
    ] {
        assert!(!redactor.is_sensitive_field(name), "{name}");
    }
    let custom = redactor.with_sensitive_fields(["member_id", "Mother-Maiden-Name"]);
    assert!(custom.is_sensitive_field("MemberID"));
    assert!(custom.is_sensitive_field("mother_maiden_name"));
    assert!(custom.is_sensitive_field("pin"), "defaults still apply");
    assert!(
        !Redactor::new().is_sensitive_field("member_id"),
        "extras are per instance"
    );
}

#[test]
fn json_redaction_at_depth() {
    let redactor = Redactor::new().with_sensitive_fields(["member_id"]);
    let mut value = json!({
        "function": "pay_bill",
        "argument": {
            "parsed": [{
                "Card_Number": "4111 1111 1111 1111",
                "CVV": 123,
                "amount": "150.00",
                "memberId": {"nested": "object"},
                "note": "my pin is 4321, email jane@example.com",
                "empty": null,
                "Password": null,
            }],
            "raw": "{\"card_number\":\"4111111111111111\",\"pin\":\"4321\"}",
        },
        "global_data": {"items": [{"SECURITY-CODE": "999"}, ["call 555-123-4567", 7, true]]},
        "__token": "abc",
        "meta_data_token": "def",
        "raw_card": 4111111111111111u64,
        "order_id": 12345,
        "call_id": "3f1c2b9e-7d4a-4c1e-9b2f-0a1b2c3d4e5f",
    });
    redactor.redact_json(&mut value);
    assert_eq!(
        value,
        json!({
            "function": "pay_bill",
            "argument": {
                "parsed": [{
                    "Card_Number": "[REDACTED]",
                    "CVV": "[REDACTED]",
                    "amount": "150.00",
                    "memberId": "[REDACTED]",
                    "note": "my pin is [REDACTED], email j***@example.com",
                    "empty": null,
                    "Password": null,
                }],
                "raw": "{\"card_number\":\"****1111\",\"pin\":\"[REDACTED]\"}",
            },
            "global_data": {"items": [{"SECURITY-CODE": "[REDACTED]"}, ["call ***-***-4567", 7, true]]},
            "__token": "[REDACTED]",
            "meta_data_token": "[REDACTED]",
            "raw_card": "****1111",
            "order_id": 12345,
            "call_id": "3f1c2b9e-7d4a-4c1e-9b2f-0a1b2c3d4e5f",
        })
    );
}

/// A card number sent as a JSON number is masked however it is written: negative, with a
/// fraction, in exponent form, or too large for a float to hold exactly; amounts are not.
#[test]
fn card_numbers_written_as_any_json_number_are_masked() {
    let redactor = Redactor::new();
    let parse = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
    for (text, want) in [
        ("4111111111111111", json!("****1111")),
        ("-4111111111111111", json!("****1111")),
        ("4111111111111111.0", json!("****1111")),
        ("4111111111111111.75", json!("****1112")),
        ("-4.111111111111111e15", json!("****1111")),
        // 4111111111111111168 as a float: the digits it holds, masked.
        ("4.111111111111111e18", json!("****1168")),
        ("6011111111111117e0", json!("****1117")),
        ("150.25", json!(150.25)),
        ("-12", json!(-12)),
        ("4111111111111112", json!(4111111111111112_u64)),
        ("1234567890123.5", json!("****0123")),
        ("123456789012.5", json!(123456789012.5)),
        ("1e300", json!(1e300)),
        ("0.4111111111111111", json!("****1111")),
        ("4111.111111111111", json!("****1111")),
        ("4.111111111111111e16", json!("****1112")),
        ("4111111111111111e-20", json!("****1111")),
        ("4.111111111111111e19", json!("****1111")),
        ("0.00004111111111111111", json!("****1111")),
        ("0.4291417776317030", json!("****7030")),
        ("4291.417776317030", json!("****7030")),
        ("12.5", json!(12.5)),
        // Ordinary floats with many digits are not cards.
        ("1732771234.56", json!(1732771234.56)),
        ("144.65483091216691", json!(144.65483091216691)),
        ("0.30000000000000004", json!(0.30000000000000004)),
        ("0.6666666666666666", json!(0.6666666666666666)),
    ] {
        let mut value = json!({"note": parse(text)});
        redactor.redact_json(&mut value);
        assert_eq!(value["note"], want, "{text}");
        if want.is_string() {
            let stored = value.to_string();
            assert!(!stored.contains("411111111111"), "{text}: {stored}");
        }
    }
}

#[test]
fn json_keys_are_redacted_too() {
    let mut value = json!({"4111111111111111": 1, "****1111": 2, "plain": 3});
    Redactor::new().redact_json(&mut value);
    assert_eq!(value, json!({"****1111": 2, "****1111~2": 1, "plain": 3}));
}

#[test]
fn deep_json_does_not_overflow_the_stack() {
    let mut value = json!("pin 4321");
    for _ in 0..100_000 {
        value = Value::Array(vec![value]);
    }
    Redactor::new().redact_json(&mut value);
    let mut inner = &value;
    while let Value::Array(items) = inner {
        inner = &items[0];
    }
    assert_eq!(inner, &json!("pin [REDACTED]"));
    // Drop iteratively too: serde_json's recursive drop would overflow on this depth.
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        if let Value::Array(items) = v {
            stack.extend(items);
        }
    }
}

#[test]
fn cheap_shared_and_thread_safe() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Redactor>();
    let a = Redactor::new();
    let b = a.clone();
    assert!(Arc::ptr_eq(
        a.rules.as_ref().expect("rules compile"),
        b.rules.as_ref().expect("rules compile")
    ));
    let debug = format!("{:?}", a.with_sensitive_fields(["member_id"]));
    assert!(
        debug.contains("Redactor") && debug.contains("memberid"),
        "{debug}"
    );
}

#[test]
fn fails_closed_without_rules() {
    let broken = Redactor {
        rules: None,
        extra_fields: Arc::new(BTreeSet::new()),
    };
    assert_eq!(broken.redact_text("anything at all"), REDACTED);
    assert!(matches!(broken.redact_text(""), Cow::Borrowed("")));
    let mut value = json!({"pin": "1", "note": "hello"});
    broken.redact_json(&mut value);
    assert_eq!(value, json!({"pin": REDACTED, "note": REDACTED}));
}

/// A 2 KB call transcript with many kinds of secrets: none survives, the rest does.
#[test]
fn transcript_sanity() {
    let secrets = [
        "4111 1111 1111 1111",
        "4111111111111111",
        "5500-0000-0000-0004",
        "cvv 737",
        "4321",
        "123-45-6789",
        "hunter2",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
        "s3cr3t-pa55",
        "jane.doe@example.com",
        "(555) 123-4567",
        "1980-02-29",
        "sk_live_51Hx",
    ];
    let kept = ["$150.00", "10:30", "ORD-12345", "123 Main St", "1,250.75"];
    let mut transcript = String::new();
    let mut turn = 0;
    while transcript.len() < 2048 {
        turn += 1;
        transcript.push_str(&format!(
            "[{turn:02}] agent: How can I help with order ORD-12345 today?\n\
             user: I want to pay $150.00 with card 4111 1111 1111 1111, cvv 737, my pin is 4321.\n\
             user: Backup card 5500-0000-0000-0004; ssn 123-45-6789; DOB 1980-02-29.\n\
             tool: POST https://agent:s3cr3t-pa55@bank.example.com/swaig?__token=sk_live_51Hx \
             Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl\n\
             user: email jane.doe@example.com, phone (555) 123-4567, password is hunter2.\n\
             agent: Balance 1,250.75, delivery at 10:30 to 123 Main St. Raw 4111111111111111.\n"
        ));
    }
    let out = Redactor::new().redact_text(&transcript);
    for secret in secrets {
        assert!(!out.contains(secret), "{secret} survived in:\n{out}");
    }
    for value in kept {
        assert_eq!(
            out.matches(value).count(),
            transcript.matches(value).count(),
            "{value} was touched"
        );
    }
}

/// 16 Luhn-valid digits: 15 random ones and the check digit.
fn luhn_card() -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, 15).prop_map(|mut digits| {
        digits[0] = digits[0].max(1);
        for check in 0..10u8 {
            let candidate: String = digits
                .iter()
                .chain(std::iter::once(&check))
                .map(|d| char::from(b'0' + d))
                .collect();
            if luhn_valid(&candidate) {
                return candidate;
            }
        }
        unreachable!("one check digit always satisfies Luhn")
    })
}

fn grouped(card: &str, sep: &str) -> String {
    card.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Filler words for the survivors property: random letters, with the few words that give a
/// number a sensitive context ("pin", "cvv", "token", …) replaced.
fn filler() -> impl Strategy<Value = String> {
    const CONTEXT: &[&str] = &[
        "pin", "cvv", "cvc", "cvn", "csc", "ssn", "dob", "otp", "born", "birth", "token", "secret",
        "pass", "pwd", "key", "code", "bearer", "basic", "social",
    ];
    proptest::collection::vec("[a-zA-Z]{1,8}[.,!?]?", 1..5).prop_map(|words| {
        words
            .into_iter()
            .map(|w| {
                let lower = w.to_ascii_lowercase();
                if CONTEXT.iter().any(|k| lower.contains(k)) {
                    "word".to_owned()
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

proptest! {
    #[test]
    fn luhn_valid_cards_never_survive(
        card in luhn_card(),
        style in 0usize..3,
        prefix in "[A-Za-z0-9 .,;:!?@#$%&*()/_+=-]{0,40}",
        before in "[A-Za-z .,;:!?@#$%&*()/_+=-]?",
        after in "[A-Za-z .,;:!?@#$%&*()/_+=-]?",
        suffix in "[A-Za-z0-9 .,;:!?@#$%&*()/_+=-]{0,40}",
    ) {
        let written = match style {
            0 => card.clone(),
            1 => grouped(&card, " "),
            _ => grouped(&card, "-"),
        };
        // The characters touching the card are not digits: a digit glued to it makes a
        // different, longer number (see `card_edits`).
        let prefix = if before.is_empty() { String::new() } else { format!("{prefix}{before}") };
        let suffix = if after.is_empty() { String::new() } else { format!("{after}{suffix}") };
        let text = format!("{prefix}{written}{suffix}");
        let out = Redactor::new().redact_text(&text);
        let digits_only: String = out.chars().filter(char::is_ascii_digit).collect();
        prop_assert!(!digits_only.contains(&card), "{text:?} -> {out:?}");
        for group in out.split(|c: char| !c.is_ascii_digit()).filter(|g| g.len() >= 5) {
            prop_assert!(!group.contains(&card), "{text:?} -> {out:?}");
        }
    }

    #[test]
    fn amounts_times_and_short_numbers_survive(
        values in proptest::collection::vec(
            prop_oneof![
                "\\$[0-9]{1,6}\\.[0-9]{2}",
                "([01][0-9]|2[0-3]):[0-5][0-9]",
                "[0-9]{1,4}",
            ],
            1..6,
        ),
        fillers in proptest::collection::vec(filler(), 6),
    ) {
        let mut text = fillers[0].clone();
        for (value, filler) in values.iter().zip(&fillers[1..]) {
            text.push(' ');
            text.push_str(value);
            text.push(' ');
            text.push_str(filler);
        }
        let out = Redactor::new().redact_text(&text);
        prop_assert!(matches!(out, Cow::Borrowed(_)), "{text:?} -> {out:?}");
    }

    #[test]
    fn any_text_is_handled_without_panic(
        text in "[0-9a-zA-Z :=@/.,;#+()\\[\\]{}\"'\\\\-é☕\u{200B}]{0,120}",
        arbitrary in any::<String>(),
    ) {
        let redactor = Redactor::new();
        for input in [&text, &arbitrary] {
            let out = redactor.redact_text(input);
            if let Cow::Borrowed(same) = out {
                prop_assert_eq!(same, input.as_str());
            }
            let mut value = json!({ input.as_str(): input.as_str() });
            redactor.redact_json(&mut value);
        }
    }

    #[test]
    fn cards_in_json_strings_never_survive(card in luhn_card(), note in "[a-z ]{0,20}") {
        let mut value = json!({"args": {"note": format!("{note} {card}"), "list": [card.clone()]}});
        Redactor::new().redact_json(&mut value);
        prop_assert!(!value.to_string().contains(&card));
    }
}

/// Compare a megabyte-sized result without printing it whole on failure.
fn assert_big_eq(text: &str, expected: &str) {
    let out = redact(text);
    let at = out
        .bytes()
        .zip(expected.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(out.len().min(expected.len()));
    let near = |s: &str| {
        s.get(at.saturating_sub(20)..(at + 20).min(s.len()))
            .map(str::to_owned)
    };
    assert!(
        out == expected,
        "{} bytes out, {} expected, first difference at {at}: {:?} vs {:?}",
        out.len(),
        expected.len(),
        near(&out),
        near(expected),
    );
}

/// A megabyte of `unit`, whole units only.
fn megabyte_of(unit: &str) -> (String, usize) {
    let n = (1 << 20) / unit.len();
    (unit.repeat(n), n)
}

// Inputs that took quadratic time before the field-name scanner remembered where bare values
// end (a megabyte of `pin:` ran for minutes): only the output is asserted here, the time per
// byte is in `benches/redact_adversarial.rs`.
#[test]
fn a_megabyte_of_sensitive_names_is_redacted_whole() {
    let (text, _) = megabyte_of("pin:");
    assert_big_eq(&text, "pin:[REDACTED]");
    let (text, _) = megabyte_of("password=");
    assert_big_eq(&text, "password=[REDACTED]");
    let (text, n) = megabyte_of("pin:4321 ");
    assert_big_eq(&text, &"pin:[REDACTED] ".repeat(n));
    let (text, n) = megabyte_of("x=1&password=hunter2&");
    assert_big_eq(&text, &"x=1&password=[REDACTED]&".repeat(n));
}

#[test]
fn a_megabyte_of_other_adversarial_shapes() {
    let (text, n) = megabyte_of("4111 1111 1111 1111 ");
    assert_big_eq(&text, &"****1111 ".repeat(n));
    let (text, n) = megabyte_of("jane@example.com ");
    assert_big_eq(&text, &"j***@example.com ".repeat(n));
    let (text, n) = megabyte_of("https://u:p@h/ ");
    assert_big_eq(&text, &"https://[REDACTED]@h/ ".repeat(n));
    let (text, n) = megabyte_of("my pin is 4321. ");
    assert_big_eq(&text, &"my pin is [REDACTED]. ".repeat(n));
    // Long runs of one-digit groups: every start is tried against up to 19 lengths.
    for unit in ["1-", "1 ", "(1", "+1 "] {
        let (text, _) = megabyte_of(unit);
        assert_untouched(&[text.as_str()]);
    }
}

#[test]
fn many_json_keys_redacted_to_one_name_get_distinct_suffixes() {
    let n = 20_000;
    let mut value = Value::Object(
        (0..n)
            .map(|i| (format!("pin:{i}"), json!(i)))
            .collect::<Map<String, Value>>(),
    );
    Redactor::new().redact_json(&mut value);
    let map = value.as_object().expect("an object");
    assert_eq!(map.len(), n);
    // Keys are renamed in order: `pin:0`, `pin:1`, `pin:10`, …
    assert_eq!(map["pin:[REDACTED]"], json!(0));
    assert_eq!(map["pin:[REDACTED]~2"], json!(1));
    assert_eq!(map["pin:[REDACTED]~3"], json!(10));
    assert!((2..=n).all(|k| map.contains_key(&format!("pin:[REDACTED]~{k}"))));
}

#[test]
fn a_renamed_key_frees_its_suffix() {
    // `password is !x1` takes `~3` because `~2` exists; then `~2` itself is renamed (its value
    // is masked) and takes back the suffix it freed.
    let mut value = json!({
        "password is !x1": 1,
        "password is [REDACTED]": 0,
        "password is [REDACTED]~2": 2,
    });
    Redactor::new().redact_json(&mut value);
    assert_eq!(
        value,
        json!({
            "password is [REDACTED]": 0,
            "password is [REDACTED]~2": 2,
            "password is [REDACTED]~3": 1,
        })
    );
}

proptest! {
    #[test]
    fn incremental_luhn_agrees_with_the_luhn_check(
        groups in proptest::collection::vec("[0-9]{1,5}", 1..8),
    ) {
        let mut sums = LuhnSums::default();
        let mut all = String::new();
        for group in &groups {
            sums.extend(group.as_bytes());
            all.push_str(group);
            prop_assert_eq!(sums.digits, all.len());
            prop_assert_eq!(sums.valid(), luhn_valid(&all), "{}", all);
        }
    }
}

#[test]
fn bounded_redaction_cuts_before_redacting_and_marks_the_cut() {
    let redactor = Redactor::new();
    // Short text: the same as redact_text, borrowed when clean.
    assert!(matches!(
        redactor.redact_bounded("/swaig", MAX_LOG_PATH),
        Cow::Borrowed("/swaig")
    ));
    assert_eq!(redactor.redact_bounded("pin=4321", 8), "pin=[REDACTED]");
    // 60 KB of `pin:` with digits: the cap is kept, the secret is not, the marker ends it.
    let path = "/pin:4321".repeat(60 * 1024 / 9);
    let out = redactor.redact_bounded(&path, MAX_LOG_PATH);
    // The cut also drops the word it went through ("…/pin" keeps "…/").
    let (kept, dropped) = clip(&path, MAX_LOG_PATH);
    assert!(kept.len() <= MAX_LOG_PATH && kept.ends_with('/'), "{kept}");
    let marker = truncation_marker(dropped);
    assert!(out.ends_with(&marker), "{out}");
    assert!(out.len() <= MAX_LOG_PATH + marker.len(), "{}", out.len());
    assert!(!out.contains("4321"), "{out}");
    // Cut on a character boundary.
    assert_eq!(clip("ééé", 3), ("é", 4));
    assert_eq!(clip("abc", 3), ("abc", 0));
}

#[test]
fn cards_grouped_with_dots_slashes_spaced_dashes_or_double_spaces_are_masked() {
    let r = Redactor::new();
    for card in [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111 - 1111 - 1111 - 1111",
        "4111  1111  1111  1111",
        "4111 / 1111 / 1111 / 1111",
    ] {
        let text = format!("my card is {card} thanks");
        let out = r.redact_text(&text);
        assert!(!out.contains("4111"), "{card}: {out}");
        assert!(out.contains("****1111"), "{card}: {out}");
    }
    // Not cards: amounts, versions, short dotted numbers and a Luhn-invalid run stay.
    for kept in [
        "total 1,250.75 due",
        "version 1.2.3.4",
        "ref 1234.5678.9012",
        "4111.1111.1111.1112",
    ] {
        assert_eq!(r.redact_text(kept), kept);
    }
}

/// A path cut by the log cap inside a card written with percent-encoded separators is cut
/// before the whole run, as one with plain separators is: no part of the card is left.
#[test]
fn a_card_with_encoded_separators_cut_by_the_cap_is_cut_whole() {
    let redactor = Redactor::new();
    // From 231 on the path is longer than the cap, which cuts somewhere in the card.
    for pad in 231..260 {
        let path = format!("/{}/4111%2D1111%2D1111%2D1111", "a".repeat(pad));
        let logged = redactor.redact_bounded(&path, crate::redact::MAX_LOG_PATH);
        assert!(
            !logged.contains("1111%2D1111") && !logged.contains("4111%2D1"),
            "{pad}: {logged}"
        );
    }
}
