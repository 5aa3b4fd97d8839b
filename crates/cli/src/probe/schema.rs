//! Arguments built from a function's *declared* parameters schema: a valid set (only ever sent
//! with `--allow-calls`), and the invalid cases the validation and token checks send — a
//! wrong type, a missing required argument, a value outside a declared enum, pattern, length
//! or range, an undeclared argument.
//!
//! It owns the safety net of the probe's default mode: every invalid case is checked with
//! `jsonschema` against the whole declared schema, and a case the schema would accept is
//! never returned as invalid. It must not send anything and must not guess constraints the
//! schema does not declare.

use jsonschema::Validator;
use serde_json::{json, Map, Value};

use crate::agent::Function;

/// The name of the argument the undeclared case adds.
pub const UNDECLARED: &str = "voxguard_probe_undeclared";

/// The most invalid cases per function.
const MAX_CASES: usize = 16;

/// Which rule an invalid case breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An argument of the wrong JSON type.
    TypeConfusion,
    /// A required argument left out.
    MissingRequired,
    /// A value outside a declared enum, pattern, length or numeric range.
    OutOfRange(&'static str),
}

impl Kind {
    /// The finding id of a handler that ran with this case.
    pub fn id(self) -> &'static str {
        match self {
            Self::TypeConfusion => "validation.type_confusion",
            Self::MissingRequired => "validation.missing_required",
            Self::OutOfRange(_) => "validation.out_of_range",
        }
    }
}

/// One set of arguments the declared schema rejects.
#[derive(Debug, Clone)]
pub struct Case {
    /// What it breaks.
    pub kind: Kind,
    /// The argument concerned.
    pub field: String,
    /// The arguments sent.
    pub args: Value,
}

impl Case {
    /// A short description (`amount: wrong type`).
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::TypeConfusion => format!("{} of the wrong type", self.field),
            Kind::MissingRequired => format!("required {} missing", self.field),
            Kind::OutOfRange(keyword) => format!("{} outside its declared {keyword}", self.field),
        }
    }
}

/// A compiled declared schema of one function.
pub struct Declared {
    whole: Validator,
    properties: Vec<(String, Value)>,
    required: Vec<String>,
}

impl Declared {
    /// Compile `function`'s parameters schema; `None` when it is not a usable JSON schema.
    pub fn of(function: &Function) -> Option<Self> {
        let schema = if function.parameters.as_object().is_some_and(Map::is_empty) {
            json!({"type": "object"})
        } else {
            function.parameters.clone()
        };
        let whole = jsonschema::validator_for(&schema).ok()?;
        Some(Self {
            whole,
            properties: function.properties(),
            required: function.required(),
        })
    }

    /// Whether the declared schema accepts `args`.
    pub fn accepts(&self, args: &Value) -> bool {
        self.whole.is_valid(args)
    }

    /// Valid values for every required argument that one can be built for.
    fn base(&self) -> Map<String, Value> {
        let mut base = Map::new();
        for (name, schema) in &self.properties {
            if self.required.contains(name) {
                if let Some(value) = valid_value(schema) {
                    base.insert(name.clone(), value);
                }
            }
        }
        base
    }

    /// A set of arguments the declared schema accepts, if one can be built (only sent with
    /// `--allow-calls`).
    pub fn valid_args(&self) -> Option<Value> {
        let args = Value::Object(self.base());
        self.accepts(&args).then_some(args)
    }

    /// The invalid cases: each rejected by the declared schema (checked), at most
    /// [`MAX_CASES`].
    ///
    /// By default ([`Declared::safe_cases`]) only cases no lax handler can act on: no
    /// arguments at all, and each declared argument alone with a value of no usable type (never
    /// a truthy value for a boolean, never valid values for the others). With `boundary`
    /// (`--allow-calls` only) also the cases built on *valid* arguments with one changed:
    /// a wrong type, a value outside a declared enum, pattern, length or range, a missing
    /// required argument — a lax handler can act on those, so they move money on a weak
    /// agent.
    pub fn invalid_cases(&self, boundary: bool) -> Vec<Case> {
        let mut cases = self.safe_cases();
        if boundary {
            for case in self.boundary_cases() {
                if cases.len() < MAX_CASES {
                    cases.push(case);
                }
            }
        }
        cases
    }

