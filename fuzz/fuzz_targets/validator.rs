//! Fuzz target: argument validation on schemas drawn from a small grammar (objects, arrays,
//! strings with formats and limits, numbers with `x-currency`, `$ref`s into `$defs` — unresolved
//! and recursive ones included —, `anyOf`/`allOf`/`oneOf`, `enum`) and on arbitrary JSON
//! arguments: `ArgValidator::new`, `validate`, `platform_parameters`, `declared_path` and
//! `max_length_at` never panic (`ArgValidator::new` only on schemas `platform_parameters`
//! accepts, as in `voxguard`). Patterns come from a fixed list, so no time goes into
//! compiling fuzzer-made regexes (a developer's schema is trusted input).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use voxguard_guard::{
    declared_path, max_length_at, platform_parameters, ArgValidator, CURRENCY_KEYWORD,
};

const NAMES: &[&str] = &[
    "name", "amount", "address", "items", "zip", "a/b", "t~1", "", "pin",
];
const FORMATS: &[&str] = &[
    "e164",
    "account_number",
    "order_number",
    "iso_date",
    "date",
    "email",
    "bogus",
];
const PATTERNS: &[&str] = &["^[0-9]{4}$", "^[A-Z]+-\\d+$", "(a|b)*c", "["];
const MAX_DEPTH: usize = 5;

#[derive(Debug, Arbitrary)]
enum Node {
    Str {
        max_length: Option<u8>,
        format: Option<u8>,
        pattern: Option<u8>,
    },
    Num {
        currency: Option<bool>,
        minimum: Option<i16>,
        maximum: Option<i16>,
    },
    Int,
    Bool,
    Null,
    Object {
        properties: Vec<(Name, Node)>,
        required: Vec<Name>,
        additional: Option<Additional>,
    },
    Array {
        items: Option<Box<Node>>,
        prefix: Vec<Node>,
        max_items: Option<u8>,
    },
    AnyOf(Vec<Node>),
    AllOf(Vec<Node>),
    OneOf(Vec<Node>),
    /// `$ref` to `#/$defs/D{n % 4}`; only D0..D2 exist.
    Ref(u8),
    /// A `$ref` with a sibling limit.
    RefWithLimit(u8, u8),
    Enum(Vec<String>),
    /// Anything at all: `true`, `{}` or a bare `description`.
    Any(u8),
    /// A keyword the platform cannot express.
    Untyped,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Free(String),
}

#[derive(Debug, Arbitrary)]
enum Additional {
    Allowed(bool),
    Schema(Box<Node>),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            Name::Free(s) => s.clone(),
        }
    }
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

