//! Unit tests of the schema-path walker: [`declared_path`] and [`max_length_at`] on `$ref`s,
//! combinators, array positions, escaped names and cyclic schemas.

use super::*;
use schemars::JsonSchema;
use serde_json::json;

#[derive(JsonSchema)]
#[allow(dead_code)]
/// A postal address.
struct Address {
    /// Five-digit ZIP code.
    #[schemars(regex(pattern = r"^[0-9]{5}$"))]
    zip: String,
    city: Option<String>,
}

#[test]
fn max_length_follows_the_schema() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "free": {"type": "string"},
            "address": {"$ref": "#/$defs/Address", "description": "Home"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}},
            "pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 3}],
                     "items": {"type": "string", "maxLength": 5}},
            "both": {"allOf": [{"maxLength": 50}, {"type": "string", "maxLength": 20}]},
            "either": {"anyOf": [{"type": "string", "maxLength": 10},
                                 {"type": "string", "maxLength": 30}, {"type": "null"}]},
            "a/b": {"type": "string", "maxLength": 7},
            "extra": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 9}},
            "tree": {"$ref": "#/$defs/Tree"}
        },
        "$defs": {
            "Address": {"type": "object", "properties": {
                "street": {"type": "string", "maxLength": 100},
                "zip": {"$ref": "#/$defs/Zip"}
            }},
            "Zip": {"type": "string", "maxLength": 5},
            "Tree": {"type": "object", "properties": {
                "label": {"type": "string", "maxLength": 12},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}
            }, "anyOf": [{"$ref": "#/$defs/Tree"}]}
        }
    });
    let cases = [
        ("name", Some(40)),
        ("free", None),
        ("missing", None),
        ("", None),
        ("address/street", Some(100)),
        ("address/zip", Some(5)),
        ("address/other", None),
        ("tags/0", Some(8)),
        ("tags/12", Some(8)),
        ("tags/x", None),
        ("pair/0", Some(3)),
        ("pair/1", Some(5)),
        ("both", Some(20)),
        ("either", Some(30)),
        ("a~1b", Some(7)),
        ("extra/anything", Some(9)),
        ("tree/label", Some(12)),
        ("tree/children/0/children/3/label", Some(12)),
        ("tree/children/0/nope", None),
    ];
    for (path, want) in cases {
        assert_eq!(max_length_at(&schema, path), want, "{path}");
    }
    // A bare self-reference terminates.
    assert_eq!(max_length_at(&json!({"$ref": "#"}), "a/b"), None);

    // schemars' Option<String> with a length limit.
    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Note {
        #[schemars(length(max = 500))]
        text: Option<String>,
        lines: Vec<Address>,
    }
    let schema = serde_json::to_value(schemars::schema_for!(Note)).unwrap();
    assert_eq!(max_length_at(&schema, "text"), Some(500));
    assert_eq!(max_length_at(&schema, "lines/2/zip"), None);
}

#[test]
fn an_alternative_without_a_limit_leaves_the_string_unbounded() {
    let schema = json!({
        "type": "object",
        "properties": {
            "loose": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "string"}]},
            "untyped": {"oneOf": [{"maxLength": 5}, {}]},
            "open": {"anyOf": [{"maxLength": 5}, true]},
            "nullable": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]},
            "numbers": {"oneOf": [{"type": "string", "maxLength": 5},
                                  {"type": ["integer", "boolean"]}, false]},
            "nested": {"anyOf": [
                {"type": "object", "properties": {"a": {"type": "string", "maxLength": 9}}},
                {"type": "object", "properties": {"b": {"type": "string"}}}
            ]},
            "closed": {"anyOf": [
                {"type": "object", "properties": {"a": {"type": "string", "maxLength": 9}}},
                {"type": "object", "properties": {"b": {}}, "additionalProperties": false},
                {"type": "array", "items": {"type": "integer"}},
                {"type": "string"}
            ]},
            "tight": {"allOf": [{"maxLength": 5}, {"type": "string"}]}
        }
    });
    let cases = [
        // The value may match the unbounded alternative: no limit applies.
        ("loose", None),
        ("untyped", None),
        ("open", None),
        ("nested/a", None),
        // Alternatives that cannot hold a string there do not loosen the others.
        ("nullable", Some(5)),
        ("numbers", Some(5)),
        ("closed/a", Some(9)),
        // Limits that apply together still join to the smallest.
        ("tight", Some(5)),
    ];
    for (path, want) in cases {
        assert_eq!(max_length_at(&schema, path), want, "{path}");
        assert_eq!(
            SchemaPaths::new(&schema).max_length(&schema, path),
            want,
            "{path}"
        );
    }
}