    /// The cases of the default mode: `{}` when a required argument exists, and each
    /// declared argument alone with [`unusable`] value.
    fn safe_cases(&self) -> Vec<Case> {
        let mut cases = Vec::new();
        let empty = Value::Object(Map::new());
        if !self.required.is_empty() && !self.accepts(&empty) {
            cases.push(Case {
                kind: Kind::MissingRequired,
                field: self.required.join(", "),
                args: empty,
            });
        }
        for (name, schema) in &self.properties {
            let Some(bad) = unusable(schema) else {
                continue;
            };
            let mut args = Map::new();
            args.insert(name.clone(), bad);
            let args = Value::Object(args);
            if cases.len() < MAX_CASES && !self.accepts(&args) {
                cases.push(Case {
                    kind: Kind::TypeConfusion,
                    field: name.clone(),
                    args,
                });
            }
        }
        cases
    }

    /// The cases built on valid arguments with one changed (`--allow-calls` only).
    fn boundary_cases(&self) -> Vec<Case> {
        let base = self.base();
        let mut cases = Vec::new();
        let mut push = |kind: Kind, field: &str, args: Map<String, Value>| {
            let args = Value::Object(args);
            if cases.len() < MAX_CASES && !self.accepts(&args) {
                cases.push(Case {
                    kind,
                    field: field.to_string(),
                    args,
                });
            }
        };
        for (name, schema) in &self.properties {
            let Ok(own) = jsonschema::validator_for(schema) else {
                continue;
            };
            if let Some(wrong) = wrong_type(schema).filter(|wrong| !own.is_valid(wrong)) {
                let mut args = base.clone();
                args.insert(name.clone(), wrong);
                push(Kind::TypeConfusion, name, args);
            }
            for (keyword, value) in out_of_range(schema) {
                if !own.is_valid(&value) {
                    let mut args = base.clone();
                    args.insert(name.clone(), value);
                    push(Kind::OutOfRange(keyword), name, args);
                }
            }
        }
        for name in &self.required {
            let mut args = base.clone();
            args.remove(name);
            push(Kind::MissingRequired, name, args);
        }
        cases
    }

    /// The valid arguments plus one undeclared argument, when the valid set can be built.
    pub fn undeclared(&self) -> Option<Value> {
        let mut args = self.valid_args()?;
        if let Value::Object(map) = &mut args {
            map.insert(UNDECLARED.into(), Value::String("x".into()));
        }
        Some(args)
    }

    /// The maximally invalid arguments, for every request that must be refused for another
    /// reason (no token, no credentials): every declared argument with [`unusable`] value
    /// (left out when none is rejected), so that no lax handler can act on any of them;
    /// `None` when the declared schema would accept that set.
    pub fn invalid_args(&self) -> Option<Value> {
        let mut args = Map::new();
        for (name, schema) in &self.properties {
            if let Some(bad) = unusable(schema) {
                args.insert(name.clone(), bad);
            }
        }
        let args = Value::Object(args);
        (!self.accepts(&args)).then_some(args)
    }
}

/// A value of `schema`'s argument that no lax handler can use, if `schema` rejects one: an
/// object (no number, string or account can be made of it), or `null` for a boolean (never
/// truthy) and where the object is accepted.
fn unusable(schema: &Value) -> Option<Value> {
    let own = jsonschema::validator_for(schema).ok()?;
    let candidates = if first_type(schema) == Some("boolean") {
        vec![Value::Null]
    } else {
        vec![json!({"voxguard_probe": {}}), Value::Null]
    };
    candidates.into_iter().find(|value| !own.is_valid(value))
}