fn schema(node: &Node, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return json!({"type": "string"});
    }
    let d = depth + 1;
    let list = |nodes: &[Node]| Value::Array(nodes.iter().map(|n| schema(n, d)).collect());
    match node {
        Node::Str {
            max_length,
            format,
            pattern,
        } => {
            let mut s = json!({"type": "string"});
            if let Some(n) = max_length {
                s["maxLength"] = json!(n);
            }
            if let Some(f) = format {
                s["format"] = json!(pick(FORMATS, *f));
            }
            if let Some(p) = pattern {
                s["pattern"] = json!(pick(PATTERNS, *p));
            }
            s
        }
        Node::Num {
            currency,
            minimum,
            maximum,
        } => {
            let mut s = json!({"type": "number"});
            if let Some(c) = currency {
                s[CURRENCY_KEYWORD] = json!(c);
            }
            if let Some(n) = minimum {
                s["minimum"] = json!(n);
            }
            if let Some(n) = maximum {
                s["maximum"] = json!(n);
            }
            s
        }
        Node::Int => json!({"type": "integer"}),
        Node::Bool => json!({"type": "boolean"}),
        Node::Null => json!({"type": "null"}),
        Node::Object {
            properties,
            required,
            additional,
        } => {
            let props: Map<String, Value> = properties
                .iter()
                .map(|(name, node)| (name.text(), schema(node, d)))
                .collect();
            let mut s = json!({"type": "object", "properties": props});
            if !required.is_empty() {
                s["required"] = required.iter().map(Name::text).collect();
            }
            match additional {
                Some(Additional::Allowed(b)) => s["additionalProperties"] = json!(b),
                Some(Additional::Schema(node)) => s["additionalProperties"] = schema(node, d),
                None => {}
            }
            s
        }
        Node::Array {
            items,
            prefix,
            max_items,
        } => {
            let mut s = json!({"type": "array"});
            if let Some(items) = items {
                s["items"] = schema(items, d);
            }
            if !prefix.is_empty() {
                s["prefixItems"] = list(prefix);
            }
            if let Some(n) = max_items {
                s["maxItems"] = json!(n);
            }
            s
        }
        Node::AnyOf(nodes) => json!({"anyOf": list(nodes)}),
        Node::AllOf(nodes) => json!({"allOf": list(nodes)}),
        Node::OneOf(nodes) => json!({"oneOf": list(nodes)}),
        Node::Ref(n) => json!({"$ref": format!("#/$defs/D{}", n % 4)}),
        Node::RefWithLimit(n, max) => {
            json!({"$ref": format!("#/$defs/D{}", n % 4), "maxLength": max})
        }
        Node::Enum(values) => json!({"enum": values}),
        Node::Any(0) => json!(true),
        Node::Any(1) => json!({}),
        Node::Any(_) => json!({"description": "anything"}),
        Node::Untyped => json!({"not": {"type": "null"}}),
    }
}

/// Arbitrary JSON arguments, depth-limited by construction of the Arbitrary input size.
#[derive(Debug, Arbitrary)]
enum Arg {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Known(u8),
    Array(Vec<Arg>),
    Object(Vec<(Name, Arg)>),
}

fn arg(a: &Arg, depth: usize) -> Value {
    if depth > 2 * MAX_DEPTH {
        return Value::Null;
    }
    match a {
        Arg::Null => Value::Null,
        Arg::Bool(b) => json!(b),
        Arg::Int(n) => json!(n),
        Arg::Float(f) => json!(f),
        Arg::Str(s) => json!(s),
        Arg::Known(i) => json!(pick(
            &["+15551234567", "1.005", "2024-02-30", "ORD-12345", "x"],
            *i
        )),
        Arg::Array(items) => items.iter().map(|a| arg(a, depth + 1)).collect(),
        Arg::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, a)| (name.text(), arg(a, depth + 1)))
                .collect(),
        ),
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    root: Vec<(Name, Node)>,
    required: Vec<Name>,
    defs: [Node; 3],
    args: Arg,
    paths: Vec<String>,
}

fuzz_target!(|input: Input| {
    let properties: Map<String, Value> = input
        .root
        .iter()
        .map(|(name, node)| (name.text(), schema(node, 1)))
        .collect();
    let defs: Map<String, Value> = input
        .defs
        .iter()
        .enumerate()
        .map(|(i, node)| (format!("D{i}"), schema(node, 1)))
        .collect();
    let mut schema = json!({"type": "object", "properties": properties, "$defs": defs});
    if !input.required.is_empty() {
        schema["required"] = input.required.iter().map(Name::text).collect();
    }
    let args = arg(&input.args, 0);

    let mut paths = input.paths.clone();
    // The order of `voxguard`'s tool compilation: the validator only ever sees schemas the
    // platform subset accepts (a recursive `$ref` under `allOf`/`anyOf` can cost `jsonschema`
    // exponential compile time; see fuzz/artifacts/validator/).
    let accepted = platform_parameters(&schema).is_ok();
    if let Some(validator) = accepted.then(|| ArgValidator::new(&schema).ok()).flatten() {
        if let Err(error) = validator.validate(&args) {
            let _ = error.reason();
            paths.push(error.field);
        }
    }
    for path in &paths {
        let _ = declared_path(&schema, path);
        let _ = max_length_at(&schema, path);
    }
});
