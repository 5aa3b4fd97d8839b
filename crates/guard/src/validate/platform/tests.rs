//! Unit tests of [`platform_parameters`]: every rendered schema is checked against the official
//! SWML schema's `FunctionParameters`, and the English notes are asserted word for word.

use super::*;
use crate::validate::tests::err;
use crate::validate::ArgValidator;
use jsonschema::Draft;
use schemars::JsonSchema;
use serde_json::json;
use std::sync::OnceLock;

/// The official SWML schema, re-rooted at `$defs/FunctionParameters`.
fn platform() -> &'static jsonschema::Validator {
    static PLATFORM: OnceLock<jsonschema::Validator> = OnceLock::new();
    PLATFORM.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/reference/swml-schema.json"
        );
        let text = std::fs::read_to_string(path).expect("read swml-schema.json");
        let doc: Value = serde_json::from_str(&text).expect("parse swml-schema.json");
        let mut rerooted = Map::new();
        for key in ["$schema", "$id", "$defs"] {
            if let Some(v) = doc.get(key) {
                rerooted.insert(key.to_string(), v.clone());
            }
        }
        rerooted.insert("$ref".into(), json!("#/$defs/FunctionParameters"));
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .build(&Value::Object(rerooted))
            .expect("compile platform schema")
    })
}

/// Render `schema` and assert the platform schema accepts the result.
fn render_ok(schema: &Value) -> Value {
    let rendered = platform_parameters(schema).expect("render");
    let errors: Vec<String> = platform()
        .iter_errors(&rendered)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "platform schema refuses {rendered:#}:\n{}",
        errors.join("\n")
    );
    rendered
}

fn obj(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn prop<'a>(rendered: &'a Value, name: &str) -> &'a Value {
    &rendered["properties"][name]
}

#[test]
fn platform_schema_rejects_unrendered_constraints() {
    // The test harness itself must be able to refuse: a raw `minimum` is not allowed.
    let raw = obj(json!({"n": {"type": "integer", "minimum": 1}}), &["n"]);
    assert!(!platform().is_valid(&raw));
    let title = json!({"type": "object", "title": "Args", "properties": {}});
    assert!(!platform().is_valid(&title));
}

#[test]
fn string_pattern_and_length() {
    let r = render_ok(&obj(
        json!({"pin": {"type": "string", "description": "The PIN", "pattern": "^[0-9]+$",
                       "minLength": 4, "maxLength": 8}}),
        &["pin"],
    ));
    assert_eq!(
        prop(&r, "pin"),
        &json!({"type": "string", "pattern": "^[0-9]+$",
                "description": "The PIN. 4 to 8 characters."})
    );
    assert_eq!(r["required"], json!(["pin"]));
}

#[test]
fn string_length_phrases() {
    let r = render_ok(&obj(
        json!({
            "exact": {"type": "string", "minLength": 10, "maxLength": 10},
            "one": {"type": "string", "minLength": 1},
            "max": {"type": "string", "maxLength": 20, "description": "Name."},
            "empty_ok": {"type": "string", "minLength": 0}
        }),
        &[],
    ));
    assert_eq!(prop(&r, "exact")["description"], "Exactly 10 characters.");
    assert_eq!(prop(&r, "one")["description"], "At least 1 character.");
    assert_eq!(
        prop(&r, "max")["description"],
        "Name. At most 20 characters."
    );
    assert_eq!(prop(&r, "empty_ok"), &json!({"type": "string"}));
    assert_eq!(r["required"], json!([]));
}

#[test]
fn number_ranges() {
    let r = render_ok(&obj(
        json!({
            "amount": {"type": "number", "description": "Amount in dollars",
                       "exclusiveMinimum": 0, "maximum": 10000, "format": "double"},
            "pct": {"type": "number", "minimum": 0, "exclusiveMaximum": 1.5},
            "step": {"type": "number", "multipleOf": 0.01},
            "only_max": {"type": "number", "maximum": -3},
            "both_min": {"type": "number", "minimum": 5, "exclusiveMinimum": 2}
        }),
        &["amount"],
    ));
    assert_eq!(
        prop(&r, "amount"),
        &json!({"type": "number",
                "description": "Amount in dollars. Must be greater than 0 and at most 10000."})
    );
    assert_eq!(
        prop(&r, "pct")["description"],
        "Must be at least 0 and less than 1.5."
    );
    assert_eq!(
        prop(&r, "step")["description"],
        "Must be a multiple of 0.01."
    );
    assert_eq!(prop(&r, "only_max")["description"], "Must be at most -3.");
    assert_eq!(prop(&r, "both_min")["description"], "Must be at least 5.");
}