/// The first declared type of `schema` (`type` may be a list).
fn first_type(schema: &Value) -> Option<&str> {
    match schema.get("type") {
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(Value::Array(kinds)) => kinds.iter().find_map(Value::as_str),
        _ => None,
    }
}

/// A value `schema` accepts, if one of the candidates is.
pub fn valid_value(schema: &Value) -> Option<Value> {
    let own = jsonschema::validator_for(schema).ok()?;
    let mut candidates: Vec<Value> = Vec::new();
    for key in ["const", "default"] {
        if let Some(value) = schema.get(key) {
            candidates.push(value.clone());
        }
    }
    for key in ["enum", "examples"] {
        if let Some(Value::Array(values)) = schema.get(key) {
            candidates.extend(values.iter().take(4).cloned());
        }
    }
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    match first_type(schema) {
        Some("string") | None => {
            candidates.extend(
                [
                    "probe",
                    "0000",
                    "0000000000",
                    "a",
                    "probe@example.com",
                    "2025-01-01",
                    "+15555550100",
                    "https://example.com/",
                ]
                .map(Value::from),
            );
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if min <= 1024 {
                    candidates.push(Value::String("a".repeat(min as usize)));
                }
            }
            if first_type(schema).is_none() {
                candidates.extend([json!(1), json!(false)]);
            }
        }
        Some("integer") | Some("number") => {
            candidates.extend([json!(1), json!(0)]);
            for key in ["minimum", "maximum"] {
                if let Some(bound) = number(key) {
                    candidates.push(json!(bound));
                    if bound.fract() == 0.0 && bound.abs() < 1e15 {
                        candidates.push(json!(bound as i64));
                    }
                }
            }
        }
        Some("boolean") => candidates.extend([json!(false), json!(true)]),
        Some("array") => candidates.push(json!([])),
        Some("object") => candidates.push(json!({})),
        Some("null") => candidates.push(Value::Null),
        Some(_) => {}
    }
    candidates.into_iter().find(|value| own.is_valid(value))
}

/// A value of another JSON type than `schema` declares.
fn wrong_type(schema: &Value) -> Option<Value> {
    Some(match first_type(schema)? {
        "string" => json!(12345),
        "integer" | "number" | "boolean" | "array" | "object" => json!("voxguard-probe"),
        "null" => json!(1),
        _ => return None,
    })
}

