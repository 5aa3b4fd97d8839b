//! Unit tests of [`ArgValidator`]: what passes, and the field and rule each violation reports.
//! They must not depend on the platform renderer or the path walker (those test themselves).

use super::*;
use serde_json::json;

/// The error for `field` failing `rule`.
pub(super) fn err(field: &str, rule: &str) -> ArgError {
    ArgError {
        field: field.to_string(),
        rule: rule.to_string(),
    }
}

fn validator() -> ArgValidator {
    ArgValidator::new(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "pin": {"type": "string", "pattern": "^[0-9]+$", "minLength": 4, "maxLength": 8},
            "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
            "count": {"type": "integer", "minimum": 1, "exclusiveMaximum": 5},
            "kind": {"type": "string", "enum": ["checking", "savings"]},
            "when": {"type": "string", "format": "date-time"},
            "confirm": {"type": "boolean"},
            "address": {
                "type": "object",
                "properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["zip"]
            },
            "items": {"type": "array", "items": {"type": "integer"}, "maxItems": 2}
        },
        "required": ["pin"]
    }))
    .unwrap()
}

#[test]
fn validator_accepts_valid_arguments() {
    let v = validator();
    assert_eq!(v.validate(&json!({"pin": "1234"})), Ok(()));
    assert_eq!(
        v.validate(&json!({
            "pin": "12345678", "amount": 10000, "count": 4, "kind": "savings",
            "when": "2024-05-01T10:00:00Z", "confirm": false,
            "address": {"zip": "90210"}, "items": [1, 2]
        })),
        Ok(())
    );
}

#[test]
fn validator_reports_field_and_rule() {
    let v = validator();
    let cases = [
        (json!({}), "pin", "required"),
        (json!({"pin": 1234}), "pin", "type"),
        (json!({"pin": "12a4"}), "pin", "pattern"),
        (json!({"pin": "123"}), "pin", "minLength"),
        (json!({"pin": "123456789"}), "pin", "maxLength"),
        (
            json!({"pin": "1234", "amount": 0}),
            "amount",
            "exclusiveMinimum",
        ),
        (
            json!({"pin": "1234", "amount": 10000.5}),
            "amount",
            "maximum",
        ),
        (json!({"pin": "1234", "count": 0}), "count", "minimum"),
        (
            json!({"pin": "1234", "count": 5}),
            "count",
            "exclusiveMaximum",
        ),
        (json!({"pin": "1234", "count": 1.5}), "count", "type"),
        (json!({"pin": "1234", "kind": "gold"}), "kind", "enum"),
        (
            json!({"pin": "1234", "when": "yesterday"}),
            "when",
            "format",
        ),
        (json!({"pin": "1234", "confirm": "yes"}), "confirm", "type"),
        (
            json!({"pin": "1234", "address": {}}),
            "address/zip",
            "required",
        ),
        (
            json!({"pin": "1234", "address": {"zip": "1"}}),
            "address/zip",
            "pattern",
        ),
        (json!({"pin": "1234", "items": [1, "x"]}), "items/1", "type"),
        (
            json!({"pin": "1234", "items": [1, 2, 3]}),
            "items",
            "maxItems",
        ),
        (
            json!({"pin": "1234", "bogus": true}),
            "bogus",
            "additionalProperties",
        ),
        (json!(["pin"]), "", "type"),
        (json!(null), "", "type"),
    ];
    for (args, field, rule) in cases {
        assert_eq!(v.validate(&args), Err(err(field, rule)), "{args}");
    }
}

#[test]
fn first_violation_is_deterministic() {
    let v = validator();
    let args = json!({"pin": "x", "amount": -1, "kind": "gold", "bogus": 1});
    let first = v.validate(&args).unwrap_err();
    for _ in 0..10 {
        assert_eq!(v.validate(&args), Err(first.clone()));
    }
    assert_eq!(first, err("amount", "exclusiveMinimum"));
}