#[test]
fn integers_and_defaults() {
    let r = render_ok(&obj(
        json!({
            "n": {"type": "integer", "format": "uint32", "minimum": 1, "maximum": 10, "default": 3},
            "exact": {"type": "integer", "minimum": 7, "maximum": 7},
            "bad_default": {"type": "integer", "default": "three"}
        }),
        &["n"],
    ));
    assert_eq!(
        prop(&r, "n"),
        &json!({"type": "integer", "default": 3,
                "description": "Must be at least 1 and at most 10."})
    );
    assert_eq!(prop(&r, "exact")["description"], "Must be exactly 7.");
    assert_eq!(prop(&r, "bad_default"), &json!({"type": "integer"}));
}

#[test]
fn enums_and_booleans() {
    let r = render_ok(&obj(
        json!({
            "kind": {"type": "string", "enum": ["checking", "savings"], "default": "checking"},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "ratio": {"type": "number", "enum": [0.5, 1]},
            "flag": {"type": "boolean", "default": false, "description": "Confirm"},
            "untyped_enum": {"enum": ["a", "b"]}
        }),
        &["kind", "flag"],
    ));
    assert_eq!(
        prop(&r, "kind"),
        &json!({"type": "string", "enum": ["checking", "savings"], "default": "checking"})
    );
    assert_eq!(
        prop(&r, "level"),
        &json!({"type": "integer", "enum": [1, 2, 3]})
    );
    assert_eq!(
        prop(&r, "ratio"),
        &json!({"type": "number", "enum": [0.5, 1]})
    );
    assert_eq!(
        prop(&r, "flag"),
        &json!({"type": "boolean", "default": false, "description": "Confirm"})
    );
    assert_eq!(
        prop(&r, "untyped_enum"),
        &json!({"type": "string", "enum": ["a", "b"]})
    );
}

#[test]
fn nested_objects_and_arrays() {
    let r = render_ok(&obj(
        json!({
            "address": {
                "type": "object",
                "description": "Billing address",
                "additionalProperties": false,
                "properties": {
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$", "minLength": 5, "maxLength": 5},
                    "lines": {"type": "array", "items": {"type": "string", "maxLength": 40},
                              "minItems": 1, "maxItems": 3, "uniqueItems": true}
                },
                "required": ["zip"]
            },
            "empty": {"type": "object"}
        }),
        &["address"],
    ));
    assert_eq!(
        prop(&r, "address"),
        &json!({
            "type": "object",
            "description": "Billing address",
            "properties": {
                "zip": {"type": "string", "pattern": "^[0-9]{5}$",
                        "description": "Exactly 5 characters."},
                "lines": {"type": "array",
                          "items": {"type": "string", "description": "At most 40 characters."},
                          "description": "1 to 3 items. Items must be unique."}
            },
            "required": ["zip"]
        })
    );
    assert_eq!(prop(&r, "empty"), &json!({"type": "object"}));
}

#[test]
fn nullable_types() {
    let r = render_ok(&obj(
        json!({
            "note": {"type": ["string", "null"], "maxLength": 100},
            "count": {"type": ["integer", "null"], "minimum": 0},
            "choice": {"type": ["string", "null"], "enum": ["a", "b", null]},
            "sub": {"anyOf": [{"type": "object", "properties": {"a": {"type": "boolean"}}},
                              {"type": "null"}], "description": "Optional sub"},
            "nothing": {"type": "null"}
        }),
        &[],
    ));
    assert_eq!(
        prop(&r, "note"),
        &json!({"type": "string", "nullable": true, "description": "At most 100 characters."})
    );
    assert_eq!(prop(&r, "count")["nullable"], json!(true));
    assert_eq!(
        prop(&r, "choice"),
        &json!({"type": "string", "nullable": true, "enum": ["a", "b"]})
    );
    assert_eq!(
        prop(&r, "sub"),
        &json!({"type": "object", "nullable": true, "description": "Optional sub",
                "properties": {"a": {"type": "boolean"}}})
    );
    assert_eq!(
        prop(&r, "nothing"),
        &json!({"type": "null", "description": "Always null."})
    );
}

#[test]
fn date_time_and_formats() {
    let r = render_ok(&obj(
        json!({
            "when": {"type": "string", "format": "date-time"},
            "mail": {"type": "string", "format": "email"},
            "id": {"type": "string", "format": "uuid"},
            "link": {"type": "string", "format": "uri-reference", "description": "Link"},
            "odd": {"type": "string", "format": "iban"}
        }),
        &["when"],
    ));
    assert_eq!(
        prop(&r, "when"),
        &json!({"type": "string", "format": "date_time"})
    );
    assert_eq!(prop(&r, "mail")["format"], "email");
    assert_eq!(prop(&r, "id")["format"], "uuid");
    assert_eq!(
        prop(&r, "link"),
        &json!({"type": "string", "description": "Link. Must be a URI reference."})
    );
    assert_eq!(
        prop(&r, "odd"),
        &json!({"type": "string", "description": "Must be in iban format."})
    );
}