/// Where the validator may read a member through something the walk cannot follow — a
/// `patternProperties` that may match, an object where `items` describe arrays, a `$ref` under
/// another `$id` — no limit is answered, so the input guard keeps its own cap.
#[test]
fn members_the_walk_cannot_tell_have_no_limit() {
    let schema = json!({
        "type": "object",
        "properties": {
            "patterned": {"type": "object",
                "patternProperties": {"^note_": {"type": "string"}},
                "additionalProperties": {"type": "string", "maxLength": 5}},
            "closed_patterned": {"type": "object",
                "patternProperties": {"^note_": {"type": "string"}},
                "additionalProperties": false},
            "untyped_items": {"items": {"type": "string", "maxLength": 20}},
            "typed_items": {"type": "array", "items": {"type": "string", "maxLength": 20}},
            "short_tuple": {"type": "array", "prefixItems": [{"maxLength": 3}]},
            "closed_tuple": {"type": "array", "prefixItems": [{"maxLength": 3}], "items": false},
            "object_only": {"type": "object",
                "additionalProperties": {"type": "string", "maxLength": 7},
                "items": {"maxLength": 1}},
            "rebased": {"$id": "https://example.com/inner",
                "properties": {"x": {"$ref": "#/$defs/S"}},
                "$defs": {"S": {"type": "string"}}}
        },
        "$defs": {"S": {"type": "string", "maxLength": 4}}
    });
    let more = json!({
        "type": "object",
        "properties": {
            "indexed": {"properties": {"0": {"type": "string", "maxLength": 8}}},
            "array_indexed": {"type": "array", "properties": {"0": {"maxLength": 8}}},
            "encoded": {"$ref": "#/$defs/a%25b"},
            "through_id": {"$ref": "#/$defs/Inner/properties/s"}
        },
        "$defs": {
            "a%b": {"type": "string"},
            "a%25b": {"type": "string", "maxLength": 10},
            "Inner": {"$id": "https://x.example/inner",
                "properties": {"s": {"$ref": "#/$defs/S"}},
                "$defs": {"S": {"type": "string"}}},
            "S": {"type": "string", "maxLength": 10}
        }
    });
    let older_draft = json!({"type": "object", "properties": {"note": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$ref": "#/$defs/S", "maxLength": 10}},
        "$defs": {"S": {"type": "string"}}});
    assert_eq!(max_length_at(&older_draft, "note"), None);
    // A `$ref` to a target that has its own `$id` resolves (only a pointer through one does not).
    let target_id = json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}},
        "$defs": {"A": {"$id": "https://e.example/a", "type": "string"}}});
    assert!(crate::platform_parameters(&target_id).is_ok());
    for path in ["indexed/0", "array_indexed/0", "encoded", "through_id"] {
        assert_eq!(max_length_at(&more, path), None, "{path}");
    }
    let validator = crate::ArgValidator::new(&more).expect("compiles");
    let long = "A".repeat(5_000);
    for args in [
        json!({"indexed": [long]}),
        json!({"encoded": long}),
        json!({"through_id": long}),
    ] {
        assert!(validator.validate(&args).is_ok(), "{args}");
    }
    // A caller's long digit key is no declared array position.
    let ids = json!({"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}}});
    assert!(declared_path(&ids, "ids/12"));
    assert!(!declared_path(&ids, "ids/4111111111111111"));
    let cases = [
        ("patterned/note_1", None),
        // The walk does not evaluate patterns: any name may match one.
        ("patterned/other", None),
        ("closed_patterned/note_1", None),
        ("untyped_items/0", None),
        ("typed_items/0", Some(20)),
        ("short_tuple/0", Some(3)),
        ("short_tuple/1", None),
        ("closed_tuple/1", None),
        ("object_only/0", Some(7)),
        ("rebased/x", None),
    ];
    for (path, want) in cases {
        assert_eq!(max_length_at(&schema, path), want, "{path}");
    }
    // The validator agrees that the unbounded ones are unbounded.
    let validator = crate::ArgValidator::new(&schema).expect("compiles");
    let long = "A".repeat(5_000);
    for args in [
        json!({"patterned": {"note_1": long}}),
        json!({"untyped_items": {"0": long}}),
        json!({"short_tuple": ["abc", long]}),
        json!({"rebased": {"x": long}}),
    ] {
        assert!(validator.validate(&args).is_ok(), "{args}");
    }
}

/// A schema with every construct the walker follows, and some it must not.
fn walked() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/Address"},
            "legacy": {"$ref": "#/definitions/Legacy"},
            "alias": {"$ref": "#/properties/address"},
            "both": {"allOf": [{"properties": {"x": {}}}, {"properties": {"y": {}}}]},
            "either": {"anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}]},
            "one": {"oneOf": [{"properties": {"b": {}}}, {"properties": {"c": true}}]},
            "pair": {"type": "array",
                     "prefixItems": [{"type": "object", "properties": {"first": {}}}],
                     "items": {"type": "object", "properties": {"rest": {}}}},
            "list": {"type": "array", "items": {"$ref": "#/$defs/Address"}},
            "anything": {"type": "array", "items": true},
            "extra": {"type": "object", "additionalProperties": {"type": "string"}},
            "open": {"type": "object", "additionalProperties": true,
                     "properties": {"known": {"type": "string"}}},
            "pattern": {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
            "a/b": {"type": "object", "properties": {"c~d": {"type": "string"}}},
            "tree": {"$ref": "#/$defs/Tree"},
            "0": {"type": "string"}
        },
        "$defs": {
            "Address": {"type": "object", "properties": {"zip": {"type": "string"}}},
            "Tree": {"type": "object", "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}
            }, "allOf": [{"$ref": "#/$defs/Tree"}]}
        },
        "definitions": {"Legacy": {"type": "object", "properties": {"old": {}}}}
    })
}