#[test]
fn errors_never_carry_values() {
    let v = validator();
    let e = v.validate(&json!({"pin": "98765432109"})).unwrap_err();
    assert_eq!(e.reason(), "invalid_argument:pin");
    assert!(!e.to_string().contains("98765432109"));
    assert!(!format!("{e:?}").contains("98765432109"));
    assert_eq!(err("", "type").reason(), "invalid_argument");
}

fn custom_validator() -> ArgValidator {
    ArgValidator::new(&json!({
        "type": "object",
        "properties": {
            "phone": crate::e164_schema("Caller phone"),
            "account": crate::account_number_schema("Account"),
            "order": crate::order_number_schema("Order"),
            "day": crate::iso_date_schema("Day"),
            "amount": crate::currency_schema("Amount", Some(10000.0)),
            "tip": {"type": "number", "x-currency": true},
            "count": {"type": "integer", "x-currency": true},
            "off": {"type": "number", "x-currency": false},
            "born": {"type": "string", "format": "date"},
            "mail": {"type": "string", "format": "email"},
            "when": {"type": "string", "format": "date-time"},
            "refund": {"$ref": "#/$defs/Money"},
            "maybe": {"type": ["number", "null"], "x-currency": true}
        },
        "$defs": {"Money": {"type": "number", "x-currency": true}}
    }))
    .unwrap()
}

#[test]
fn custom_formats_and_currency_accept_valid_values() {
    let v = custom_validator();
    assert_eq!(
        v.validate(&json!({
            "phone": "+15551234567", "account": "0123456789", "order": "ORD-12345",
            "day": "2024-02-29", "amount": 10000, "tip": 0.07, "count": 3, "off": 1.23456,
            "born": "2000-02-29", "mail": "ada@example.com", "when": "2024-05-01T10:00:00Z",
            "refund": 100.1, "maybe": null
        })),
        Ok(())
    );
    assert_eq!(v.validate(&json!({"maybe": 12.5})), Ok(()));
}

#[test]
fn custom_formats_and_currency_reject_with_field_and_rule() {
    let v = custom_validator();
    let cases = [
        (json!({"phone": "+05551234567"}), "phone", "format"),
        (json!({"phone": "+1234567890123456"}), "phone", "format"),
        (json!({"phone": "555-1234"}), "phone", "format"),
        (json!({"account": "123456789"}), "account", "format"),
        (json!({"order": "ord-12345"}), "order", "format"),
        (json!({"day": "2023-02-29"}), "day", "format"),
        // The pattern accepts this shape; only the calendar check refuses it.
        (json!({"day": "2024-04-31"}), "day", "format"),
        (json!({"amount": 1.005}), "amount", "x-currency"),
        (json!({"amount": -1}), "amount", "minimum"),
        (json!({"amount": 10000.01}), "amount", "maximum"),
        (json!({"tip": -0.5}), "tip", "x-currency"),
        (json!({"tip": 0.001}), "tip", "x-currency"),
        (json!({"count": -2}), "count", "x-currency"),
        (json!({"refund": 19.999}), "refund", "x-currency"),
        (json!({"maybe": 1.234}), "maybe", "x-currency"),
        (json!({"tip": "5.00"}), "tip", "type"),
        (json!({"born": "2023-02-29"}), "born", "format"),
        (json!({"born": "yesterday"}), "born", "format"),
        (json!({"mail": "not-an-email"}), "mail", "format"),
        (json!({"mail": "ada@"}), "mail", "format"),
        (json!({"when": "2024-05-01"}), "when", "format"),
    ];
    for (args, field, rule) in cases {
        assert_eq!(v.validate(&args), Err(err(field, rule)), "{args}");
    }
    // Errors still carry no values.
    let e = v.validate(&json!({"phone": "+0999"})).unwrap_err();
    assert!(!e.to_string().contains("0999") && !format!("{e:?}").contains("0999"));
}