#[test]
fn combinators_and_constants() {
    let r = render_ok(&obj(
        json!({
            "either": {"anyOf": [{"type": "string", "minLength": 2}, {"type": "integer"}],
                       "description": "Id or number"},
            "multi": {"type": ["string", "integer", "null"]},
            "fixed": {"const": "yes", "description": "Always yes"},
            "fixed_bool": {"const": true},
            "documented": {"oneOf": [
                {"const": "a", "type": "string", "description": "First."},
                {"const": "b", "type": "string", "description": "Second"}
            ], "description": "Pick one"}
        }),
        &[],
    ));
    assert_eq!(
        prop(&r, "either"),
        &json!({"anyOf": [
            {"type": "string", "description": "At least 2 characters."},
            {"type": "integer", "description": "Id or number"}
        ]})
    );
    assert_eq!(
        prop(&r, "multi"),
        &json!({"anyOf": [{"type": "string"}, {"type": "integer"},
                          {"type": "null", "description": "No value."}]})
    );
    assert_eq!(
        prop(&r, "fixed"),
        &json!({"type": "string", "enum": ["yes"], "description": "Always yes"})
    );
    assert_eq!(prop(&r, "fixed_bool"), &json!({"const": true}));
    assert_eq!(
        prop(&r, "documented"),
        &json!({"type": "string", "enum": ["a", "b"],
                "description": "Pick one. Options: \"a\" (First); \"b\" (Second)."})
    );
}

#[test]
fn refs_are_inlined_and_siblings_win() {
    let r = render_ok(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Args",
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/Address", "description": "Home address"},
            "work": {"$ref": "#/$defs/Address"}
        },
        "required": ["home"],
        "$defs": {
            "Address": {"title": "Address", "description": "A postal address",
                        "type": "object", "properties": {"zip": {"$ref": "#/$defs/Zip"}},
                        "required": ["zip"]},
            "Zip": {"type": "string", "pattern": "^[0-9]{5}$"}
        }
    }));
    assert_eq!(prop(&r, "home")["description"], "Home address");
    assert_eq!(prop(&r, "work")["description"], "A postal address");
    assert_eq!(
        prop(&r, "home")["properties"]["zip"],
        json!({"type": "string", "pattern": "^[0-9]{5}$"})
    );
    assert!(r.get("$defs").is_none() && r.get("title").is_none());
}