#[test]
fn declared_paths_follow_refs_combinators_and_arrays() {
    let schema = walked();
    for path in [
        "",
        "name",
        "address/zip",
        "legacy/old",
        "alias/zip",
        "both/x",
        "both/y",
        "either/zip",
        "one/b",
        "one/c",
        "pair/0/first",
        "pair/1/rest",
        "pair/7/rest",
        "list/0/zip",
        "list/12/zip",
        "anything/3",
        "extra",
        "open/known",
        "a~1b/c~0d",
        "tree/label",
        "tree/children/0/children/3/label",
        "0",
        // Empty segments name nothing and are skipped.
        "/address/zip",
        "address//zip",
    ] {
        assert!(declared_path(&schema, path), "{path:?} should be declared");
    }
}

#[test]
fn caller_chosen_and_unknown_names_are_not_declared() {
    let schema = walked();
    for path in [
        "missing",
        "name/x",
        "address/street",
        "legacy/new",
        "both/z",
        "either/street",
        "one/d",
        "pair/0/rest",
        "pair/1/first",
        "pair/x",
        "list/x",
        "list/0/secret",
        "anything/3/x",
        "extra/4111111111111111",
        "open/4111111111111111",
        "pattern/x1",
        "a/b",
        "a~1b/c~1d",
        "tree/children/0/nope",
        "tree/children/+1/label",
        "1",
    ] {
        assert!(
            !declared_path(&schema, path),
            "{path:?} should not be declared"
        );
    }
}