#[test]
fn currency_keyword_schema_errors() {
    for schema in [
        json!({"type": "object", "properties": {"a": {"type": "number", "x-currency": "yes"}}}),
        json!({"type": "object", "properties": {"a": {"type": "string", "x-currency": true}}}),
        json!({"type": "object", "properties": {"a": {"type": ["string", "null"], "x-currency": true}}}),
    ] {
        assert!(
            matches!(ArgValidator::new(&schema), Err(SchemaError::Invalid(_))),
            "{schema}"
        );
    }
    let off = ArgValidator::new(
        &json!({"type": "object", "properties": {"a": {"type": "string", "x-currency": false}}}),
    );
    assert!(off.is_ok());
}

#[test]
fn invalid_schema_is_refused() {
    let e = ArgValidator::new(&json!({"type": 12})).unwrap_err();
    assert!(matches!(e, SchemaError::Invalid(_)));
    let e = ArgValidator::new(
        &json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}),
    );
    assert!(e.is_err());
}

/// A pattern whose compiled form would take more than `MAX_PATTERN_BYTES` (3,000 Unicode `.`,
/// which the regex crate's default limit lets compile to megabytes) refuses the schema;
/// ordinary patterns compile and match.
#[test]
fn a_pattern_too_large_to_compile_is_refused() {
    let huge = json!({"type": "object", "properties": {
        "a": {"type": "string", "pattern": "^(?:.{100}){30}$"}}});
    assert!(matches!(
        ArgValidator::new(&huge),
        Err(SchemaError::Invalid(_))
    ));
    let keyed = json!({"type": "object", "patternProperties": {"^(?:.{100}){30}$": {}}});
    assert!(ArgValidator::new(&keyed).is_err());
    let ordinary = ArgValidator::new(&json!({"type": "object", "properties": {
        "email": {"type": "string", "pattern": "^[\\w.+-]+@[\\w-]+\\.[\\w.]+$"},
        "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{5}$"}}}))
    .expect("ordinary patterns compile");
    assert!(ordinary
        .validate(&json!({"email": "ana@example.org", "code": "ORD-12345"}))
        .is_ok());
    assert!(ordinary.validate(&json!({"code": "ORD-1"})).is_err());
}

/// A schema from outside (an upstream's) compiles its patterns with the `regex` engine, which
/// bounds every compiled piece — also the parts of a pattern split at a leading lookahead,
/// which the default engine leaves unlimited — and refuses lookaround outright; it may hold at
/// most `MAX_UNTRUSTED_PATTERNS` patterns.
#[test]
fn a_schema_from_outside_compiles_bounded_patterns_only() {
    let with = |pattern: &str| json!({"type": "object", "properties": {"a": {"type": "string", "pattern": pattern}}});
    for pattern in [
        "^(?=(?:.{100}){30}$)",
        "^(?:.{100}){30}$",
        "(x)\\1(?:.{100}){20}",
    ] {
        assert!(
            ArgValidator::new_untrusted(&with(pattern)).is_err(),
            "{pattern}"
        );
    }
    let ordinary = ArgValidator::new_untrusted(&with("^[A-Z]{3}-[0-9]{5}$")).expect("compiles");
    assert!(ordinary.validate(&json!({"a": "ORD-12345"})).is_ok());
    assert!(ordinary.validate(&json!({"a": "ORD-1"})).is_err());
    let many: serde_json::Map<String, Value> = (0..=crate::MAX_UNTRUSTED_PATTERNS)
        .map(|i| (format!("p{i}"), json!({"type": "string", "pattern": "^a$"})))
        .collect();
    let schema = json!({"type": "object", "properties": many});
    assert!(ArgValidator::new_untrusted(&schema).is_err());
    assert!(
        ArgValidator::new(&schema).is_ok(),
        "a deployment's own schema may have more"
    );
}