#[derive(JsonSchema)]
#[allow(dead_code)]
/// A postal address.
struct Address {
    /// Five-digit ZIP code.
    #[schemars(regex(pattern = r"^[0-9]{5}$"))]
    zip: String,
    city: Option<String>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum Kind {
    Checking,
    Savings,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum Documented {
    /// Everyday account.
    Checking,
    /// Earns interest.
    Savings,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
#[schemars(deny_unknown_fields)]
struct TransferArgs {
    /// The account PIN.
    #[schemars(length(min = 4, max = 8), regex(pattern = r"^[0-9]+$"))]
    pin: String,
    /// Amount in dollars.
    #[schemars(range(min = 1, max = 10000))]
    amount: f64,
    count: u32,
    small: Option<u8>,
    kind: Kind,
    maybe_kind: Option<Kind>,
    documented: Documented,
    address: Address,
    /// Where to ship, if anywhere.
    ship_to: Option<Address>,
    tags: Vec<String>,
    #[schemars(length(min = 1, max = 3))]
    more: Vec<Address>,
    pair: (u8, String),
    confirm: bool,
    when: Option<String>,
}

#[test]
fn schemars_output_renders_and_validates() {
    let schema = serde_json::to_value(schemars::schema_for!(TransferArgs)).unwrap();
    let r = render_ok(&schema);
    assert_eq!(
        prop(&r, "pin"),
        &json!({"type": "string", "pattern": "^[0-9]+$",
                "description": "The account PIN. 4 to 8 characters."})
    );
    assert_eq!(
        prop(&r, "amount"),
        &json!({"type": "number",
                "description": "Amount in dollars. Must be at least 1 and at most 10000."})
    );
    assert_eq!(
        prop(&r, "count"),
        &json!({"type": "integer", "description": "Must be at least 0."})
    );
    assert_eq!(
        prop(&r, "small"),
        &json!({"type": "integer", "nullable": true,
                "description": "Must be at least 0 and at most 255."})
    );
    assert_eq!(
        prop(&r, "kind"),
        &json!({"type": "string", "enum": ["Checking", "Savings"]})
    );
    assert_eq!(
        prop(&r, "maybe_kind"),
        &json!({"type": "string", "enum": ["Checking", "Savings"], "nullable": true})
    );
    assert_eq!(
        prop(&r, "documented"),
        &json!({"type": "string", "enum": ["Checking", "Savings"],
                "description": "Options: \"Checking\" (Everyday account); \"Savings\" (Earns interest)."})
    );
    assert_eq!(
        prop(&r, "address"),
        &json!({"type": "object", "description": "A postal address.",
                "properties": {
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$",
                            "description": "Five-digit ZIP code."},
                    "city": {"type": "string", "nullable": true}
                },
                "required": ["zip"]})
    );
    assert_eq!(prop(&r, "ship_to")["nullable"], json!(true));
    assert_eq!(
        prop(&r, "ship_to")["description"],
        "Where to ship, if anywhere."
    );
    assert_eq!(prop(&r, "ship_to")["properties"]["zip"]["type"], "string");
    assert_eq!(
        prop(&r, "tags"),
        &json!({"type": "array", "items": {"type": "string"}})
    );
    assert_eq!(prop(&r, "more")["description"], "1 to 3 items.");
    assert_eq!(prop(&r, "more")["items"]["type"], "object");
    assert_eq!(prop(&r, "pair")["description"], "Exactly 2 items.");
    assert_eq!(
        prop(&r, "pair")["items"]["anyOf"][1],
        json!({"type": "string"})
    );
    assert_eq!(prop(&r, "confirm"), &json!({"type": "boolean"}));
    let required: Vec<&str> = r["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(required.contains(&"pin") && !required.contains(&"when"));

    // The server keeps enforcing the full schema.
    let v = ArgValidator::new(&schema).unwrap();
    let mut good = json!({
        "pin": "1234", "amount": 5.0, "count": 1, "small": null, "kind": "Checking",
        "maybe_kind": null, "documented": "Savings",
        "address": {"zip": "12345", "city": null}, "ship_to": null,
        "tags": [], "more": [{"zip": "54321"}], "pair": [1, "x"], "confirm": true, "when": null
    });
    assert_eq!(v.validate(&good), Ok(()));
    good["amount"] = json!(0.5);
    assert_eq!(v.validate(&good), Err(err("amount", "minimum")));
    good["amount"] = json!(5);
    good["ship_to"] = json!({"zip": "abc"});
    assert_eq!(v.validate(&good), Err(err("ship_to/zip", "pattern")));
    good["ship_to"] = json!("somewhere");
    assert_eq!(v.validate(&good), Err(err("ship_to", "type")));
    good["ship_to"] = json!(null);
    good["maybe_kind"] = json!("Gold");
    assert_eq!(v.validate(&good), Err(err("maybe_kind", "enum")));
    good["maybe_kind"] = json!(null);
    good["extra"] = json!(1);
    assert_eq!(v.validate(&good), Err(err("extra", "additionalProperties")));
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct Tree {
    children: Vec<Tree>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct HasTree {
    tree: Tree,
}

#[test]
fn render_errors() {
    assert_eq!(
        platform_parameters(&json!({"type": "string"})),
        Err(SchemaError::NotAnObject)
    );
    assert_eq!(
        platform_parameters(&json!({})),
        Err(SchemaError::NotAnObject)
    );
    assert_eq!(
        platform_parameters(&json!(true)),
        Err(SchemaError::NotAnObject)
    );
    assert!(matches!(
        platform_parameters(&obj(
            json!({"x": {"$ref": "https://evil.example/s.json"}}),
            &[]
        )),
        Err(SchemaError::UnresolvedRef { .. })
    ));
    assert!(matches!(
        platform_parameters(&obj(json!({"x": {"$ref": "#/$defs/Nope"}}), &[])),
        Err(SchemaError::UnresolvedRef { .. })
    ));
    let any = platform_parameters(&obj(json!({"blob": true}), &[])).unwrap_err();
    assert!(matches!(&any, SchemaError::Unsupported { path, .. } if path == "blob"));
    assert!(any.to_string().contains("blob"));
    let no_items = platform_parameters(&obj(json!({"l": {"type": "array"}}), &[])).unwrap_err();
    assert!(matches!(no_items, SchemaError::Unsupported { .. }));
    let tree = serde_json::to_value(schemars::schema_for!(HasTree)).unwrap();
    assert!(matches!(
        platform_parameters(&tree),
        Err(SchemaError::RecursiveRef { .. })
    ));
    let tree = serde_json::to_value(schemars::schema_for!(Tree)).unwrap();
    assert!(matches!(
        platform_parameters(&tree),
        Err(SchemaError::RecursiveRef { .. })
    ));
}

#[test]
fn root_without_properties_and_root_ref() {
    let r = render_ok(&json!({"type": "object"}));
    assert_eq!(
        r,
        json!({"type": "object", "properties": {}, "required": []})
    );
    let r = render_ok(&json!({
        "$ref": "#/$defs/Args",
        "$defs": {"Args": {"type": "object", "properties": {"a": {"type": "string"}},
                           "required": ["a"]}}
    }));
    assert_eq!(r["required"], json!(["a"]));
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct PayArgs {
    /// Who to text the receipt to.
    #[schemars(extend("format" = "e164"))]
    phone: String,
    /// Amount in dollars.
    #[schemars(range(min = 0.01, max = 5000), extend("x-currency" = true))]
    amount: f64,
    /// Optional tip.
    #[schemars(extend("x-currency" = true))]
    tip: Option<f64>,
    /// When to pay.
    #[schemars(extend("format" = "iso-date"))]
    on: Option<String>,
}

#[test]
fn custom_vocabulary_renders_as_english() {
    let r = render_ok(&obj(
        json!({
            "phone": crate::e164_schema("Caller phone"),
            "account": crate::account_number_schema("Account to debit"),
            "order": crate::order_number_schema(""),
            "day": crate::iso_date_schema("Delivery day"),
            "amount": crate::currency_schema("Amount in dollars", Some(10000.0)),
            "tip": {"type": ["number", "null"], "x-currency": true},
            "born": {"type": "string", "format": "date"}
        }),
        &["phone", "amount"],
    ));
    assert_eq!(
        prop(&r, "phone"),
        &json!({"type": "string", "pattern": crate::validators::patterns::E164,
                "description": "Caller phone. Phone number in E.164 format, e.g. +15551234567."})
    );
    assert_eq!(
        prop(&r, "account")["description"],
        "Account to debit. Account number of exactly 10 digits."
    );
    assert_eq!(
        prop(&r, "order")["description"],
        "Order number such as ORD-12345: 2 to 5 capital letters, a dash, then 4 to 10 digits."
    );
    assert_eq!(
        prop(&r, "day")["description"],
        "Delivery day. Date in YYYY-MM-DD format, e.g. 2024-05-01."
    );
    assert_eq!(
        prop(&r, "amount"),
        &json!({"type": "number",
                "description": "Amount in dollars. Must be at least 0 and at most 10000. Amount with at most two decimal places."})
    );
    assert_eq!(
        prop(&r, "tip"),
        &json!({"type": "number", "nullable": true,
                "description": "Amount with at most two decimal places."})
    );
    assert_eq!(
        prop(&r, "born"),
        &json!({"type": "string", "format": "date"})
    );
    let text = r.to_string();
    for custom in [
        "e164",
        "account-number",
        "order-number",
        "iso-date",
        "x-currency",
    ] {
        assert!(
            !text.contains(&format!("\"{custom}\"")),
            "{custom} leaked: {text}"
        );
    }

    // The same through schemars, and the server enforces what the platform only reads.
    let schema = serde_json::to_value(schemars::schema_for!(PayArgs)).unwrap();
    let r = render_ok(&schema);
    assert_eq!(
        prop(&r, "phone")["description"],
        "Who to text the receipt to. Phone number in E.164 format, e.g. +15551234567."
    );
    assert_eq!(
        prop(&r, "amount")["description"],
        "Amount in dollars. Must be at least 0.01 and at most 5000. Amount with at most two decimal places."
    );
    assert_eq!(
        prop(&r, "tip")["description"],
        "Optional tip. Amount with at most two decimal places."
    );
    assert_eq!(
        prop(&r, "on")["description"],
        "When to pay. Date in YYYY-MM-DD format, e.g. 2024-05-01."
    );
    let v = ArgValidator::new(&schema).unwrap();
    let mut args =
        json!({"phone": "+15551234567", "amount": 12.5, "tip": 1.25, "on": "2024-02-29"});
    assert_eq!(v.validate(&args), Ok(()));
    args["tip"] = json!(1.255);
    assert_eq!(v.validate(&args), Err(err("tip", "x-currency")));
    args["tip"] = json!(null);
    args["on"] = json!("2023-02-29");
    assert_eq!(v.validate(&args), Err(err("on", "format")));
}