#[test]
fn cyclic_refs_terminate() {
    let cycles = [
        json!({"$ref": "#"}),
        json!({"allOf": [{"$ref": "#"}], "anyOf": [{"$ref": "#"}]}),
        json!({"$ref": "#/$defs/A",
               "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"oneOf": [{"$ref": "#/$defs/A"}]}}}),
        json!({"properties": {"me": {"$ref": "#"}}}),
    ];
    for schema in &cycles {
        assert!(declared_path(schema, ""));
        assert!(!declared_path(schema, "a/b"), "{schema}");
        assert_eq!(max_length_at(schema, "a/b"), None, "{schema}");
    }
    assert!(declared_path(&cycles[3], "me/me/me"));
    assert!(!declared_path(&cycles[3], "me/me/you"));
}

#[test]
fn unresolvable_refs_lead_nowhere() {
    let schema = json!({"type": "object", "properties": {
        "remote": {"$ref": "https://example.com/s.json#/properties/x"},
        "dangling": {"$ref": "#/$defs/Nope"},
        "anchor": {"$ref": "#Here"}
    }});
    for name in ["remote", "dangling", "anchor"] {
        assert!(declared_path(&schema, name), "{name}");
        assert!(!declared_path(&schema, &format!("{name}/x")), "{name}");
    }
}

#[test]
fn schemars_shapes_are_declared() {
    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Order {
        ship_to: Option<Address>,
        lines: Vec<Address>,
        pair: (u8, Address),
    }
    let schema = serde_json::to_value(schemars::schema_for!(Order)).unwrap();
    for path in ["ship_to/zip", "ship_to/city", "lines/3/zip", "pair/1/city"] {
        assert!(declared_path(&schema, path), "{path}");
    }
    for path in ["ship_to/street", "lines/3/street", "pair/0/zip", "other"] {
        assert!(!declared_path(&schema, path), "{path}");
    }
}

#[test]
fn path_segments_are_escaped_as_paths_are_read() {
    let mut path = String::new();
    push_path_segment(&mut path, "a/b");
    assert_eq!(path, "a~1b", "no separator at the root");
    push_path_segment(&mut path, "~1");
    assert_eq!(path, "a~1b/~01", "a literal `~1` is not read back as `/`");
    push_path_segment(&mut path, "");
    assert_eq!(path, "a~1b/~01/");
    assert_eq!(
        segments("a~1b/~01"),
        vec!["a/b".to_string(), "~1".to_string()]
    );
}

#[test]
fn schema_paths_answer_as_the_walks_do() {
    let schema = json!({
        "type": "object",
        "properties": {
            "a/b": {"type": "string", "maxLength": 3},
            "~": {"$ref": "#/$defs/Short"},
            "note": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 7}},
            "open": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 2}}
        },
        "allOf": [{"properties": {"extra": {"type": "string", "maxLength": 1}}}],
        "$defs": {"Short": {"type": "string", "maxLength": 4}}
    });
    let paths = SchemaPaths::new(&schema);
    for path in [
        "", "a~1b", "a/b", "~0", "~", "note", "tags", "tags/2", "open", "open/x", "extra",
        "missing", "note/x",
    ] {
        assert_eq!(
            paths.declared(&schema, path),
            declared_path(&schema, path),
            "{path}"
        );
        assert_eq!(
            paths.max_length(&schema, path),
            max_length_at(&schema, path),
            "{path}"
        );
    }
    assert_eq!(paths.max_length(&schema, "a~1b"), Some(3));
    assert_eq!(paths.max_length(&schema, "~0"), Some(4));
    assert_eq!(
        SchemaPaths::new(&json!(true)).max_length(&json!(true), "x"),
        None
    );
}