/// Values of the right type outside each declared enum, pattern, length or range, with the
/// keyword they break.
fn out_of_range(schema: &Value) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let string = first_type(schema) == Some("string");
    if schema.get("enum").is_some() {
        out.push((
            "enum",
            if string || first_type(schema).is_none() {
                json!("voxguard-probe-not-listed")
            } else {
                json!(987_654_321)
            },
        ));
    }
    if string {
        if schema.get("pattern").is_some() {
            for candidate in ["!", "", "voxguard probe !", "0", "a"] {
                out.push(("pattern", json!(candidate)));
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if (1..=4096).contains(&min) {
                out.push(("minLength", json!("a".repeat(min as usize - 1))));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if max < 65_536 {
                out.push(("maxLength", json!("a".repeat(max as usize + 1))));
            }
        }
    }
    let integer = first_type(schema) == Some("integer");
    let bound = |value: f64, step: f64| {
        if integer && value.fract() == 0.0 && value.abs() < 1e15 {
            json!(value as i64 + step as i64)
        } else {
            json!(value + step)
        }
    };
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = number("minimum") {
        out.push(("minimum", bound(min, -1.0)));
    }
    if let Some(max) = number("maximum") {
        out.push(("maximum", bound(max, 1.0)));
    }
    if let Some(min) = number("exclusiveMinimum") {
        out.push(("exclusiveMinimum", bound(min, 0.0)));
    }
    if let Some(max) = number("exclusiveMaximum") {
        out.push(("exclusiveMaximum", bound(max, 0.0)));
    }
    // Keep one value per keyword: the first the schema rejects is chosen by the caller.
    let mut seen: Vec<&'static str> = Vec::new();
    let validator = jsonschema::validator_for(schema).ok();
    out.retain(|(keyword, value)| {
        let rejected = validator.as_ref().is_some_and(|v| !v.is_valid(value));
        if rejected && !seen.contains(keyword) {
            seen.push(keyword);
            true
        } else {
            false
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(parameters: Value) -> Function {
        Function {
            name: "f".into(),
            description: String::new(),
            parameters,
            webhook: None,
            token: None,
            meta_data_token: None,
            active: true,
            definition: Value::Null,
        }
    }

    #[test]
    fn invalid_cases_are_rejected_by_the_declared_schema() {
        let declared = Declared::of(&function(json!({
            "type": "object",
            "properties": {
                "to_account": {"type": "string", "pattern": "^[0-9]{10}$"},
                "amount": {"type": "number", "minimum": 1, "maximum": 100},
                "department": {"type": "string", "enum": ["support", "sales"]},
            },
            "required": ["to_account", "amount"],
        })))
        .unwrap();
        let valid = declared.valid_args().unwrap();
        assert_eq!(valid, json!({"to_account": "0000000000", "amount": 1}));
        let cases = declared.invalid_cases(true);
        let kinds: Vec<String> = cases.iter().map(Case::describe).collect();
        for expected in [
            "to_account of the wrong type",
            "to_account outside its declared pattern",
            "amount outside its declared minimum",
            "amount outside its declared maximum",
            "department outside its declared enum",
            "required amount missing",
        ] {
            assert!(kinds.contains(&expected.to_string()), "{kinds:?}");
        }
        for case in &cases {
            assert!(!declared.accepts(&case.args), "{case:?}");
        }
        let undeclared = declared.undeclared().unwrap();
        assert_eq!(undeclared[UNDECLARED], "x");
    }

    #[test]
    fn default_cases_carry_no_value_a_lax_handler_could_act_on() {
        let declared = Declared::of(&function(json!({
            "type": "object",
            "properties": {
                "to_account": {"type": "string", "pattern": "^[0-9]{10}$"},
                "amount": {"type": "number", "minimum": 1, "maximum": 100},
                "confirmed": {"type": "boolean"},
                "department": {"type": "string", "enum": ["support", "sales"]},
            },
            "required": ["to_account", "amount", "confirmed"],
        })))
        .unwrap();
        let cases = declared.invalid_cases(false);
        let described: Vec<String> = cases.iter().map(Case::describe).collect();
        assert!(
            described.contains(&"required to_account, amount, confirmed missing".to_string()),
            "{described:?}"
        );
        assert_eq!(cases.len(), 5, "{described:?}");
        let bad = json!({"voxguard_probe": {}});
        for case in &cases {
            assert!(!declared.accepts(&case.args), "{case:?}");
            let args = case.args.as_object().unwrap();
            // At most one argument, and never a usable value: no number, no string, no
            // truthy boolean.
            assert!(args.len() <= 1, "{case:?}");
            for value in args.values() {
                assert!(*value == bad || value.is_null(), "{case:?}");
            }
        }
        assert!(cases.iter().any(|c| c.args == json!({"confirmed": null})));
        let all = declared.invalid_args().unwrap();
        assert_eq!(all["amount"], bad);
        assert_eq!(all["to_account"], bad);
        assert_eq!(all["confirmed"], Value::Null);
        // Boundary cases (a valid amount, a truthy boolean) only when calls are allowed.
        assert!(declared
            .invalid_cases(true)
            .iter()
            .any(|case| case.args.get("amount") == Some(&json!(1))));
    }

    #[test]
    fn a_function_without_typed_parameters_has_no_invalid_case() {
        let declared =
            Declared::of(&function(json!({"type": "object", "properties": {}}))).unwrap();
        assert!(declared.invalid_cases(false).is_empty());
        assert!(declared.invalid_cases(true).is_empty());
        assert!(declared.invalid_args().is_none());
        assert_eq!(declared.valid_args(), Some(json!({})));
    }
}
